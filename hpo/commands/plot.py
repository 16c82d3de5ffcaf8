"""``hpo plot``: one figure of a study to an HTML (or PNG) file."""

from __future__ import annotations

import argparse
import sys

from hpo.commands.options import add_storage, add_study, load_study

HELP = "history, importance, pareto, curves, time-vs-loss or slice figure"

KINDS = ("history", "importance", "pareto", "curves", "time-vs-loss", "slice")


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo plot``.

    Args:
        args: the parsed command line.
    """
    from hpo.analysis.plots import figure, save

    out = save(figure(load_study(args), args.kind, metric=args.metric, evaluator=args.evaluator), args.out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo plot``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p, spec=False)
    add_storage(p)
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--out", required=True, help="F.html (self-contained) or F.png (needs kaleido)")
    p.add_argument("--metric", help="objective to plot (default: the first); for curves and "
                                    "time-vs-loss any reported metric (default: the curve's)")
    p.add_argument("--evaluator", choices=("ped-anova", "fanova"), default="ped-anova",
                   help="for --kind importance")
