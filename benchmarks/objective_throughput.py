"""Throughput of the ngpt_ttt objective through ``hpo`` against bare, NS vs PE timing, and whether
the CPU preset ranks: time to target per config and seed, and the n-gram floor of its target.

(a) The same config (the CPU spec's fixed values and the objective's defaults, shortened to
``--steps``) runs bare with a trivial reporter and as a one-trial ``hpo`` study on a temporary
SQLite file (reporter, curve writes, pruner view), interleaved ``--repeats`` times with the order
alternating, in one process. Tokens per second are counted two ways: per ``train_seconds`` (the
training clock; it stops while reporting, so it should match exactly) and per wall second of
the ``train()`` call (this includes reporting and the database writes: the overhead that counts).
Target: hpo/bare ≥ 0.97 on the wall-clock figure (medians).

(b) Seconds per orthogonalisation, Newton–Schulz vs Polar Express, for every Muon matrix shape
of the CPU and GPU presets (float32 on CPU; bfloat16 on CUDA too when a GPU is present).

(c) Time to target, config x seed: the CPU preset's default config (``search_spaces/ngpt_ttt.yaml``'s
fixed values and the objective's defaults for the searched ones) and its one-factor variants that
seed 003 asks about (Polar Express, AdamW, batch 8 and 32), each with training seeds 0-2, trained to
the spec's target on its clock (``norm_seconds``) with the spec's budget, interleaved seed by seed
in one run. A run that misses is censored (``>= budget``). A variant *separates* from the default
when the ranges of their three seeds do not overlap. The default's median should be about half the
budget.

(d) The n-gram floor: byte n-gram models (orders 1-6, interpolated absolute discounting, D = 0.75)
counted on the corpus's training split and scored on its validation split, in nats per byte, so
the target is checked to be out of reach of a trivial model.

Run: ``python benchmarks/objective_throughput.py [--steps 100 --repeats 5 --threads 1 --seeds 3 --jobs 1]``
(``--only ttt,ngram`` for parts c and d; parts: throughput, orthog, ttt, ngram).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import math
import multiprocessing
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import yaml

from hpo.run.protocol import NullReporter
from hpo.run.loop import optimize
from hpo.specs.models import parse_spec
from objectives.data import load_splits
from objectives.muon import orthogonalize
from objectives.ngpt_ttt import DEFAULTS, train

ROOT = Path(__file__).resolve().parents[1]
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
    """The distinct matrix shapes Muon orthogonalises in a preset: q/k/v/o (d×d), each half of
    the stacked c_fc (4d×d; ``split: 2``), mlp_c_proj (d×4d)."""
    d = int(yaml.safe_load(SPECS[preset].read_text())["fixed"]["d_model"])
    return [(d, d), (4 * d, d), (d, 4 * d)]


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


# (c) the variants of the default config that the table compares (seed 003's questions)
VARIANTS: dict[str, dict[str, Any]] = {
    "default (Muon, Newton-Schulz)": {},
    "Polar Express": {"orthog": "polar_express"},
    "AdamW": {"optimizer": "adamw"},
    "batch 8": {"batch_size": 8},
    "batch 32": {"batch_size": 32},
}


class _Reached(Exception):
    """Raised by the table's reporter at the target or past the budget."""


def time_to_target(config: dict[str, Any], target: float, budget: float, clock: str) -> tuple[float, bool, int]:
    """(seconds on ``clock``, reached, step) at the first report below ``target``, else at the budget."""
    seen: dict[str, Any] = {}

    def report(step: int, **m: float) -> None:
        seen.update(step=step, seconds=m[clock])
        if m["val_loss"] < target:
            seen["reached"] = True
            raise _Reached
        if m[clock] >= budget:
            raise _Reached

    try:
        train(config, report)
    except _Reached:
        pass
    reached = bool(seen.get("reached"))
    return (float(seen["seconds"]) if reached else budget), reached, int(seen.get("step", 0))


def _cell(config: dict[str, Any], target: float, budget: float, clock: str) -> tuple[float, bool, int]:
    torch.set_num_threads(int(config["threads"]))
    return time_to_target(config, target, budget, clock)


def ttt_table(seeds: int, threads: int, jobs: int) -> None:
    """Part (c): every variant x seed, submitted seed by seed (``jobs`` at a time), then the table."""
    spec = yaml.safe_load(SPECS["cpu"].read_text())
    target, budget = float(spec["target"]["below"]), float(spec["trial_budget_seconds"])
    clock = spec.get("clock") or spec["target"].get("clock", "train_seconds")
    base = {**spec["fixed"], **{k: DEFAULTS[k] for k in spec["space"]}, "threads": threads, "device": "cpu"}
    print(f"(c) time to target (val_loss < {target}) on {clock}, budget {budget:g} s, {seeds} seeds, "
          f"{threads} thread(s), {jobs} run(s) at a time; corpus {base['dataset']}, val every "
          f"{base['val_freq']} steps on {base['val_batches']} x {base['val_batch_size']} windows", flush=True)
    order = [(seed, name) for seed in range(seeds) for name in VARIANTS]
    cells: dict[str, list[tuple[float, bool, int]]] = {name: [(math.nan, False, 0)] * seeds for name in VARIANTS}
    load_splits(str(base["dataset"]))  # prepare once, before any worker starts
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_cell, {**base, **VARIANTS[name], "seed": seed}, target, budget, clock): (seed, name)
                   for seed, name in order}
        for future in concurrent.futures.as_completed(futures):
            seed, name = futures[future]
            cells[name][seed] = future.result()
            t, ok, step = cells[name][seed]
            print(f"  seed {seed} {name:30s} {t:6.1f} s{'' if ok else ' (missed: censored)'} at step {step}", flush=True)
    first = next(iter(VARIANTS))
    fmt = lambda c: f"{c[0]:6.1f}" if c[1] else f">={c[0]:4.0f}"  # noqa: E731
    print(f"  {'config':30s} " + " ".join(f"seed {i:<3d}" for i in range(seeds)) + "  median  spread  vs default")
    lo_d, hi_d = min(c[0] for c in cells[first]), max(c[0] for c in cells[first])
    for name, row in cells.items():
        times = [c[0] for c in row]
        lo, hi = min(times), max(times)
        verdict = "-" if name == first else ("separates" if hi < lo_d or lo > hi_d else "overlaps")
        print(f"  {name:30s} " + " ".join(f"{fmt(c):8s}" for c in row)
              + f"  {statistics.median(times):6.1f}  {hi - lo:6.1f}  {verdict}")
    default_median = statistics.median(c[0] for c in cells[first])
    print(f"  default's median {default_median:.1f} s = {default_median / budget:.2f} of the {budget:g} s budget")


def ngram_nats(train_tokens: np.ndarray, val_tokens: np.ndarray, max_order: int = 6, discount: float = 0.75) -> dict[int, float]:
    """Part (d): val cross-entropy (nats/byte) of interpolated absolute-discounting byte n-grams.

    p_n(x | c) = (max(N(c x) − D, 0) + D · T(c) · p_{n−1}(x | c')) / N(c), with N the counts of
    the training split, T(c) the number of distinct bytes after c and c' the context without its
    first byte; unseen contexts back off to p_{n−1}; order 1 is add-one. Scored on every val byte
    after the first ``max_order``.
    """
    tr, va = train_tokens.astype(np.int64), val_tokens.astype(np.int64)

    def codes(a: np.ndarray, n: int) -> np.ndarray:  # each n-gram as one base-256 integer
        code = np.zeros(len(a) - n + 1, dtype=np.int64)
        for j in range(n):
            code = code * 256 + a[j:len(a) - n + 1 + j]
        return code

    def lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        i = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return np.where(keys[i] == query, values[i], 0)

    counts = np.bincount(tr, minlength=256).astype(float)
    p = (counts[va] + 1) / (counts.sum() + 256)
    out = {1: float(-np.log(p[max_order:]).mean())}
    for k in range(1, max_order):  # contexts of k bytes
        grams, n_gram = np.unique(codes(tr, k + 1), return_counts=True)
        contexts, n_types = np.unique(grams // 256, return_counts=True)  # T(c)
        ctx_keys, n_ctx = np.unique(codes(tr, k)[:-1], return_counts=True)  # N(c)
        q = codes(va, k + 1)
        c_gram, c_ctx, c_types = lookup(grams, n_gram, q), lookup(ctx_keys, n_ctx, q // 256), lookup(contexts, n_types, q // 256)
        lower = p[k:]
        mixed = (np.maximum(c_gram - discount, 0) + discount * c_types * lower) / np.maximum(c_ctx, 1)
        p = np.concatenate([p[:k], np.where(c_ctx > 0, mixed, lower)])
        out[k + 1] = float(-np.log(p[max_order:]).mean())
    return out


def ngram_floor() -> None:
    spec = yaml.safe_load(SPECS["cpu"].read_text())
    dataset, target = spec["fixed"]["dataset"], float(spec["target"]["below"])
    splits = load_splits(dataset)
    scores = ngram_nats(np.asarray(splits.train), np.asarray(splits.val))
    print(f"(d) byte n-gram models on {dataset!r} ({len(splits.train)} train / {len(splits.val)} val bytes), "
          "nats/byte on val:")
    print("  " + "  ".join(f"{n}-gram {v:.3f}" for n, v in scores.items()))
    beaten = [n for n, v in scores.items() if target < v]
    best = min(scores, key=scores.get)  # type: ignore[arg-type]
    print(f"  the target {target} is below the {', '.join(f'{n}-gram' for n in beaten) or 'none'}"
          f" and {'below every order here' if len(beaten) == len(scores) else f'NOT below the best, the {best}-gram ({scores[best]:.3f})'}"
          f" (a uniform guess scores {math.log(256):.3f})")


PARTS = ("throughput", "orthog", "ttt", "ngram")


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # Optuna's experimental-feature notices
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="part (c): training runs at a time (one per core)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if parts - set(PARTS):
        parser.error(f"--only: unknown parts {sorted(parts - set(PARTS))} (fix: some of {','.join(PARTS)})")
    torch.set_num_threads(args.threads)
    if "throughput" in parts:
        throughput(args.steps, args.repeats, args.threads)
    if "orthog" in parts:
        orthogonalization_timing()
    if "ngram" in parts:
        ngram_floor()
    if "ttt" in parts:
        ttt_table(args.seeds, args.threads, args.jobs)


if __name__ == "__main__":
    main()
