"""Finalists over seeds: the top-K configs of a study re-run with more training seeds.

One training run's time to target is one draw: seed 004 re-runs its finalists over 3 seeds,
seed 003 runs configs 2-3 times and takes the median. :func:`plan` picks the study's top-K
distinct configs (:func:`hpo.analysis.ranking.rank`) and pairs each with the seeds ``base+1 ..
base+S`` (``base``: the spec's ``fixed`` value of ``seed_key``); :func:`enqueue` queues the
pairs no trial holds yet as new trials linked to their original (user attributes
``rerun_of`` and ``seed``), so running it again resumes instead of repeating. Seed re-runs
are not pruned (they run to the target or the budget), do not count toward ``--n-trials``,
and are not ranked on their own: ``hpo report`` groups them with their original and ranks
configs by their median over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo._optuna import RERUN_ATTR, SEED_ATTR
from hpo.errors import HpoError
from hpo.storage.locks import StudyLock
from hpo.analysis.ranking import rank
from hpo.specs.models import StudySpec, same_params

HELD = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


@dataclass(frozen=True)
class Rerun:
    """One (finalist, seed) pair: the trial whose config it re-runs, that config, the seed."""

    of: int
    params: dict[str, Any]
    seed: int
    held: bool  # a trial already runs or ran it


def seeds_of(spec: StudySpec, n: int) -> list[int]:
    """``n`` seeds after the study's own (``fixed[seed_key]``)."""
    base = spec.fixed.get(spec.seed_key)
    if isinstance(base, bool) or not isinstance(base, int):
        raise HpoError(f"study '{spec.study}': fixed.{spec.seed_key} is {base!r}, not an integer seed every "
                       f"trial ran with (fix: set fixed.{spec.seed_key}, or seed_key: to the objective's seed key)")
    return [base + i for i in range(1, n + 1)]


def finalists(trials: list[FrozenTrial], directions: list[Any], top: int) -> list[FrozenTrial]:
    """The best ``top`` trials with distinct configs."""
    out: list[FrozenTrial] = []
    for t in rank(trials, directions)[0]:
        if not any(same_params(t.params, f.params) for f in out):
            out.append(t)
        if len(out) == top:
            break
    return out


def plan(study: optuna.Study, spec: StudySpec, top: int, seeds: int) -> list[Rerun]:
    """Every (finalist, seed) pair, with whether a trial holds it already.

    Args:
        study: the study.
        spec: its spec (for ``seed_key`` and the study's own seed).
        top: how many distinct configs.
        seeds: how many more seeds each.
    """
    if top < 1 or seeds < 1:
        raise HpoError("command line: --top and --seeds must be >= 1 (fix: e.g. --top 3 --seeds 3)")
    trials = study.get_trials(deepcopy=False)
    chosen = finalists(trials, list(study.directions), top)
    if not chosen:
        raise HpoError(f"study '{study.study_name}' has no COMPLETE trial to re-run (fix: run hpo optimize first)")
    held = {(t.user_attrs[RERUN_ATTR], t.user_attrs.get(SEED_ATTR)) for t in trials
            if RERUN_ATTR in t.user_attrs and t.state in HELD}
    return [Rerun(t.number, dict(t.params), s, (t.number, s) in held)
            for t in chosen for s in seeds_of(spec, seeds)]


def enqueue(study: optuna.Study, reruns: list[Rerun], lock: StudyLock | None = None) -> int:
    """Queue the pairs no trial holds; returns how many were queued. Under the study lock, so
    two processes started together do not both queue one."""
    if lock is not None:
        lock.acquire()
    try:
        held = {(t.user_attrs[RERUN_ATTR], t.user_attrs.get(SEED_ATTR)) for t in study.get_trials(deepcopy=False)
                if RERUN_ATTR in t.user_attrs and t.state in HELD}
        todo = [r for r in reruns if (r.of, r.seed) not in held]
        for r in todo:
            study.enqueue_trial(r.params, user_attrs={RERUN_ATTR: r.of, SEED_ATTR: r.seed})
        return len(todo)
    finally:
        if lock is not None:
            lock.release()


def plan_text(reruns: list[Rerun], seed_key: str) -> str:
    """The dry run: one line per finalist, its seeds, and which of them still need to run."""
    lines = []
    for of in dict.fromkeys(r.of for r in reruns):
        mine = [r for r in reruns if r.of == of]
        todo = [r.seed for r in mine if not r.held]
        lines.append(f"trial {of} {mine[0].params}: {seed_key} {', '.join(str(r.seed) for r in mine)}"
                     + (f" ({len(todo)} to run: {', '.join(map(str, todo))})" if todo else " (all run or queued)"))
    total = sum(not r.held for r in reruns)
    return "\n".join([*lines, f"{total} seed re-run(s) to run"])


def run_finalists(spec: StudySpec, storage_url: str | None, top: int, seeds: int, *, dry_run: bool = False,
                  out: Any = None, **session_kwargs: Any) -> optuna.Study | None:
    """Plan, queue and run the seed re-runs of a study's top ``top`` configs (resumable).

    Args:
        spec: the study's spec (as stored with it).
        storage_url: the storage.
        top: how many distinct configs.
        seeds: how many more seeds each.
        dry_run: print the plan and stop.
        out: where progress goes (default: stderr).
        session_kwargs: :func:`hpo.run.session.open_session` options (heartbeat, grace, ...).
    """
    import sys

    from hpo.run.loop import counted_trials, run
    from hpo.run.session import open_session
    from hpo.storage.backend import open_storage

    out = out or sys.stderr
    if dry_run:
        study = optuna.load_study(study_name=spec.study, storage=open_storage(storage_url))
        print(plan_text(plan(study, spec, top, seeds), spec.seed_key), file=out)
        return None
    session = open_session(spec, storage_url, **session_kwargs)
    reruns = plan(session.study, spec, top, seeds)
    print(plan_text(reruns, spec.seed_key), file=out)
    enqueue(session.study, reruns, session.lock)
    return run(session, n_trials=max(1, counted_trials(session.study)), out=out)
