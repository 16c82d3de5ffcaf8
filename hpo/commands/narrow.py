"""``hpo narrow``: a Stage-2 spec and study around a study's top-k trials (:mod:`hpo.run.two_stage`);
``hpo optimize --two-stage`` runs both stages (:mod:`hpo.commands.optimize`)."""

from __future__ import annotations

import argparse
import sys

from hpo._optuna import storage_of
from hpo.commands.options import add_narrow_options, add_storage, add_study, load_study, plan_options
from hpo.errors import HpoError

HELP = "stage-2 spec + study around the top-k trials (locks, narrows, enqueues a fractional design)"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo narrow``.

    Args:
        args: the parsed command line.
    """
    from hpo.policy.narrowing import spec_yaml
    from hpo.run.two_stage import apply, find_study, make_plan, plan_text

    parent = load_study(args)
    plan = make_plan(parent, reuse=False, **plan_options(args))
    print(plan_text(plan))
    if args.dry_run:
        return 0
    assert plan.narrowing is not None
    if plan.path.is_file() and plan.path.read_text() != spec_yaml(plan.narrowing):
        if find_study(storage_of(parent), plan.spec.study) is not None:
            raise HpoError(f"{plan.path} exists, differs from this narrowing, and study '{plan.spec.study}' "
                           "already uses it (fix: --into ANOTHER_NAME, or keep it and run "
                           f"hpo optimize --study {plan.spec.study})")
        print(f"{plan.path} exists and differs; rewriting it (its study does not exist yet)", file=sys.stderr)
    apply(plan)
    print(f"next: hpo optimize --study {plan.spec.study}", file=sys.stderr)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo narrow``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p, spec=False)
    add_storage(p)
    add_narrow_options(p, two_stage=False)
