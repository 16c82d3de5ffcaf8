"""``hpo storage-proxy``: Optuna's gRPC storage proxy in front of the study database."""

from __future__ import annotations

import argparse
import sys

from hpo.commands.options import add_storage, count
from hpo.storage.proxy import DEFAULT_PORT, DEFAULT_THREADS

HELP = "Optuna's gRPC storage proxy in front of the study database"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo storage-proxy``.

    Args:
        args: the parsed command line.
    """
    from hpo.storage.proxy import make_server
    from hpo.storage.backend import redact, resolve_url

    url = resolve_url(args.storage)
    server = make_server(url, args.host, args.port, args.threads)
    server.start()
    print(f"storage proxy for {redact(url)} at grpc://{args.host}:{server.hpo_port}; "
          "workers: --storage grpc://HOST:PORT; Ctrl-C stops it", file=sys.stderr, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=2).wait()
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo storage-proxy``'s flags.

    Args:
        p: the command's parser.
    """
    add_storage(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT} (0: any free port, printed)")
    p.add_argument("--threads", type=count(1), default=DEFAULT_THREADS,
                   help=f"server threads (default: {DEFAULT_THREADS}); each worker waiting for the study lock holds one")
