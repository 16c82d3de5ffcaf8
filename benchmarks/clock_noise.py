"""How much does machine load move time to target, on each clock? (issue 15 item 7)

The CPU preset's default config (``search_spaces/ngpt_ttt.yaml``: its fixed values plus the
objective's defaults for the searched parameters, seed 0, one thread) trains to the spec's target
``--repeats`` times alone ("quiet") and ``--repeats`` times while ``--hogs`` CPU-bound processes
(``python -c "while True: pass"``, started and killed here) compete for the cores ("loaded"),
interleaved quiet/loaded in one run. Every run trains the same steps to the same losses (the
objective is deterministic on CPU), so only the clocks can differ. Time to target is read on:

- ``norm_seconds``: those CPU seconds counted in yardstick steps, one fixed training step timed
  after each interval (the CPU presets' clock; ``objectives/ngpt_ttt.py``);
- ``cpu_seconds``: the training process's CPU seconds in training steps;
- ``train_seconds``: the wall-clock of the same intervals (the GPU preset's clock);
- ``wall``: the whole ``train()`` call until the target report (data, warm-up, validation too).

It prints the loaded/quiet ratio of the medians of each clock. Goal: the training clock within 1.15.
"Quiet" is whatever else the machine runs meanwhile: the load average is printed with each run.

Run: ``python benchmarks/clock_noise.py [--repeats 2 --hogs 2 --pin CPU]`` (``--pin 0``: the training
stays on one core, so the busy loops cannot make it migrate between cores and refill its caches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from objectives.ngpt_ttt import DEFAULTS, train

SPEC = Path(__file__).resolve().parents[1] / "search_spaces" / "ngpt_ttt.yaml"
CLOCKS = ("norm_seconds", "cpu_seconds", "train_seconds", "wall")


class Reached(Exception):
    """Raised by the reporter at the target: the run has what it needs."""


def default_config() -> tuple[dict[str, Any], float]:
    """The CPU preset's default config (one thread, CPU) and its target."""
    spec = yaml.safe_load(SPEC.read_text())
    config = {**spec["fixed"], **{k: DEFAULTS[k] for k in spec["space"]}, "device": "cpu", "threads": 1}
    return config, float(spec["target"]["below"])


def time_to_target(config: dict[str, Any], target: float) -> dict[str, float]:
    """Each clock's reading at the first report below ``target`` (a run that misses raises)."""
    start = time.perf_counter()
    hit: dict[str, float] = {}

    def report(step: int, **m: float) -> None:
        if m["val_loss"] < target:
            hit.update(norm_seconds=m["norm_seconds"], cpu_seconds=m["cpu_seconds"], train_seconds=m["train_seconds"],
                       wall=time.perf_counter() - start, step=step)
            raise Reached

    try:
        train(config, report)
    except Reached:
        return hit
    raise RuntimeError(f"the default config did not reach {target} within max_steps")


def start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` CPU-bound processes (busy loops) competing for the cores (free to run on any of them)."""
    every_cpu = lambda: os.sched_setaffinity(0, range(os.cpu_count() or 1))  # noqa: E731  not our pinning
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=every_cpu) for _ in range(n)]


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    """Kill the busy loops this script started (by their own handles)."""
    for p in hogs:
        p.kill()
    for p in hogs:
        p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="quiet/loaded pairs (default 2)")
    parser.add_argument("--hogs", type=int, default=2, help="competing CPU-bound processes (default 2)")
    parser.add_argument("--pin", type=int, default=None, metavar="CPU",
                        help="pin the training (not the busy loops) to this CPU: no migrations between cores")
    args = parser.parse_args()
    config, target = default_config()
    print(f"default config of {SPEC.name} to val_loss < {target}, 1 thread, {os.cpu_count()} cores; "
          f"{args.repeats} quiet/loaded pairs, {args.hogs} busy loops when loaded"
          + ("" if args.pin is None else f", training pinned to CPU {args.pin}"), flush=True)
    runs: dict[str, list[dict[str, float]]] = {"quiet": [], "loaded": []}
    for i in range(args.repeats):
        for kind in (("quiet", "loaded") if i % 2 == 0 else ("loaded", "quiet")):
            hogs = start_hogs(args.hogs) if kind == "loaded" else []
            if args.pin is not None:
                os.sched_setaffinity(0, {args.pin})
            try:
                time.sleep(1.0 if hogs else 0.0)  # let the busy loops get going
                r = time_to_target(config, target)
            finally:
                stop_hogs(hogs)
            runs[kind].append(r)
            print(f"  pair {i} {kind:6s} step {int(r['step'])}: norm_seconds {r['norm_seconds']:6.1f}"
                  f"  cpu_seconds {r['cpu_seconds']:6.1f}"
                  f"  train_seconds {r['train_seconds']:6.1f}  wall {r['wall']:6.1f}"
                  f"  (load average {os.getloadavg()[0]:.2f})", flush=True)
    print("loaded/quiet ratio of the medians (goal for the training clock, norm_seconds: <= 1.15)")
    for clock in CLOCKS:
        quiet = statistics.median(r[clock] for r in runs["quiet"])
        loaded = statistics.median(r[clock] for r in runs["loaded"])
        print(f"  {clock:13s} quiet {quiet:6.1f} s  loaded {loaded:6.1f} s  ratio {loaded / quiet:.2f}")


if __name__ == "__main__":
    main()
