"""Trials per hour with 1 and 2 worker processes on this machine, against PostgreSQL (issue 6).

Same tiny nGPT objective, same number of trials, same run, two ways:

* **hpo**: ``python -m hpo optimize --workers W`` on a PostgreSQL study (random sampler), timed
  from the command's start to its exit: worker start-up (Python, torch, the data) included.
* **bare**: the hardware's own ceiling: W plain Python processes that import the objective and
  call ``train()`` on their share of the same trials with no study, no database, no hpo.

Each way is measured with 1 and 2 processes, and the table prints trials/hour and the 2-vs-1
ratio (goal on a 2-core machine: >= 1.8x), plus hpo's throughput as a share of bare's. Two
thread settings: ``threads: 1`` per trial (as ``search_spaces/ngpt_ttt.yaml`` sets it; one worker
leaves a core idle) and torch's default threads (one worker already spreads over both cores;
with ``--workers 2`` each worker gets ``OMP_NUM_THREADS = cores / workers``).

    python benchmarks/worker_scaling.py [--trials 40] [--pg URL] [--threads 1,default]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TINY = {"n_layer": 1, "d_model": 64, "n_head": 2, "seq_len": 64, "batch_size": 16,
        "max_steps": 120, "val_freq": 40, "val_batches": 2, "val_batch_size": 16}
LR = {"type": "float", "low": 0.005, "high": 0.05, "log": True}


def env_for(threads: int | None, workers: int) -> dict[str, str]:
    """A bare process's environment: with default threads, its share of the cores, as hpo gives."""
    from hpo.workers import worker_env

    env = worker_env(0, workers, 0) if threads is None else dict(os.environ)
    return {**env, "PYTHONPATH": str(ROOT)}


def run_hpo(workers: int, trials: int, url: str, tmp: Path, threads: int | None) -> float:
    """Seconds for ``hpo optimize --workers W`` to finish ``trials`` trials."""
    import optuna
    import yaml

    from hpo.storage import open_storage

    name = f"scaling-{workers}w-{uuid.uuid4().hex[:6]}"
    spec = {"study": name, "objective": "objectives.ngpt_ttt:train", "metrics": {"val_loss": "minimize"},
            "sampler": {"name": "random", "options": {"seed": 0}}, "fixed": {**TINY, "threads": threads},
            "space": {"lr": LR}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpo", "optimize", "--spec", str(path), "--storage", url,
                    "--n-trials", str(trials), "--workers", str(workers), "--artifacts", str(tmp / "a")],
                   check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert done == trials, f"{done} of {trials} trials completed"
    optuna.delete_study(study_name=name, storage=open_storage(url))
    return elapsed


def run_bare(workers: int, trials: int, threads: int | None) -> float:
    """Seconds for ``workers`` plain processes to train their share of ``trials`` trials."""
    lrs = [LR["low"] * (LR["high"] / LR["low"]) ** (i / max(trials - 1, 1)) for i in range(trials)]
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--bare-worker",
                               json.dumps({"lrs": lrs[w::workers], "threads": threads})],
                              env=env_for(threads, workers), cwd=ROOT)
             for w in range(workers)]
    if any(p.wait() for p in procs):
        raise SystemExit("a bare worker failed")
    return time.perf_counter() - start


def bare_worker(job: dict[str, Any]) -> None:
    from hpo.protocol import NullReporter
    from objectives.ngpt_ttt import train

    for lr in job["lrs"]:
        train({**TINY, "threads": job["threads"], "lr": lr}, NullReporter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--threads", default="1,default", help="thread settings to measure")
    parser.add_argument("--bare-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        bare_worker(json.loads(args.bare_worker))
        return
    print(f"{os.cpu_count()} cores, {args.trials} trials of a tiny nGPT (1x64, 120 steps) per run; "
          "hpo on PostgreSQL; trials/hour, start-up included")
    print(f"{'torch threads':<21} {'way':<5} {'1 process':>10} {'2 processes':>12} {'ratio':>7}  "
          f"{'hpo/bare':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.threads.split(","):
            threads = None if setting == "default" else int(setting)
            label = "default (all cores)" if threads is None else f"{threads} per trial"
            rates: dict[str, tuple[float, float]] = {}
            for way in ("bare", "hpo"):
                one, two = ((args.trials / (run_bare(w, args.trials, threads) if way == "bare" else
                                            run_hpo(w, args.trials, args.pg, Path(tmp), threads)) * 3600)
                            for w in (1, 2))
                rates[way] = (one, two)
                share = "" if way == "bare" else " / ".join(f"{h / b:.2f}" for h, b in zip(rates["hpo"],
                                                                                         rates["bare"]))
                print(f"{label:<21} {way:<5} {one:10.0f} {two:12.0f} {two / one:6.2f}x  {share:>9}",
                      flush=True)


if __name__ == "__main__":
    main()
