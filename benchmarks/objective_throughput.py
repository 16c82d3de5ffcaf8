"""Throughput of the ngpt_ttt objective through ``hpo`` against bare, and NS vs PE timing.

(a) The same config (the CPU spec's fixed values and the objective's defaults, shortened to
``--steps``) runs bare with a trivial reporter and as a one-trial ``hpo`` study on a temporary
SQLite file (reporter, curve writes, pruner view), interleaved ``--repeats`` times with the order
alternating, in one process. Tokens per second are counted two ways: per ``train_seconds`` (the
training clock; it stops while reporting, so it should match exactly) and per wall second of
the ``train()`` call (this includes reporting and the database writes: the overhead that counts).
Target: hpo/bare ≥ 0.97 on the wall-clock figure (medians).

(b) Seconds per orthogonalisation, Newton–Schulz vs Polar Express, for every Muon matrix shape
of the CPU and GPU presets (float32 on CPU; bfloat16 on CUDA too when a GPU is present).

Run: ``python benchmarks/objective_throughput.py [--steps 100 --repeats 5 --threads 1]``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpo.protocol import NullReporter
from hpo.runner import optimize
from hpo.spec import parse_spec
from objectives.muon import orthogonalize
from objectives.ngpt_ttt import DEFAULTS, train

SPECS = {"cpu": ROOT / "search_spaces" / "ngpt_ttt.yaml", "gpu": ROOT / "search_spaces" / "ngpt_ttt_gpu.yaml"}


def bench_config(steps: int, threads: int) -> dict[str, Any]:
    """The CPU spec's fixed values plus the objective's defaults for its searched parameters."""
    spec = yaml.safe_load(SPECS["cpu"].read_text())
    searched = {k: DEFAULTS[k] for k in spec["space"]}
    return {**spec["fixed"], **searched, "max_steps": steps, "threads": threads, "device": "cpu"}


def run_bare(config: dict[str, Any]) -> dict[str, float]:
    start = time.perf_counter()
    out = train(config, NullReporter())
    return {"tokens": out["tokens"], "train_seconds": out["train_seconds"], "wall": time.perf_counter() - start}


def run_hpo(config: dict[str, Any], workdir: Path, index: int) -> dict[str, float]:
    """One trial of a study whose space is empty: every value fixed, no target, no pruner."""
    spec = parse_spec({
        "study": f"throughput_{index}",
        "objective": "objectives.ngpt_ttt:train",
        "metrics": {"val_loss": "minimize"},
        "curve": {"metric": "val_loss", "direction": "minimize"},
        "n_trials": 1,
        "sampler": {"name": "random", "options": {"seed": 0}},
        "fixed": config,
    }, "objective_throughput")
    study = optimize(spec, f"sqlite:///{workdir / 'throughput.db'}", n_trials=1, out=io.StringIO())
    attrs = study.trials[-1].user_attrs
    return {"tokens": attrs["tokens"], "train_seconds": attrs["train_seconds"], "wall": attrs["wall_seconds"]}


def throughput(steps: int, repeats: int, threads: int) -> None:
    config = bench_config(steps, threads)
    print(f"(a) tokens/s, {steps} steps of the CPU default config, {threads} thread(s), {repeats} interleaved pairs")
    run_bare({**config, "max_steps": 10})  # untimed: tokenise, warm the allocator and kernels
    rows: dict[str, list[dict[str, float]]] = {"bare": [], "hpo": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            order = ["bare", "hpo"] if i % 2 == 0 else ["hpo", "bare"]
            for kind in order:
                r = run_bare(config) if kind == "bare" else run_hpo(config, Path(tmp), i)
                rows[kind].append(r)
                print(f"  pair {i} {kind:4s}  {r['tokens'] / r['wall']:8.0f} tok/s per wall second of train()"
                      f"  {r['tokens'] / r['train_seconds']:8.0f} tok/s per train_second", flush=True)
    for clock in ("wall", "train_seconds"):
        rate = {k: [r["tokens"] / r[clock] for r in v] for k, v in rows.items()}
        pairs = [h / b for h, b in zip(rate["hpo"], rate["bare"])]
        print(f"  per {clock:13s}: median bare {statistics.median(rate['bare']):7.0f}"
              f"  hpo {statistics.median(rate['hpo']):7.0f} tok/s;  hpo/bare per pair"
              f" {' '.join(f'{p:.3f}' for p in pairs)}  median {statistics.median(pairs):.3f}")


def muon_shapes(preset: str) -> list[tuple[int, int]]:
    """The distinct Muon matrix shapes of a preset: q/k/v/o (d×d), c_fc (8d×d), mlp_c_proj (d×4d)."""
    d = int(yaml.safe_load(SPECS[preset].read_text())["fixed"]["d_model"])
    return [(d, d), (8 * d, d), (d, 4 * d)]


def time_orthogonalize(shape: tuple[int, int], method: str, device: str, dtype: torch.dtype, repeats: int) -> float:
    g = torch.randn(*shape, device=device)
    orthogonalize(g, method, dtype)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        orthogonalize(g, method, dtype)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def orthogonalization_timing() -> None:
    print("(b) seconds per orthogonalisation (5 iterations)")
    targets = [("cpu", torch.float32)] + ([("cuda", torch.bfloat16)] if torch.cuda.is_available() else [])
    for device, dtype in targets:
        for preset in ("cpu", "gpu"):
            for shape in muon_shapes(preset):
                repeats = 20 if max(shape) <= 1024 else 3
                ns, pe = (time_orthogonalize(shape, m, device, dtype, repeats) for m in ("newton_schulz", "polar_express"))
                print(f"  {device} {str(dtype).removeprefix('torch.'):8s} {preset} preset {shape!s:12s}"
                      f"  NS {ns * 1e3:8.2f} ms  PE {pe * 1e3:8.2f} ms  PE/NS {pe / ns:.2f}", flush=True)


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # Optuna's experimental-feature notices
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_throughput:
        throughput(args.steps, args.repeats, args.threads)
    orthogonalization_timing()


if __name__ == "__main__":
    main()
