"""``hpo best``: the best trial's config and metrics; ``--export DIR`` writes them with its checkpoint."""

from __future__ import annotations

import argparse
import json
import sys

from hpo.commands.options import add_storage, add_study, count, load_study

HELP = "the best trial's config and metrics (--export DIR: files + checkpoint)"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo best``.

    Args:
        args: the parsed command line.
    """
    from hpo.analysis.export import export_trial, pick_trial, trial_metadata

    study = load_study(args)
    trial = pick_trial(study, metric=args.metric, number=args.trial)
    if not args.export:
        print(json.dumps(trial_metadata(study, trial), indent=2, default=str))
        return 0
    written = export_trial(study, trial, args.export, args.artifacts)
    for what, path in written.items():
        print(f"{what}: {path}", file=sys.stderr)
    if "checkpoint" not in written:
        print(f"checkpoint: none (trial {trial.number} saved none: its objective never called "
              "report.checkpoint(state))", file=sys.stderr)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo best``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p, spec=False)
    add_storage(p)
    p.add_argument("--export", metavar="DIR", help="write config.yaml, metrics.json and the checkpoint here")
    p.add_argument("--metric", help="multi-objective: the Pareto-front trial best in this objective "
                                    "(default: the first)")
    p.add_argument("--trial", type=count(0), help="this trial number instead of the best")
    p.add_argument("--artifacts", help="artifact store directory (default: $HPO_ARTIFACTS or artifacts/)")
