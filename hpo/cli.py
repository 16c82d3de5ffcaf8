"""``hpo`` / ``python -m hpo``: the command line.

Every user-facing problem is one line on stderr and a non-zero exit (2 for bad input);
a traceback means a bug in ``hpo``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import pkgutil
import signal
import warnings
import sys
from typing import Any, Callable, NoReturn

import optuna

from hpo.errors import HpoError, SpecError, first_line
from hpo.storage import check_url, load_study, open_storage, redact, resolve_url

Command = Callable[[argparse.Namespace], int]
WORKER_ENV = "HPO_WORKER"  # set in the workers of ``optimize --workers N`` (hpo.workers)


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


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (fix: e.g. {max(minimum, 1)})") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum} (fix: give {minimum} or more)")
        return value

    return parse


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (fix: e.g. 3600)") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive finite number of seconds (fix: e.g. 3600)")
    return value


def factor(text: str) -> float:
    """An argparse type: a finite number >= 0 (a multiple; 0 turns the thing off)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (fix: e.g. 4, or 0 for off)") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0 (fix: e.g. 4, or 0 for off)")
    return value


def port(text: str) -> int:
    """An argparse type: a TCP port, 1..65535."""
    value = count(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (fix: 1..65535, e.g. 8080)")
    return value


def _add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="SQLAlchemy URL, journal:PATH or grpc://HOST:PORT of hpo storage-proxy (default: $HPO_STORAGE or sqlite:///studies.db)")


def _add_study(p: argparse.ArgumentParser, spec: bool = True) -> None:
    p.add_argument("--study", help="study name; its spec is search_spaces/NAME.yaml")
    if spec:
        p.add_argument("--spec", help="path of a spec file (instead of --study)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs trials: heartbeats, retries, checkpoints."""
    p.add_argument("--heartbeat", type=count(0), default=10, help="heartbeat interval in s on an RDB storage (0: off)")
    p.add_argument("--grace", type=count(1),
                   help="seconds without heartbeat before a trial is declared dead (4x heartbeat)")
    p.add_argument("--max-retry", type=count(0), default=3, help="times a dead or interrupted trial is re-queued")
    p.add_argument("--artifacts", help="checkpoint store directory (default: $HPO_ARTIFACTS or ./artifacts)")
    p.add_argument("--watchdog", type=factor, default=4.0,
                   help="end a trial silent for this many times its budget in wall-clock seconds (0: off; default 4)")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`add_run_options`' values as :func:`hpo.session.open_session` takes them."""
    return dict(heartbeat=args.heartbeat, grace=args.grace, max_retry=args.max_retry, artifacts=args.artifacts,
                watchdog=args.watchdog)


def _load_study(args: argparse.Namespace) -> optuna.Study:
    """The study ``--study`` names, for a command that only reads: it creates no database."""
    if not args.study:
        raise SpecError("command line: --study: missing (fix: --study NAME; `hpo studies` lists them)")
    return load_study(args.study, args.storage)


def cmd_optimize(args: argparse.Namespace) -> int:
    from hpo.loop import run
    from hpo.session import load_study, open_session
    from hpo.spec import find_spec, load_spec

    check_url(args.storage)  # a bad --storage is one line before anything is read or imported
    # A parent of workers only finds the objective's module: the workers import it.
    spec = load_spec(find_spec(args.study, args.spec), import_objective=args.workers <= 1 and args.ray is None)
    if args.study and args.spec and spec.study != args.study:
        raise SpecError(f"{args.spec}: study: is '{spec.study}', --study says '{args.study}' (fix: make them agree)")
    if args.ray is not None:
        from hpo.ray_backend import run_on_ray

        return run_on_ray(spec, args)
    if args.two_stage or args.dry_run:
        from hpo.commands.narrow import optimize_two_stage

        return optimize_two_stage(spec, args)
    if args.workers > 1:
        from hpo.workers import run_workers

        study = load_study(spec, open_storage(args.storage))  # create it once, before the workers race
        code = run_workers(_without_workers(args.argv), args.workers)
        if code == 0:
            from hpo.tables import summary

            print(summary(study))  # once, here: the workers print only their trials
        return code
    session = open_session(spec, args.storage, source=args.spec or f"search_spaces/{spec.study}.yaml", **run_options(args))
    print(f"study {spec.study} in {redact(resolve_url(args.storage))}", file=sys.stderr)
    try:
        study = run(session, n_trials=args.n_trials, timeout=args.timeout)
    except KeyboardInterrupt:
        print("interrupted: the running trial is marked FAIL; re-run the same command to continue",
              file=sys.stderr)
        return 130
    if os.environ.get(WORKER_ENV) is None:  # a worker of --workers N: its parent sums up
        from hpo.tables import summary  # pandas: not needed before the end

        print(summary(study))
    return 0


def _without_workers(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


def cmd_studies(args: argparse.Namespace) -> int:
    from hpo.tables import studies_table

    print(studies_table(open_storage(args.storage, create=False)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from hpo.tables import summary, trials_table

    study = _load_study(args)
    print(trials_table(study))
    print(summary(study))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hpo", description="Persistent Optuna studies for training runs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("optimize", help="create or resume a study and run trials")
    _add_study(p)
    _add_storage(p)
    p.add_argument("--n-trials", type=count(1),
                   help="total trials the study should hold (default: the spec's n_trials)")
    p.add_argument("--timeout", type=seconds, help="stop starting new trials after S seconds")
    p.add_argument("--workers", type=count(1), default=1,
                   help="worker processes on this machine (one GPU each on CUDA)")
    add_run_options(p)
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="workers as Ray tasks on every node: auto, ray://HOST:PORT or HOST:PORT (none: a local Ray)")
    from hpo.commands.narrow import add_options

    add_options(p)  # --two-stage, --dry-run and the narrowing flags
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("studies", help="list the studies in a storage")
    _add_storage(p)
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser("show", help="one study's trials as a table")
    _add_study(p, spec=False)
    _add_storage(p)
    p.set_defaults(func=cmd_show)

    for register in _plugins():
        register(sub)
    return parser


def _plugins() -> list[Callable[[Any], None]]:
    """Subcommands that live in their own modules (each has ``register(subparsers)``)."""
    import hpo.commands

    found = []
    for info in sorted(pkgutil.iter_modules(hpo.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"hpo.commands.{info.name}")
        found.append(module.register)
    return found


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
