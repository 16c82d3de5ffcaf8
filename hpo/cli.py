"""``hpo`` / ``python -m hpo``: the command line.

Every user-facing problem is one line on stderr and a non-zero exit (2 for bad input);
a traceback means a bug in ``hpo``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from typing import Any, NoReturn, Protocol

import optuna

from hpo.commands import (best, copy, dashboard, import_, importance, narrow, optimize, pareto, plot, report,
                          rerun, show, storage_proxy, studies)
from hpo.errors import HpoError, first_line


class Command(Protocol):
    """A command module (:mod:`hpo.commands`)."""

    HELP: str

    def add_arguments(self, p: argparse.ArgumentParser) -> None: ...

    def take_action(self, args: argparse.Namespace) -> int: ...


# Every command, in the order ``hpo --help`` lists them.
_COMMANDS: dict[str, Command] = {
    "optimize": optimize,
    "studies": studies,
    "show": show,
    "best": best,
    "copy": copy,
    "dashboard": dashboard,
    "import": import_,
    "importance": importance,
    "narrow": narrow,
    "pareto": pareto,
    "plot": plot,
    "report": report,
    "rerun": rerun,
    "storage-proxy": storage_proxy,
}


class Parser(argparse.ArgumentParser):
    """argparse with its mistakes as one line ``command line: --flag: problem (fix: ...)``, exit 2
    (argparse prints the whole usage first, which buries the line that matters)."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        flag, sep, problem = message.partition(": ")
        where = f"{flag.split('/')[0]}: {problem}" if sep else message
        fix = "" if "(fix:" in message else f" (fix: see {self.prog} --help)"
        print(f"error: command line: {where}{fix}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """``hpo``'s parser: one sub-parser per command of :data:`_COMMANDS`."""
    parser = Parser(prog="hpo", description="Persistent Optuna studies for training runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in _COMMANDS.items():
        p = sub.add_parser(name, help=command.HELP)
        command.add_arguments(p)
        p.set_defaults(func=command.take_action)
    return parser


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str] | None = None) -> int:
    """Run one ``hpo`` command; returns its exit code (2: bad input, 1: another problem).

    Args:
        argv: the arguments; None reads ``sys.argv`` and, as ``python -m hpo`` does, puts the
            working directory first on the import path, so the ``hpo`` console script finds
            an objective module that lives here too.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    signal.signal(signal.SIGTERM, _sigterm)
    if argv is None:
        argv = sys.argv[1:]
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a mistake argparse already printed as one line
        return int(e.code or 0)
    args.argv = argv
    try:
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except HpoError as e:
        print(f"error: {e}" if "\n" not in str(e) else str(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `hpo show ... | head`: the reader has what it wanted
        _silence_stdout()
        return 0
    except Exception as e:  # noqa: BLE001 - a storage server gone mid-run is one line, not a traceback
        if not _lost_storage(e):
            raise
        print(f"error: the storage stopped answering: {type(e).__name__}: {first_line(e)} (fix: check that "
              "the database or hpo storage-proxy runs, then re-run the same command to continue)", file=sys.stderr)
        return 1


def _lost_storage(error: BaseException) -> bool:
    """A lost database or gRPC proxy connection (SQLAlchemy's OperationalError, gRPC's RpcError)."""
    kinds = {f"{type(e).__module__}.{type(e).__name__}" for e in (error, error.__cause__, error.__context__) if e}
    return any(k.startswith(("grpc.", "sqlalchemy.exc.OperationalError")) for k in kinds)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # a captured, in-process stdout has no real file
        pass
