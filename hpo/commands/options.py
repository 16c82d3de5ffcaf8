"""The options the commands share, their argparse types, and the values they hand to the service.

Each value goes to the service by name (:func:`run_options`, :func:`plan_options`): a parameter
renamed on the service's side is a ``TypeError`` at the call, never a flag silently dropped.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

import optuna

from hpo.errors import SpecError
from hpo.storage.backend import load_study as _load_study_by_name

__all__ = [
    "DESIGNS",
    "add_narrow_options",
    "add_run_options",
    "add_storage",
    "add_study",
    "count",
    "factor",
    "load_study",
    "plan_options",
    "port",
    "run_options",
    "seconds",
]

DESIGNS = ("fractional", "none")


# --- argparse types ----------------------------------------------------------------------------
def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``.

    Args:
        minimum: the smallest number accepted.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (fix: e.g. {max(minimum, 1)})") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum} (fix: give {minimum} or more)")
        return value

    return parse


def _number(text: str, positive: bool, what: str, bound: str, example: str) -> float:
    """A finite float from a flag's value, > 0 if ``positive`` else >= 0; else one argparse error line."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {what} (fix: e.g. {example})") from None
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        raise argparse.ArgumentTypeError(f"{text} is not {bound} (fix: e.g. {example})")
    return value


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0.

    Args:
        text: the flag's value.
    """
    return _number(text, True, "number of seconds", "a positive finite number of seconds", "3600")


def factor(text: str) -> float:
    """An argparse type: a finite number >= 0 (a multiple; 0 turns the thing off).

    Args:
        text: the flag's value.
    """
    return _number(text, False, "number", "a finite number >= 0", "4, or 0 for off")


def port(text: str) -> int:
    """An argparse type: a TCP port, 1..65535.

    Args:
        text: the flag's value.
    """
    value = count(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (fix: 1..65535, e.g. 8080)")
    return value


# --- the study ---------------------------------------------------------------------------------
def add_storage(parser: argparse.ArgumentParser) -> None:
    """``--storage``: the study database.

    Args:
        parser: the command's parser.
    """
    parser.add_argument("--storage", help="SQLAlchemy URL, journal:PATH or grpc://HOST:PORT of hpo storage-proxy "
                                          "(default: $HPO_STORAGE or sqlite:///studies.db)")


def add_study(parser: argparse.ArgumentParser, spec: bool = True) -> None:
    """``--study`` and, for a command that reads a spec, ``--spec``.

    Args:
        parser: the command's parser.
        spec: also ``--spec PATH`` (a command that runs a spec file; not one that reads a study).
    """
    parser.add_argument("--study", help="study name; its spec is search_spaces/NAME.yaml")
    if spec:
        parser.add_argument("--spec", help="path of a spec file (instead of --study)")


def load_study(args: argparse.Namespace) -> optuna.Study:
    """The study ``--study`` names, for a command that only reads: it creates no database.

    Args:
        args: the parsed ``--study`` and ``--storage``.
    """
    if not args.study:
        raise SpecError("command line: --study: missing (fix: --study NAME; `hpo studies` lists them)")
    return _load_study_by_name(args.study, args.storage)


# --- running trials ----------------------------------------------------------------------------
def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that runs trials: heartbeats, retries, checkpoints.

    Args:
        parser: the command's parser.
    """
    parser.add_argument("--heartbeat", type=count(0), default=10,
                        help="heartbeat interval in s on an RDB storage (0: off)")
    parser.add_argument("--grace", type=count(1),
                        help="seconds without heartbeat before a trial is declared dead (4x heartbeat)")
    parser.add_argument("--max-retry", type=count(0), default=3, help="times a dead or interrupted trial is re-queued")
    parser.add_argument("--artifacts", help="checkpoint store directory (default: $HPO_ARTIFACTS or ./artifacts)")
    parser.add_argument("--watchdog", type=factor, default=4.0,
                        help="end a trial silent for this many times its budget in wall-clock seconds "
                             "(0: off; default 4)")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`add_run_options`' values, named as :func:`hpo.run.session.open_session` takes them.

    Args:
        args: the parsed command line.
    """
    return dict(heartbeat=args.heartbeat, grace=args.grace, max_retry=args.max_retry, artifacts=args.artifacts,
                watchdog=args.watchdog)


# --- narrowing ---------------------------------------------------------------------------------
def add_narrow_options(parser: argparse.ArgumentParser, two_stage: bool = True) -> None:
    """The narrowing flags, shared by ``hpo narrow`` and ``hpo optimize``.

    Args:
        parser: the command's parser.
        two_stage: also ``--two-stage``, ``--finalists`` and ``--seeds`` (``hpo optimize``).
    """
    if two_stage:
        parser.add_argument("--two-stage", action="store_true",
                            help="stage 1 to its budget, narrow into NAME_stage2, run stage 2 (resumable)")
        parser.add_argument("--finalists", type=count(0), default=0, metavar="K",
                            help="--two-stage: end by re-running stage 2's top K configs with --seeds more seeds")
        parser.add_argument("--seeds", type=count(1), default=3, help="--finalists: more training seeds each (default: 3)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (locked/narrowed, design) and stop")
    parser.add_argument("--top", type=count(2), default=5, help="narrow around the top K COMPLETE trials (default: 5)")
    parser.add_argument("--into", help="stage-2 study name (default: NAME_stage2)")
    parser.add_argument("--design", choices=DESIGNS, default="fractional",
                        help="fractional: a pyDOE3 generalized subset design, run first (default); none")
    parser.add_argument("--runs", type=count(1), default=36, help="about this many design points (default: 36)")
    parser.add_argument("--levels", type=int, choices=range(3, 7), metavar="{3..6}",
                        help="levels per numeric parameter (default: the count that best fits --runs)")


def plan_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`add_narrow_options`' values, named as :func:`hpo.run.two_stage.make_plan` takes them.

    Args:
        args: the parsed command line.
    """
    return dict(top=args.top, into=args.into, design=args.design, runs=args.runs, levels=args.levels)
