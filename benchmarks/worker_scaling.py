"""Trials per hour with 1 and 2 worker processes on this machine, against PostgreSQL (issue 6).

Same tiny nGPT objective, same number of trials, same run, two ways:

* **hpo**: ``python -m hpo optimize --workers W`` on a PostgreSQL study (random sampler), timed
  from the command's start to its exit: worker start-up (Python, torch, the data) included.
* **bare**: the hardware's own ceiling: W plain Python processes that import the objective and
  call ``train()`` on their share of the same trials with no study, no database, no hpo.

Each way is measured with 1 and 2 processes, ``--repeats`` rounds in alternating order (this
machine's speed drifts by 10-20 % from minute to minute), and the table prints the median
trials/hour, the 2-vs-1 ratio of the medians (goal on a 2-core machine: >= 1.8x), each round's
ratio, and hpo's throughput as a share of bare's. Thread settings (``--threads``): ``1`` per
trial (the default, as ``search_spaces/ngpt_ttt.yaml`` sets it; one worker leaves a core idle)
and ``default``, torch's default threads (one worker already spreads over both cores; with
``--workers 2`` each worker gets ``OMP_NUM_THREADS = cores / workers``).

    python benchmarks/worker_scaling.py [--trials 40] [--repeats 3] [--pg URL] [--threads 1,default]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import yaml

from hpo.storage.backend import open_storage
from hpo.run.workers import worker_env

TINY = {"n_layer": 1, "d_model": 64, "n_head": 2, "seq_len": 64, "batch_size": 16,
        "max_steps": 120, "val_freq": 40, "val_batches": 2, "val_batch_size": 16}
LR = {"type": "float", "low": 0.005, "high": 0.05, "log": True}
# a bare worker: the objective and nothing of hpo's study machinery (no optuna, no database)
BARE_WORKER = r'''
import json, sys
from hpo.run.protocol import NullReporter
from objectives.ngpt_ttt import train
job = json.loads(sys.argv[1])
for lr in job["lrs"]:
    train({**job["config"], "lr": lr}, NullReporter())
'''


def env_for(threads: int | None, workers: int) -> dict[str, str]:
    """A bare process's environment: with default threads, its share of the cores, as hpo gives."""
    return worker_env(0, workers, 0) if threads is None else dict(os.environ)


def run_hpo(workers: int, trials: int, url: str, tmp: Path, threads: int | None) -> float:
    """Seconds for ``hpo optimize --workers W`` to finish ``trials`` trials."""
    name = f"scaling-{workers}w-{uuid.uuid4().hex[:6]}"
    spec = {"study": name, "objective": "objectives.ngpt_ttt:train", "metrics": {"val_loss": "minimize"},
            "sampler": {"name": "random", "options": {"seed": 0}}, "fixed": {**TINY, "threads": threads},
            "space": {"lr": LR}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpo", "optimize", "--spec", str(path), "--storage", url,
                    "--n-trials", str(trials), "--workers", str(workers), "--artifacts", str(tmp / "a")],
                   check=True, cwd=tmp,
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
    config = {**TINY, "threads": threads}
    procs = [subprocess.Popen([sys.executable, "-c", BARE_WORKER, json.dumps({"lrs": lrs[w::workers], "config": config})],
                              env=env_for(threads, workers))
             for w in range(workers)]
    if any(p.wait() for p in procs):
        raise SystemExit("a bare worker failed")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each cell prints the median")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--threads", default="1", help="thread settings to measure, e.g. 1,default")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {args.trials} trials of a tiny nGPT (1x64, 120 steps) per run, "
          f"{args.repeats} rounds (order reversed every other round), median per cell; hpo on PostgreSQL; "
          "trials/hour, start-up included")
    print(f"{'torch threads':<21} {'way':<5} {'1 process':>10} {'2 processes':>12} {'ratio':>7}  "
          f"{'rounds':>17}  {'hpo/bare':>11}")
    cells = [("bare", 1), ("hpo", 1), ("bare", 2), ("hpo", 2)]
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.threads.split(","):
            threads = None if setting == "default" else int(setting)
            label = "default (all cores)" if threads is None else f"{threads} per trial"
            rates: dict[tuple[str, int], list[float]] = {c: [] for c in cells}
            for r in range(args.repeats):
                for way, w in cells if r % 2 == 0 else cells[::-1]:
                    seconds = (run_bare(w, args.trials, threads) if way == "bare"
                               else run_hpo(w, args.trials, args.pg, Path(tmp), threads))
                    rates[(way, w)].append(args.trials / seconds * 3600)
            med = {c: statistics.median(v) for c, v in rates.items()}
            for way in ("bare", "hpo"):
                per_round = [two / one for one, two in zip(rates[(way, 1)], rates[(way, 2)])]
                share = "" if way == "bare" else " / ".join(f"{med[('hpo', w)] / med[('bare', w)]:.2f}" for w in (1, 2))
                print(f"{label:<21} {way:<5} {med[(way, 1)]:10.0f} {med[(way, 2)]:12.0f} "
                      f"{med[(way, 2)] / med[(way, 1)]:6.2f}x  {' '.join(f'{x:.2f}' for x in per_round):>17}  "
                      f"{share:>11}", flush=True)


if __name__ == "__main__":
    main()
