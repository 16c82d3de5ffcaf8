"""``hpo report``: the ranked end-of-sweep report as a table, CSV, JSON or JSON lines."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpo.commands.options import add_storage, add_study, count, load_study

HELP = "ranked trials, counts, compute saved by pruning, top-1 per axis"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo report``.

    Args:
        args: the parsed command line.
    """
    from hpo.analysis.report import build_report, render

    axes = [a.strip() for a in (args.axes or "").split(",") if a.strip()]
    report = build_report(load_study(args), axes=axes, metric=args.metric, limit=args.top)
    text = render(report, args.format)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    else:
        print(text, end="")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo report``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p, spec=False)
    add_storage(p)
    p.add_argument("--format", choices=("table", "csv", "json", "jsonl"), default="table",
                   help="output format (default: table)")
    p.add_argument("--out", help="write to FILE instead of stdout")
    p.add_argument("--axes", help="comma-separated parameters for 'top-1 per axis', e.g. lr,width")
    p.add_argument("--metric", help="objective that judges top-1 per axis (default: the first)")
    p.add_argument("--top", type=count(1), help="keep only the N best-ranked trials")
