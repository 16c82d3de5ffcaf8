"""Does a config read the same time on another CPU? Each clock across instruction sets, in one run.

A study moves between machines and several machines share one: the CPU presets' clock must
give a config the same time on any of them, not only under load on one (``clock_noise.py``).
This machine stands in for older CPUs by capping the instruction sets its kernels may use
(``MKL_ENABLE_INSTRUCTIONS``, ``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, set before torch
loads, in a child process per run): ``native`` (here AVX-512/AMX), ``avx2`` and ``sse4.2``. Each
child trains the CPU preset's default config and its batch-32 variant for ``--steps`` steps (one
thread, seed 0) and reads per training step:

- ``cpu_seconds``: the process's CPU seconds (no normalisation);
- ``norm_seconds``: the presets' clock, CPU seconds in yardstick steps (``objectives/ngpt_ttt.py``);
- ``matmul``: CPU seconds normalised by a fixed 128 x 512 x 256 matmul instead (the unit before
  the yardstick), for comparison.

It prints ms per step per clock and each capped CPU's ratio to native (goal for ``norm_seconds``:
within 1.10 on every CPU), and batch 32 / default per clock (a config's relative cost).

Run: ``python benchmarks/clock_transfer.py [--steps 100 --repeats 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CPUS = {
    "native": {},
    "avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "sse4.2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
CONFIGS = {"default": {}, "batch 32": {"batch_size": 32}}
CLOCKS = ("cpu_seconds", "norm_seconds", "matmul")
SPEC = Path(__file__).resolve().parents[1] / "search_spaces" / "ngpt_ttt.yaml"
MATMUL_NOMINAL = 0.0202  # the old unit: the matmul's CPU seconds on the earlier development machine


def matmul_seconds() -> float:
    """CPU seconds of the old reference: 40 fixed 128 x 512 x 256 matmuls."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(128, 512, generator=generator), torch.randn(512, 256, generator=generator)
    start = time.process_time()
    for _ in range(40):
        (a @ b).relu_()
    return time.process_time() - start


def child(steps: int) -> dict[str, dict[str, float]]:
    """In a capped process: ms per step of each config on each clock."""
    import torch
    import yaml

    from hpo.run.protocol import NullReporter
    from objectives.ngpt_ttt import DEFAULTS, train

    spec = yaml.safe_load(SPEC.read_text())
    base = {**spec["fixed"], **{k: DEFAULTS[k] for k in spec["space"]}, "device": "cpu", "threads": 1,
            "max_steps": steps}
    out: dict[str, dict[str, float]] = {"capability": torch.backends.cpu.get_cpu_capability()}  # type: ignore[dict-item]
    for name, change in CONFIGS.items():
        run = train({**base, **change}, NullReporter())
        matmul = statistics.median(matmul_seconds() for _ in range(9))
        out[name] = {"cpu_seconds": run["cpu_seconds"] / steps * 1e3, "norm_seconds": run["norm_seconds"] / steps * 1e3,
                     "matmul": run["cpu_seconds"] * MATMUL_NOMINAL / matmul / steps * 1e3}
    return out


def measure(cpu: str, steps: int) -> dict[str, Any]:
    env = {**os.environ, **CPUS[cpu]}
    done = subprocess.run([sys.executable, __file__, "--child", "--steps", str(steps)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="training steps per run (default 100)")
    p.add_argument("--repeats", type=int, default=2, help="runs per CPU, interleaved (default 2)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.steps)))
        return
    runs: dict[str, list[dict[str, Any]]] = {cpu: [] for cpu in CPUS}
    for r in range(args.repeats):
        for cpu in CPUS:
            runs[cpu].append(measure(cpu, args.steps))
            print(f"repeat {r} {cpu:7s} ({runs[cpu][-1]['capability']}) load {os.getloadavg()[0]:.1f}: "
                  + "  ".join(f"{c} {runs[cpu][-1]['default'][c]:.1f}" for c in CLOCKS) + " ms/step", flush=True)
    med = {cpu: {cfg: {c: statistics.median(run[cfg][c] for run in rs) for c in CLOCKS} for cfg in CONFIGS}
           for cpu, rs in runs.items()}
    print(f"\nms per training step, median of {args.repeats} ({args.steps} steps of the CPU preset's default, one thread)")
    print(f"{'cpu':8s}" + "".join(f"{c:>14s}" for c in CLOCKS) + "".join(f"{c + ' / native':>22s}" for c in CLOCKS))
    for cpu in CPUS:
        row = med[cpu]["default"]
        print(f"{cpu:8s}" + "".join(f"{row[c]:14.1f}" for c in CLOCKS)
              + "".join(f"{row[c] / med['native']['default'][c]:22.2f}" for c in CLOCKS))
    worst = max(max(med[cpu]["default"]["norm_seconds"] / med["native"]["default"]["norm_seconds"],
                    med["native"]["default"]["norm_seconds"] / med[cpu]["default"]["norm_seconds"]) for cpu in CPUS)
    print(f"goal: norm_seconds within 1.10 of native on every CPU -> {'met' if worst <= 1.10 else 'missed'} ({worst:.2f})")
    print("\nbatch 32 / default (a config's relative cost) per clock")
    for cpu in CPUS:
        print(f"{cpu:8s}" + "".join(f"{c} {med[cpu]['batch 32'][c] / med[cpu]['default'][c]:.2f}   " for c in CLOCKS))


if __name__ == "__main__":
    main()
