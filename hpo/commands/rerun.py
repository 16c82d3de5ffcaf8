"""``hpo rerun``: the top-K configs of a study re-run with more training seeds (:mod:`hpo.run.finalists`)."""

from __future__ import annotations

import argparse

from hpo.commands.options import add_run_options, add_storage, add_study, count, load_study, run_options
from hpo.errors import HpoError

HELP = "re-run the top K configs with S more training seeds (resumable)"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo rerun``.

    Args:
        args: the parsed command line.
    """
    from hpo.run.finalists import run_finalists
    from hpo.analysis.report import configs_lines, build_report
    from hpo.analysis.study_info import study_spec

    study = load_study(args)
    spec = study_spec(study)
    if spec is None:
        raise HpoError(f"study '{study.study_name}' has no hpo spec stored (fix: re-run finalists of a study "
                       "run by hpo optimize)")
    done = run_finalists(spec, args.storage, args.top, args.seeds, dry_run=args.dry_run, **run_options(args))
    if done is not None:
        print("\n".join(configs_lines(build_report(done))[1:]))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo rerun``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p, spec=False)
    add_storage(p)
    p.add_argument("--top", type=count(1), default=3, help="how many distinct configs (default: 3)")
    p.add_argument("--seeds", type=count(1), default=3, help="how many more seeds each (default: 3)")
    p.add_argument("--dry-run", action="store_true", help="print which runs would be queued and stop")
    add_run_options(p)
