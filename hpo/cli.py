"""``hpo`` / ``python -m hpo``: the command line.

Every user-facing problem is one line on stderr and a non-zero exit (2 for bad input);
a traceback means a bug in ``hpo``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import warnings
import sys
from typing import Any, Callable

import optuna

from hpo.errors import HpoError, SpecError
from hpo.storage import open_storage, redact, resolve_url

Command = Callable[[argparse.Namespace], int]


def _add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="SQLAlchemy URL or journal:PATH (default: $HPO_STORAGE or sqlite:///studies.db)")


def _add_study(p: argparse.ArgumentParser, spec: bool = True) -> None:
    p.add_argument("--study", help="study name; its spec is search_spaces/NAME.yaml")
    if spec:
        p.add_argument("--spec", help="path of a spec file (instead of --study)")


def _load_study(args: argparse.Namespace) -> optuna.Study:
    storage = open_storage(args.storage)
    if not args.study:
        raise SpecError("command line: --study NAME is required")
    try:
        return optuna.load_study(study_name=args.study, storage=storage)
    except KeyError:
        raise HpoError(
            f"study '{args.study}' not found in {redact(resolve_url(args.storage))} "
            "(fix: `hpo studies` lists the studies there)"
        ) from None


def cmd_optimize(args: argparse.Namespace) -> int:
    from hpo.runner import load_study, open_session, run
    from hpo.spec import find_spec, load_spec

    # A parent of workers only finds the objective's module: the workers import it.
    spec = load_spec(find_spec(args.study, args.spec), import_objective=args.workers <= 1 and args.ray is None)
    if args.study and args.spec and spec.study != args.study:
        raise SpecError(f"{args.spec}: study: is '{spec.study}', --study says '{args.study}' (fix: make them agree)")
    if args.workers < 1:
        raise SpecError("command line: --workers must be >= 1")
    if args.ray is not None:
        from hpo.ray_backend import run_on_ray

        return run_on_ray(spec, args)
    if args.two_stage or args.dry_run:
        from hpo.commands.narrow import optimize_two_stage

        return optimize_two_stage(spec, args)
    if args.workers > 1:
        from hpo.workers import run_workers

        load_study(spec, open_storage(args.storage))  # create it once, before the workers race
        return run_workers(_without_workers(args.argv), args.workers)
    session = open_session(spec, args.storage, heartbeat=args.heartbeat, grace=args.grace,
                           max_retry=args.max_retry, artifacts=args.artifacts)
    print(f"study {spec.study} in {redact(resolve_url(args.storage))}", file=sys.stderr)
    try:
        study = run(session, n_trials=args.n_trials, timeout=args.timeout)
    except KeyboardInterrupt:
        print("interrupted: the running trial is marked FAIL; re-run the same command to continue",
              file=sys.stderr)
        return 130
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

    print(studies_table(open_storage(args.storage)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from hpo.tables import summary, trials_table

    study = _load_study(args)
    print(trials_table(study))
    print(summary(study))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpo", description="Persistent Optuna studies for training runs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("optimize", help="create or resume a study and run trials")
    _add_study(p)
    _add_storage(p)
    p.add_argument("--n-trials", type=int, help="total trials the study should hold (default: the spec's n_trials)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after S seconds")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (one GPU each on CUDA)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="workers as Ray tasks on every node: auto, ray://HOST:PORT or HOST:PORT (none: a local Ray)")
    p.add_argument("--heartbeat", type=int, default=10, help="heartbeat interval in s on an RDB storage (0: off)")
    p.add_argument("--grace", type=int, help="seconds without heartbeat before a trial is declared dead (4x heartbeat)")
    p.add_argument("--max-retry", type=int, default=3, help="times a dead or interrupted trial is re-queued")
    p.add_argument("--artifacts", help="checkpoint store directory (default: $HPO_ARTIFACTS or ./artifacts)")
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
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    signal.signal(signal.SIGTERM, _sigterm)
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args))
    except HpoError as e:
        print(f"error: {e}" if "\n" not in str(e) else str(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
