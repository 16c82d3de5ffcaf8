"""``hpo importance``: which parameters mattered, per objective, as a table."""

from __future__ import annotations

import argparse
import sys

from hpo.commands.options import add_storage, add_study, load_study

HELP = "parameter importances per objective (PED-ANOVA or fANOVA)"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo importance``.

    Args:
        args: the parsed command line.
    """
    from hpo.analysis.importance import importance_table, importances

    df = importances(load_study(args), evaluator=args.evaluator, metric=args.metric)
    print(df.to_csv() if args.format == "csv" else importance_table(df, args.evaluator), end="")
    notes = df.attrs.get("notes") or []
    if notes:  # one line, not one warning per parameter and objective
        more = f" (and {len(notes) - 1} more caveats)" if len(notes) > 1 else ""
        print(f"note: {notes[0]}{more}", file=sys.stderr)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo importance``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p, spec=False)
    add_storage(p)
    p.add_argument("--evaluator", choices=("ped-anova", "fanova"), default="ped-anova",
                   help="Optuna importance evaluator (default: ped-anova)")
    p.add_argument("--metric", help="only this objective (default: every objective)")
    p.add_argument("--format", choices=("table", "csv"), default="table")
