"""``hpo narrow`` and ``hpo optimize --two-stage/--dry-run``: the command-line side of
:mod:`hpo.two_stage` (a Stage-2 spec and study around a study's top-k trials)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hpo.cli import _add_storage, _add_study, _load_study, run_options
from hpo.errors import HpoError, SpecError

DESIGNS = ("fractional", "none")


def add_options(p: argparse.ArgumentParser, two_stage: bool = True) -> None:
    """The narrowing flags, shared by ``hpo narrow`` and ``hpo optimize``."""
    if two_stage:
        p.add_argument("--two-stage", action="store_true",
                       help="stage 1 to its budget, narrow into NAME_stage2, run stage 2 (resumable)")
        p.add_argument("--finalists", type=int, default=0, metavar="K",
                       help="--two-stage: end by re-running stage 2's top K configs with --seeds more seeds")
        p.add_argument("--seeds", type=int, default=3, help="--finalists: more training seeds each (default: 3)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (locked/narrowed, design) and stop")
    p.add_argument("--top", type=int, default=5, help="narrow around the top K COMPLETE trials (default: 5)")
    p.add_argument("--into", help="stage-2 study name (default: NAME_stage2)")
    p.add_argument("--design", choices=DESIGNS, default="fractional",
                   help="fractional: a pyDOE3 generalized subset design, run first (default); none")
    p.add_argument("--runs", type=int, default=36, help="about this many design points (default: 36)")
    p.add_argument("--levels", type=int, choices=range(3, 7), metavar="{3..6}",
                   help="levels per numeric parameter (default: the count that best fits --runs)")


def plan_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.top < 2:
        raise SpecError("command line: --top must be >= 2 (fix: e.g. --top 5)")
    if args.runs < 1:
        raise SpecError("command line: --runs must be >= 1 (fix: e.g. --runs 36)")
    return dict(top=args.top, into=args.into, design=args.design, runs=args.runs, levels=args.levels)


def session_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``optimize`` flags that :func:`hpo.session.open_session` takes (heartbeat, grace, ...),
    by name."""
    return run_options(args)


def optimize_two_stage(spec: Any, args: argparse.Namespace) -> int:
    """``hpo optimize --two-stage`` and ``--dry-run`` (delegated to by :func:`hpo.cli.cmd_optimize`)."""
    from hpo.tables import summary
    from hpo.two_stage import dry_run_text, run_two_stage

    if args.dry_run:
        options = plan_options(args) if args.two_stage else {}
        print(dry_run_text(spec, args.storage, args.n_trials, args.two_stage, **options))
        return 0
    if getattr(args, "workers", 1) != 1:
        raise SpecError("command line: --two-stage runs one worker (fix: drop --workers, or run each stage "
                        "with hpo optimize --workers N and hpo narrow between them)")
    try:
        study = run_two_stage(spec, args.storage, n_trials=args.n_trials, timeout=args.timeout,
                              **plan_options(args), **session_options(args))
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to continue", file=sys.stderr)
        return 130
    if study is not None and args.finalists:
        from hpo.finalists import run_finalists
        from hpo.report import configs_lines, build_report
        from hpo.study_info import study_spec

        stage2 = study_spec(study)
        assert stage2 is not None  # hpo wrote it
        study = run_finalists(stage2, args.storage, args.finalists, args.seeds, **session_options(args))
        assert study is not None
        print("\n".join(configs_lines(build_report(study))[1:]))
    if study is not None:
        print(summary(study))
    return 0


def cmd_narrow(args: argparse.Namespace) -> int:
    from hpo.narrowing import spec_yaml
    from hpo.two_stage import apply, find_study, make_plan, plan_text

    parent = _load_study(args)
    plan = make_plan(parent, reuse=False, **plan_options(args))
    print(plan_text(plan))
    if args.dry_run:
        return 0
    assert plan.narrowing is not None
    if plan.path.is_file() and plan.path.read_text() != spec_yaml(plan.narrowing):
        if find_study(parent._storage, plan.spec.study) is not None:
            raise HpoError(f"{plan.path} exists, differs from this narrowing, and study '{plan.spec.study}' "
                           "already uses it (fix: --into ANOTHER_NAME, or keep it and run "
                           f"hpo optimize --study {plan.spec.study})")
        print(f"{plan.path} exists and differs; rewriting it (its study does not exist yet)", file=sys.stderr)
    apply(plan)
    print(f"next: hpo optimize --study {plan.spec.study}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("narrow", help="stage-2 spec + study around the top-k trials (locks, narrows, "
                                      "enqueues a fractional design)")
    _add_study(p, spec=False)
    _add_storage(p)
    add_options(p, two_stage=False)
    p.set_defaults(func=cmd_narrow)
