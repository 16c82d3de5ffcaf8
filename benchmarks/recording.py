"""Recording learning curves into a table: what ``record_curves.py`` and ``record_seeds.py`` share.

A run's reports are collected by :class:`RowReporter` (with the training thread's CPU seconds,
from the clock :func:`install_cpu_clock` puts into the objective) and appended to a CSV table,
one whole run at a time, by :func:`append`; ``replay.py`` reads the tables.
"""

from __future__ import annotations

import csv
import fcntl
import time
from pathlib import Path
from typing import Any

from hpo.run.protocol import StopTrial


def append(out: Path, header: list[str], cid: int, params: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Append one config's rows; shards append to the same file, one whole config at a time."""
    with out.open("a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        if f.tell() == 0:
            writer.writeheader()
        writer.writerows({"config_id": cid, **params, **row} for row in rows)
        f.flush()


def install_cpu_clock(objective: Any) -> type:
    """Make the objective's training clock also count this thread's CPU seconds."""

    class CpuClock(objective.TrainClock):  # type: ignore[name-defined,misc]
        latest: CpuClock | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cpu, self._cpu_since = 0.0, None
            CpuClock.latest = self

        def start(self) -> None:
            super().start()
            self._cpu_since = time.thread_time()

        def stop(self) -> None:
            if self._cpu_since is not None:
                self.cpu += time.thread_time() - self._cpu_since
                self._cpu_since = None
            super().stop()

    objective.TrainClock = CpuClock
    return CpuClock


class RowReporter:
    """Collects every report of one run; with ``budget_cpu``, ends it once that much CPU is spent."""

    def __init__(self, clock: Any, budget_cpu: float | None = None) -> None:
        self.rows: list[dict[str, float]] = []
        self.clock = clock
        self.budget_cpu = budget_cpu
        self.start = time.perf_counter()

    def __call__(self, step: int, **metrics: float) -> None:
        cpu = self.clock.latest.cpu  # the clock is stopped while the objective reports
        self.rows.append({"step": step, **metrics, "cpu_seconds": cpu,
                          "wall_seconds": time.perf_counter() - self.start})
        if self.budget_cpu is not None and cpu >= self.budget_cpu:
            raise StopTrial(f"{self.budget_cpu:g} s of CPU spent", pruned=False)


def params_of(rows: Any, names: list[str]) -> dict[str, Any]:
    """The parameters ``names`` of a recorded run (its rows of a table), as plain Python values."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in rows.iloc[0][names].items()}
