"""``hpo plot``: one figure of a study to an HTML (or PNG) file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hpo.cli import _add_storage, _add_study, _load_study

KINDS = ("history", "importance", "pareto", "curves", "time-vs-loss", "slice")


def cmd_plot(args: argparse.Namespace) -> int:
    from hpo.plots import figure, save

    out = save(figure(_load_study(args), args.kind, metric=args.metric, evaluator=args.evaluator), args.out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("plot", help="history, importance, pareto, curves, time-vs-loss or slice figure")
    _add_study(p, spec=False)
    _add_storage(p)
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--out", required=True, help="F.html (self-contained) or F.png (needs kaleido)")
    p.add_argument("--metric", help="objective to plot (default: the first); for curves and "
                                    "time-vs-loss any reported metric (default: the curve's)")
    p.add_argument("--evaluator", choices=("ped-anova", "fanova"), default="ped-anova",
                   help="for --kind importance")
    p.set_defaults(func=cmd_plot)
