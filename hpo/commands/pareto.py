"""``hpo pareto``: the Pareto front as a table with its knee; ``--export FILE`` writes one as a spec."""

from __future__ import annotations

import argparse
import sys

from hpo.commands.options import add_storage, add_study, count, load_study

HELP = "the Pareto front with its knee; --export FILE writes a runnable spec"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo pareto``.

    Args:
        args: the parsed command line.
    """
    from hpo.errors import HpoError
    from hpo.analysis.pareto import complete_trials, export_config, front_table, knee, pareto_front

    study = load_study(args)
    front = pareto_front(complete_trials(study), study.directions)
    if not front:
        raise HpoError(f"study '{study.study_name}' has no COMPLETE trial yet (fix: run hpo optimize first)")
    print(front_table(study).to_string(index=False))
    best = knee(front, study.directions)
    print(f"knee: trial {best.number} (closest to the utopia point, each metric min-max normalised over the front)")
    if args.export:
        chosen = best
        if args.trial is not None:
            chosen = next((t for t in complete_trials(study) if t.number == args.trial), None)
            if chosen is None:
                raise HpoError(f"--trial {args.trial}: not a COMPLETE trial of '{study.study_name}' "
                               "(fix: pick one from the table)")
        path = export_config(study, chosen, args.export)
        print(f"wrote {path} (trial {chosen.number}); run it with: hpo optimize --spec {path}", file=sys.stderr)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo pareto``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p, spec=False)
    add_storage(p)
    p.add_argument("--export", metavar="FILE", help="write the knee's (or --trial's) config as a spec YAML")
    p.add_argument("--trial", type=count(0), help="export this trial instead of the knee")
