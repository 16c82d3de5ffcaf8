"""Trials per hour with 1 and 2 worker processes on this machine, against PostgreSQL.

Same tiny nGPT objective, same number of trials, same run, in two settings:
``threads: 1`` per trial (as ``search_spaces/ngpt_ttt.yaml`` sets it: one worker leaves a core
idle) and torch's default threads (one worker already spreads over every core; with
``--workers 2`` each worker gets ``OMP_NUM_THREADS = cores / workers``). Goal on a 2-core
machine: >= 1.8x.

    python benchmarks/worker_scaling.py [--trials 16] [--pg URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import yaml

from hpo.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]
TINY = {"n_layer": 1, "d_model": 64, "n_head": 2, "seq_len": 64, "batch_size": 16,
        "max_steps": 120, "val_freq": 40, "val_batches": 2, "val_batch_size": 16}


def run(workers: int, trials: int, url: str, tmp: Path, threads: int | None) -> float:
    name = f"scaling-{workers}w-{uuid.uuid4().hex[:6]}"
    fixed = {**TINY, "threads": threads}
    spec = {"study": name, "objective": "objectives.ngpt_ttt:train", "metrics": {"val_loss": "minimize"},
            "sampler": {"name": "random", "options": {"seed": 0}}, "fixed": fixed,
            "space": {"lr": {"type": "float", "low": 0.005, "high": 0.05, "log": True}}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpo", "optimize", "--spec", str(path), "--storage", url,
                    "--n-trials", str(trials), "--workers", str(workers), "--artifacts", str(tmp / "a")],
                   check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert done == trials, f"{done} of {trials} trials completed"
    optuna.delete_study(study_name=name, storage=open_storage(url))
    return trials / elapsed * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {args.trials} trials of a tiny nGPT (1x64, 120 steps) on PostgreSQL")
    print(f"{'torch threads':<22} {'1 worker':>10} {'2 workers':>10} {'ratio':>7}   (trials/hour; goal >= 1.8x)")
    with tempfile.TemporaryDirectory() as tmp:
        for threads, label in ((1, "1 per trial (spec)"), (None, "default (all cores)")):
            one = run(1, args.trials, args.pg, Path(tmp), threads)
            two = run(2, args.trials, args.pg, Path(tmp), threads)
            print(f"{label:<22} {one:10.0f} {two:10.0f} {two / one:6.2f}x")


if __name__ == "__main__":
    main()
