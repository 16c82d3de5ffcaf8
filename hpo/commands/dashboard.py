"""``hpo dashboard``: browse the studies (trials, curves, artifacts) in optuna-dashboard."""

from __future__ import annotations

import argparse
from typing import Any

from hpo.cli import _add_storage, port


def cmd_dashboard(args: argparse.Namespace) -> int:
    from hpo.dashboard import serve

    serve(args.storage, host=args.host, port=args.port, artifacts=args.artifacts)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="optuna-dashboard on the same storage, artifacts browsable")
    _add_storage(p)
    p.add_argument("--port", type=port, default=8080, help="default: 8080")
    p.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)")
    p.add_argument("--artifacts", help="artifact store directory (default: $HPO_ARTIFACTS or artifacts/)")
    p.set_defaults(func=cmd_dashboard)
