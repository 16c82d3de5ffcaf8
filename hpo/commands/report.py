"""``hpo report``: the ranked end-of-sweep report as a table, CSV, JSON or JSON lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hpo.cli import _add_storage, _add_study, _load_study, count


def cmd_report(args: argparse.Namespace) -> int:
    from hpo.report import build_report, render

    axes = [a.strip() for a in (args.axes or "").split(",") if a.strip()]
    report = build_report(_load_study(args), axes=axes, metric=args.metric, limit=args.top)
    text = render(report, args.format)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    else:
        print(text, end="")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="ranked trials, counts, compute saved by pruning, top-1 per axis")
    _add_study(p, spec=False)
    _add_storage(p)
    p.add_argument("--format", choices=("table", "csv", "json", "jsonl"), default="table",
                   help="output format (default: table)")
    p.add_argument("--out", help="write to FILE instead of stdout")
    p.add_argument("--axes", help="comma-separated parameters for 'top-1 per axis', e.g. lr,width")
    p.add_argument("--metric", help="objective that judges top-1 per axis (default: the first)")
    p.add_argument("--top", type=count(1), help="keep only the N best-ranked trials")
    p.set_defaults(func=cmd_report)
