"""How long ``hpo report`` takes on a 10,000-trial study with curves (goal: ≤ 5 s a format).

    python benchmarks/report_speed.py [--trials 10000] [--steps 20] [--dir DIR]

Builds a SQLite study shaped like a real sweep (60 % COMPLETE, 35 % PRUNED with a
prune_reason, 5 % FAIL; every trial with a ``steps``-point curve and its ``hpo:m:<step>``
metrics), then times ``python -m hpo report`` end to end (interpreter start included) for
each format. Trials are made and validated with ``optuna.create_trial``; they are written
with one bulk insert per table (``storage_bench.bulk_add``), because ``study.add_trials``
commits row by row (about 100 s per 1,000 such trials). Exits 1 when a format misses the goal.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hpo._optuna import metric_key

from hpo.storage.backend import open_storage

from storage_bench import bulk_add

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 5.0
FORMATS = ("table", "csv", "json", "jsonl")
DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "width": IntDistribution(32, 512, step=32),
    "optimizer": CategoricalDistribution(["adamw", "muon", "sgd"]),
    "warmup": FloatDistribution(0.0, 0.2),
}


def make_trial(rng: random.Random, steps: int) -> FrozenTrial:
    """One synthetic trial: params, a power-law curve, the attrs ``hpo`` records."""
    params = {"lr": 10 ** rng.uniform(-4, -1), "width": rng.randrange(32, 513, 32),
              "optimizer": rng.choice(["adamw", "muon", "sgd"]), "warmup": rng.uniform(0, 0.2)}
    floor = 2.0 + 0.5 * abs(math.log10(params["lr"] / 0.01)) + 32.0 / params["width"]
    roll = rng.random()
    state = TrialState.COMPLETE if roll < 0.60 else TrialState.PRUNED if roll < 0.95 else TrialState.FAIL
    last = steps if state == TrialState.COMPLETE else rng.randint(2, steps - 1)
    curve = {s: floor + 4.0 * s ** -0.4 + rng.gauss(0, 0.01) for s in range(1, last + 1)}
    metrics = {metric_key(s): {"val_loss": v, "val_ppl": math.exp(v), "tokens": s * 8192,
                               "train_seconds": s * 1.5} for s, v in curve.items()}
    attrs: dict[str, Any] = {"train_seconds": last * 1.5, "wall_seconds": last * 1.6, "tokens": last * 8192,
                             "val_ppl": math.exp(curve[last])}
    if state == TrialState.PRUNED:
        attrs["prune_reason"] = {"pruner": "kill_rule", "step": last, "tokens": last * 8192,
                                 "value": curve[last], "reference": curve[last] - 0.6, "difference": 0.6}
        attrs["stop_reason"] = f"kill_rule: pruned at step {last}"
    if state == TrialState.FAIL:
        attrs = {"fail_reason": "RuntimeError: CUDA out of memory"}
    return optuna.create_trial(
        state=state, value=None if state == TrialState.FAIL else curve[last], params=params,
        distributions=DISTRIBUTIONS, user_attrs=attrs, system_attrs=metrics, intermediate_values=curve,
    )


def build_study(url: str, name: str, n_trials: int, steps: int, seed: int = 0) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="minimize")
    study.set_metric_names(["val_loss"])
    rng = random.Random(seed)
    bulk_add(study, [make_trial(rng, steps) for _ in range(n_trials)])
    return study


def time_report(url: str, name: str, fmt: str, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``hpo report`` process (CPU shows a busy machine's share)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpo", "report", "--study", name, "--storage", url,
                    "--format", fmt, "--out", str(out), "--axes", "optimizer,lr"],
                   cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dir", help="keep the study and the reports here (default: a temp dir)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(args.dir or tmp)
        where.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{where / 'report_speed.db'}"
        name = f"report_speed_{args.trials}x{args.steps}_{int(time.time())}"
        start = time.perf_counter()
        build_study(url, name, args.trials, args.steps)
        print(f"built {args.trials} trials x {args.steps} steps in {time.perf_counter() - start:.1f} s ({url})")
        slow = 0
        for fmt in FORMATS:
            out = where / f"report.{fmt if fmt != 'table' else 'txt'}"
            wall, cpu = time_report(url, name, fmt, out)
            verdict = "ok" if wall <= GOAL_SECONDS else "SLOW"
            slow += verdict == "SLOW"
            print(f"hpo report --format {fmt:5s}  {wall:5.2f} s wall, {cpu:5.2f} s CPU  "
                  f"(goal {GOAL_SECONDS:g} s) {verdict}  {out.stat().st_size / 1e6:.1f} MB", flush=True)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
