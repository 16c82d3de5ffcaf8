"""Record full-length nGPT learning curves into a table, for replay benchmarks (issues 4 and 5).

Every config runs ``objectives.ngpt_ttt:train`` to ``max_steps`` with no target and no pruning,
and every report becomes one row of ``benchmarks/data/ngpt_curves.csv``: ``config_id``, the
searched parameters, ``step``, ``tokens``, ``train_seconds``, ``val_loss``, ``val_ppl``,
``train_loss`` and ``wall_seconds``. A run that diverges reports ``val_loss=nan`` and ends there,
as it would in a study.

**Configs** form a grid over the space of ``search_spaces/ngpt_ttt.yaml``: categorical and boolean
parameters take all their choices, numeric ones ``--levels`` levels (log-spaced for log parameters,
integer and step constraints respected). ``config_id`` is the point's index in that full grid, and
points are recorded in a fixed shuffled order, so any prefix of the run is a spread-out sample of
the grid and a later run with a larger ``--n-configs`` extends the table (ids already in the CSV are
skipped). ``ngpt_curves.meta.json`` records the preset, the levels and the grid size.

**Preset** (``PRESET``, smaller than the spec's CPU study so that a config costs ~20-40 s on one
shared core): d_model 64, 2 layers, 2 heads, seq_len 64, 200 steps (~0.2 M tokens at batch 16),
validation every 10 steps on 2 fixed batches, one torch thread, CPU. The spec's other fixed values
(dataset, warm-up, ...) are kept; a searched ``batch_size`` stays searched.

**Clocks.** ``train_seconds`` is the objective's own training clock (wall time, validation and
warm-up excluded). On a machine shared with other work that clock also measures the load (here up
to 2x between quiet and busy minutes), so each row also has ``cpu_seconds``: the CPU time of the
training thread over the same intervals (the objective's ``TrainClock`` is subclassed to read
``thread_time`` at each start/stop; with one torch thread all training work runs in that thread).
``--backfill-cpu N`` adds ``cpu_seconds`` to configs recorded without it, from an N-step run of
the same config (per-step cost × step; those ids are listed in the meta file).

Run it in the background, one process per core (``--shard K/N``; each appends whole configs
under a file lock)::

    for k in 0 1; do nohup python benchmarks/record_curves.py --n-configs 200 --minutes 80 \\
        --shard $k/2 > benchmarks/data/record_curves.$k.log 2>&1 & done
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import objectives.ngpt_ttt as objective
from hpo.run.protocol import StopTrial
from hpo.specs.models import CategoricalParam, FloatParam, IntParam, StudySpec
from hpo.run.session import load_spec

from recording import RowReporter, append, install_cpu_clock, params_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
PRESET: dict[str, Any] = {
    "d_model": 64, "n_layer": 2, "n_head": 2, "seq_len": 64, "max_steps": 200, "val_freq": 10,
    "val_batches": 2, "threads": 1, "device": "cpu",
}
CURVE_COLUMNS = ["step", "tokens", "train_seconds", "cpu_seconds", "val_loss", "val_ppl", "train_loss",
                 "wall_seconds"]


def levels(param: FloatParam | IntParam | CategoricalParam, n: int) -> list[Any]:
    """The grid levels of one parameter."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    lo, hi = float(param.low), float(param.high)
    if param.log:
        raw = np.exp(np.linspace(math.log(lo), math.log(hi), n))
    else:
        raw = np.linspace(lo, hi, n)
    if isinstance(param, IntParam):
        snapped = [param.low + round((v - param.low) / param.step) * param.step for v in raw]
        return sorted({int(min(max(v, param.low), param.high)) for v in snapped})
    if param.step:
        return sorted({round(param.low + round((v - lo) / param.step) * param.step, 12) for v in raw})
    return [float(f"{v:.4g}") for v in raw]


def grid(spec: StudySpec, n_levels: int) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Parameter names and every grid point, in the grid's natural (row-major) order."""
    names = list(spec.space)
    return names, list(itertools.product(*(levels(spec.space[k], n_levels) for k in names)))


def recorded_ids(path: Path) -> set[int]:
    if not path.exists():
        return set()
    with path.open() as f:
        return {int(row["config_id"]) for row in csv.DictReader(f)}


def recorded_runs(path: Path, names: list[str]) -> dict[tuple[Any, ...], tuple[int, list[dict[str, Any]]]]:
    """Effective params → (config_id, rows) of the runs already in the table."""
    if not path.exists():
        return {}
    out = {}
    for cid, rows in pd.read_csv(path).groupby("config_id"):
        out.setdefault(effective(params_of(rows, names)), (int(cid), rows[CURVE_COLUMNS].to_dict("records")))
    return out


# ``optimizer: adamw`` trains every parameter with AdamW at ``adam_lr`` (objectives/ngpt_ttt.py
# build_optimizers): these searched parameters change nothing, so an AdamW grid point that differs
# from a recorded one only in them gets that run's rows copied instead of training again.
IGNORED_BY_ADAMW = ("orthog", "variance_reduction", "cautious_wd", "lr", "momentum")


def effective(params: dict[str, Any]) -> tuple[Any, ...]:
    """The parameters that change the run."""
    if params.get("optimizer") == "adamw":
        params = {k: v for k, v in params.items() if k not in IGNORED_BY_ADAMW}
    return tuple(sorted((k, str(v)) for k, v in params.items()))


def backfill_cpu(out: Path, objective: Any, clock: Any, base: dict[str, Any], names: list[str],
                 steps: int) -> list[int]:
    """Add ``cpu_seconds`` (per-step CPU cost × step, from a short run) where it is missing."""
    df = pd.read_csv(out)
    if "cpu_seconds" not in df:
        df.insert(df.columns.get_loc("train_seconds") + 1, "cpu_seconds", np.nan)
    filled = []
    for cid, rows in df.groupby("config_id"):
        if rows.cpu_seconds.notna().all():
            continue
        params = params_of(rows, names)
        reporter = RowReporter(clock)
        objective.train({**base, **params, "max_steps": steps, "val_freq": steps}, reporter)
        per_step = reporter.rows[-1]["cpu_seconds"] / steps
        df.loc[rows.index, "cpu_seconds"] = rows.step * per_step
        filled.append(int(cid))
        print(f"config {cid}: {per_step * 1000:.1f} ms CPU per step", flush=True)
    df.to_csv(out, index=False)
    return filled


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "search_spaces" / "ngpt_ttt.yaml"))
    p.add_argument("--out", default=str(DATA / "ngpt_curves.csv"))
    p.add_argument("--n-configs", type=int, default=60, help="new configs to record in this run")
    p.add_argument("--minutes", type=float, default=40.0, help="start no new config after this long")
    p.add_argument("--levels", type=int, default=4, help="levels per numeric parameter")
    p.add_argument("--seed", type=int, default=0, help="order in which the grid is visited")
    p.add_argument("--shard", default="0/1", metavar="K/N",
                   help="record every N-th config left to do, starting at K (run N processes, K=0..N-1)")
    p.add_argument("--max-steps", type=int, default=PRESET["max_steps"])
    p.add_argument("--budget-cpu", type=float, metavar="SECONDS",
                   help="end each run after this much training CPU time (with a large --max-steps: "
                        "every config gets the same compute, as in a time-budgeted study)")
    p.add_argument("--backfill-cpu", type=int, metavar="STEPS",
                   help="only add cpu_seconds to recorded configs that lack it, from STEPS-step runs")
    args = p.parse_args(argv)
    clock = install_cpu_clock(objective)

    spec = load_spec(args.spec, check_objective=False)
    names, points = grid(spec, args.levels)
    base = {**spec.fixed, **PRESET, "max_steps": args.max_steps}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta_path = out.with_suffix(".meta.json")
    old_meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta = {"spec": str(Path(args.spec).relative_to(ROOT)) if Path(args.spec).is_relative_to(ROOT) else args.spec,
            "fixed": base, "levels": {k: levels(spec.space[k], args.levels) for k in names},
            "grid_size": len(points), "order_seed": args.seed,
            "cpu_seconds_extrapolated": old_meta.get("cpu_seconds_extrapolated", []),
            "budget_cpu_seconds": args.budget_cpu}
    if "cpu_backfill_steps" in old_meta:
        meta["cpu_backfill_steps"] = old_meta["cpu_backfill_steps"]
    if args.backfill_cpu:
        filled = backfill_cpu(out, objective, clock, base, names, args.backfill_cpu)
        meta["cpu_seconds_extrapolated"] = sorted({*meta["cpu_seconds_extrapolated"], *filled})
        meta["cpu_backfill_steps"] = args.backfill_cpu
    tmp = meta_path.with_suffix(f".{os.getpid()}.tmp")  # shards start together: replace, never half-write
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, meta_path)
    if args.backfill_cpu:
        return 0

    order = list(range(len(points)))
    random.Random(args.seed).shuffle(order)
    done = recorded_ids(out)
    k, n_shards = (int(x) for x in args.shard.split("/"))
    todo = [i for i in order if i not in done][k::n_shards][: args.n_configs]
    print(f"grid of {len(points)} configs over {names}; {len(done)} recorded, recording {len(todo)}", flush=True)
    deadline = time.monotonic() + 60 * args.minutes
    header = ["config_id", *names, *CURVE_COLUMNS]
    runs = recorded_runs(out, names)
    for n, cid in enumerate(todo, start=1):
        if time.monotonic() >= deadline:
            print(f"stopping: {args.minutes:g} min spent", flush=True)
            break
        params = dict(zip(names, points[cid], strict=True))
        same = runs.get(effective(params))
        if same is not None:
            source, rows = same
            append(out, header, cid, params, rows)
            print(f"[{n}/{len(todo)}] config {cid}: the same run as config {source}, copied", flush=True)
            continue
        reporter = RowReporter(clock, args.budget_cpu)
        try:
            summary = objective.train({**base, **params}, reporter)
        except StopTrial:
            summary = {"val_loss": reporter.rows[-1]["val_loss"], "train_seconds": reporter.rows[-1]["train_seconds"],
                       "wall_seconds": reporter.rows[-1]["wall_seconds"]}
        except Exception as e:  # noqa: BLE001 - record what we can, keep going
            print(f"config {cid} {params}: {type(e).__name__}: {e}", flush=True)
            continue
        runs[effective(params)] = (cid, reporter.rows)
        append(out, header, cid, params, reporter.rows)
        print(f"[{n}/{len(todo)}] config {cid} {params}: final val_loss {summary['val_loss']:.4f} "
              f"in {summary['train_seconds']:.1f} s train, {summary['wall_seconds']:.1f} s wall", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
