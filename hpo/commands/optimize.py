"""``hpo optimize``: create or resume a study and run trials, here, in ``--workers N`` processes,
on a Ray cluster (``--ray``), or in two stages (``--two-stage``, ``--dry-run``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from hpo.commands.options import (add_narrow_options, add_run_options, add_storage, add_study, count, plan_options,
                                  run_options, seconds)
from hpo.errors import SpecError
from hpo.storage.backend import check_url, open_storage, redact, resolve_url
from hpo.run.workers import WORKER_ENV, without_workers

if TYPE_CHECKING:  # the spec module is imported when a spec is read, not for --help
    from hpo.specs.models import StudySpec

HELP = "create or resume a study and run trials"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo optimize``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p)
    add_storage(p)
    p.add_argument("--n-trials", type=count(1),
                   help="total trials the study should hold (default: the spec's n_trials)")
    p.add_argument("--timeout", type=seconds, help="stop starting new trials after S seconds")
    p.add_argument("--workers", type=count(1), default=1,
                   help="worker processes on this machine (one GPU each on CUDA)")
    add_run_options(p)
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="workers as Ray tasks on every node: auto, ray://HOST:PORT or HOST:PORT (none: a local Ray)")
    add_narrow_options(p)  # --two-stage, --dry-run and the narrowing flags


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo optimize``.

    Args:
        args: the parsed command line, with ``argv`` (the arguments as given: the workers'
            command line is built from them).
    """
    from hpo.run.session import load_spec
    from hpo.specs.files import find_spec

    check_url(args.storage)  # a bad --storage is one line before anything is read or imported
    # A parent of workers only finds the objective's module: the workers import it.
    spec = load_spec(find_spec(args.study, args.spec), import_objective=args.workers <= 1 and args.ray is None)
    if args.study and args.spec and spec.study != args.study:
        raise SpecError(f"{args.spec}: study: is '{spec.study}', --study says '{args.study}' (fix: make them agree)")
    if args.ray is not None:
        return _on_ray(spec, args)
    if args.two_stage or args.dry_run:
        return _two_stage(spec, args)
    if args.workers > 1:
        return _in_workers(spec, args)
    return _here(spec, args)


def _here(spec: StudySpec, args: argparse.Namespace) -> int:
    """Trials in this process."""
    from hpo.run.loop import run
    from hpo.run.session import open_session

    session = open_session(spec, args.storage, source=args.spec or f"search_spaces/{spec.study}.yaml",
                           **run_options(args))
    print(f"study {spec.study} in {redact(resolve_url(args.storage))}", file=sys.stderr)
    try:
        study = run(session, n_trials=args.n_trials, timeout=args.timeout)
    except KeyboardInterrupt:
        print("interrupted: the running trial is marked FAIL; re-run the same command to continue",
              file=sys.stderr)
        return 130
    if os.environ.get(WORKER_ENV) is None:  # a worker of --workers N: its parent sums up
        from hpo.analysis.tables import summary  # pandas: not needed before the end

        print(summary(study))
    return 0


def _in_workers(spec: StudySpec, args: argparse.Namespace) -> int:
    """``--workers N``: the same command in N processes on this machine."""
    from hpo.run.session import load_study
    from hpo.run.workers import run_workers

    study = load_study(spec, open_storage(args.storage))  # create it once, before the workers race
    code = run_workers(without_workers(args.argv), args.workers)
    if code == 0:
        from hpo.analysis.tables import summary

        print(summary(study))  # once, here: the workers print only their trials
    return code


def _on_ray(spec: StudySpec, args: argparse.Namespace) -> int:
    """``--ray [ADDRESS]``: the workers as Ray tasks (:mod:`hpo.run.ray_backend`)."""
    from hpo.run.ray_backend import run_on_ray, workers_given

    if args.two_stage or args.dry_run:
        raise SpecError("command line: --ray: not with --two-stage or --dry-run "
                        "(fix: run the two stages' studies with --ray one after the other)")
    return run_on_ray(spec, args.ray, args.argv, storage=args.storage, n_trials=args.n_trials, timeout=args.timeout,
                      workers=args.workers if workers_given(args.argv) else None, heartbeat=args.heartbeat,
                      grace=args.grace, max_retry=args.max_retry)


def _two_stage(spec: StudySpec, args: argparse.Namespace) -> int:
    """``--two-stage`` and ``--dry-run`` (:mod:`hpo.run.two_stage`), then ``--finalists``."""
    from hpo.analysis.tables import summary
    from hpo.run.two_stage import dry_run_text, run_two_stage

    if args.dry_run:
        options = plan_options(args) if args.two_stage else {}
        print(dry_run_text(spec, args.storage, args.n_trials, args.two_stage, **options))
        return 0
    if args.workers != 1:
        raise SpecError("command line: --two-stage runs one worker (fix: drop --workers, or run each stage "
                        "with hpo optimize --workers N and hpo narrow between them)")
    try:
        study = run_two_stage(spec, args.storage, n_trials=args.n_trials, timeout=args.timeout,
                              **plan_options(args), **run_options(args))
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to continue", file=sys.stderr)
        return 130
    if study is not None and args.finalists:
        from hpo.run.finalists import run_finalists
        from hpo.analysis.report import build_report, configs_lines
        from hpo.analysis.study_info import study_spec

        stage2 = study_spec(study)
        assert stage2 is not None  # hpo wrote it
        study = run_finalists(stage2, args.storage, args.finalists, args.seeds, **run_options(args))
        assert study is not None
        print("\n".join(configs_lines(build_report(study))[1:]))
    if study is not None:
        print(summary(study))
    return 0
