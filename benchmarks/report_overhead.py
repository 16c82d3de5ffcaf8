"""Latency of one ``report()`` (write + pruning decision) vs raw Optuna, side by side.

A study holds 1000 finished trials of 40 steps; a new trial reports 40 steps with a
MedianPruner. ``hpo``'s reporter and Optuna's ``trial.report`` + ``trial.should_prune``
run in the same process against the same database, on SQLite and on PostgreSQL.
Goal: median <= 1 ms on SQLite and <= 2 ms on PostgreSQL. Every reported value is
committed before the call returns (checked at the end of each run).

    python benchmarks/report_overhead.py [--trials 1000] [--pg URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution

from hpo.run.trial import new_reporter
from hpo.storage.backend import open_storage

from storage_bench import STEPS, bulk_add, finished_trial, open_bench_session, percentiles, timed_reports

ROUNDS = 5


def _populate(url: str, name: str, n: int) -> None:
    study = optuna.create_study(study_name=name, storage=open_storage(url))
    bulk_add(study, [finished_trial(i) for i in range(n)])


def bench_hpo(url: str, name: str, artifacts: Path) -> list[float]:
    session = open_bench_session(url, name, artifacts)
    times: list[float] = []
    for _ in range(ROUNDS):
        trial = session.study.ask({"x": FloatDistribution(0, 1)})
        report = new_reporter(session, trial, {})
        times += timed_reports(report, STEPS)
        report.close()
        stored = open_storage(url).get_trial(trial._trial_id)
        assert len(stored.intermediate_values) == STEPS, "every report must be in the database"
        session.study.tell(trial, 1.0 + 3 / STEPS)
    return times


def bench_optuna(url: str, name: str) -> list[float]:
    study = optuna.load_study(study_name=name, storage=open_storage(url),
                              pruner=optuna.pruners.MedianPruner())
    times: list[float] = []
    for _ in range(ROUNDS):
        trial = study.ask({"x": FloatDistribution(0, 1)})
        for s in range(1, STEPS + 1):
            t0 = time.perf_counter()
            trial.report(1.0 + 3 / s, s)
            trial.should_prune()
            times.append(time.perf_counter() - t0)
        study.tell(trial, 1.0 + 3 / STEPS)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}", "postgresql": args.pg}
        print(f"{args.trials} finished trials x {STEPS} steps; {ROUNDS} new trials x {STEPS} reports each")
        print(f"{'storage':<11} {'hpo median':>11} {'hpo p90':>9} {'optuna median':>14} {'optuna p90':>11} {'speed-up':>9}")
        for backend, url in backends.items():
            name = f"bench-{uuid.uuid4().hex[:8]}"
            _populate(url, name, args.trials)
            ours = bench_hpo(url, name, Path(tmp) / "artifacts")
            raw = bench_optuna(url, name)
            (om, o90), (rm, r90) = percentiles(ours), percentiles(raw)
            print(f"{backend:<11} {om:9.3f}ms {o90:7.3f}ms {rm:12.3f}ms {r90:9.3f}ms {rm / om:8.1f}x")
            goal = 1.0 if backend == "sqlite" else 2.0
            print(f"{'':<11} goal: hpo median <= {goal} ms -> {'met' if om <= goal else 'NOT met'}")
            optuna.delete_study(study_name=name, storage=open_storage(url))


if __name__ == "__main__":
    main()
