"""``hpo dashboard``: browse the studies (trials, curves, artifacts) in optuna-dashboard."""

from __future__ import annotations

import argparse

from hpo.commands.options import add_storage, port

HELP = "optuna-dashboard on the same storage, artifacts browsable"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo dashboard``.

    Args:
        args: the parsed command line.
    """
    from hpo.analysis.dashboard import serve

    serve(args.storage, host=args.host, port=args.port, artifacts=args.artifacts)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo dashboard``'s flags.

    Args:
        p: the command's parser.
    """
    add_storage(p)
    p.add_argument("--port", type=port, default=8080, help="default: 8080")
    p.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)")
    p.add_argument("--artifacts", help="artifact store directory (default: $HPO_ARTIFACTS or artifacts/)")
