"""Studies and sessions for the benchmarks that time hpo against a storage.

``report_speed.py``, ``report_overhead.py`` and ``scale_out.py`` fill a study with thousands of
finished trials (:func:`bulk_add`: one insert per Optuna table, where ``study.add_trials``
commits row by row, about 100 s per 1,000 trials with curves), open an hpo session on it as
``hpo optimize`` does (:func:`open_bench_session`), and time ``report()`` calls
(:func:`timed_reports`, :func:`percentiles`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo._optuna import insert_trials, metric_key, rdb_backend, storage_of, study_id
from hpo.run.session import Session, open_session
from hpo.specs.models import StudySpec, parse_spec

STEPS = 40  # the curves of finished_trial


def bulk_add(study: optuna.Study, trials: list[FrozenTrial]) -> None:
    """Insert finished trials with one executemany per Optuna table, in one transaction."""
    insert_trials(rdb_backend(storage_of(study)), study_id(study), trials)


def finished_trial(i: int) -> FrozenTrial:
    """The ``i``-th finished trial of a 40-step power-law curve, with the metrics hpo records."""
    x = (i % 97) / 97
    curve = {s: 2 + x + 3 / s for s in range(1, STEPS + 1)}
    return create_trial(
        state=TrialState.COMPLETE, value=curve[STEPS], params={"x": x},
        distributions={"x": FloatDistribution(0, 1)}, intermediate_values=curve,
        system_attrs={metric_key(s): {"val_loss": v, "tokens": s * 1000.0} for s, v in curve.items()},
    )


def median_spec(name: str) -> StudySpec:
    """A one-parameter study of ``objectives.synthetic`` with TPE and Optuna's median pruner."""
    return parse_spec({"study": name, "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
                       "sampler": {"name": "tpe"}, "pruners": [{"name": "median"}],
                       "space": {"x": {"type": "float", "low": 0, "high": 1}}}, "bench")


def open_bench_session(url: str, name: str, artifacts: str | Path) -> Session:
    """``hpo.run.session.open_session`` on study ``name`` (:func:`median_spec`) at ``url``, without
    heartbeats (the timed calls run outside ``study.optimize``, where none beats)."""
    return open_session(median_spec(name), url, heartbeat=0, artifacts=str(artifacts))


def timed_reports(report: Any, steps: int) -> list[float]:
    """Seconds of each of ``steps`` calls of hpo's ``report``, never pruned (better than every trial)."""
    times = []
    for s in range(1, steps + 1):
        t0 = time.perf_counter()
        report(s, val_loss=1.0 + 3 / s, tokens=s * 1000.0)
        times.append(time.perf_counter() - t0)
    return times


def percentiles(xs: list[float]) -> tuple[float, float]:
    """(median, p90) of seconds ``xs``, in milliseconds."""
    xs = sorted(xs)
    return statistics.median(xs) * 1e3, xs[int(0.9 * (len(xs) - 1))] * 1e3
