"""Recorded learning curves replayed through real hpo studies: what the replay benchmarks share.

A table (``benchmarks/data/*.csv``, made by ``record_curves.py``) holds the full learning curve of
every recorded config, one row per report (``config_id``, the config's parameters, ``step``,
``tokens``, ``train_seconds``, ``cpu_seconds``, ``val_loss``, ``val_ppl``, ...); its
``.meta.json`` holds the grid's levels, and ``.seeds.csv`` (``record_seeds.py``) the contenders
re-trained with more seeds. This module reads them, says what the full curves say (each
config's time to target, the true top 5), and replays them: the objectives here train nothing,
they report a recorded config's rows through ``report()``, in a real hpo study (runner, reporter,
pruners, in-memory storage) that :func:`run_study` runs.

``pruning_replay.py`` and ``two_stage_replay.py`` are scripts over it; ``record_seeds.py`` uses
its truth to pick the contenders.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage, InMemoryStorage

from hpo.policy.pruners import build_pruner
from hpo.run.loop import run
from hpo.run.session import Session, enqueue_start, load_objective, load_study
from hpo.specs.models import StudySpec

DATA = Path(__file__).resolve().parent / "data"
REPORTED = ("tokens", "train_seconds", "cpu_seconds", "val_loss", "val_ppl")
TOKENS_PER_STEP_UNIT = 1024  # step_unit "ktokens": report(step=tokens // 1024)

# The kill rule on the CPU preset (pruning_replay.py's docstring): min_tokens is set from the table.
KILL_RULE: dict[str, Any] = {"metric": "val_ppl", "threshold": 1.0, "patience": 2}
# The kill rule at equal seconds, as search_spaces/ngpt_ttt.yaml ships it: val_loss 0.2 nats over
# the fastest trial's curve at the same seconds, two checks running, judged from 1/6 of the budget
# (from 1/8 it stopped config 1572, the best by times averaged over seeds, in 8 of 10 orders: a
# batch-16 curve trails a batch-8 one by 0.2-0.25 nats at 2-2.6 s and is level by 7 s).
KILL_SECONDS: dict[str, Any] = {"metric": "val_loss", "threshold": 0.2, "patience": 2, "reference": "fastest"}
KILL_SECONDS_FROM = 1 / 6


# --- pruner components ----------------------------------------------------------------------
def kill_rule(min_tokens: float, rule: dict[str, Any] | None = None) -> dict[str, Any]:
    """The kill rule at equal tokens (``rule``, default :data:`KILL_RULE`), judged from ``min_tokens``."""
    return {"name": "kill_rule", "options": {**(rule or KILL_RULE), "min_tokens": min_tokens}}


def kill_seconds(clock: str, budget: float) -> dict[str, Any]:
    """The ``KILL_SECONDS`` pruner component on ``clock``, for a study with this trial budget."""
    return {"name": "kill_rule", "options": {**KILL_SECONDS, "index": clock, "min_index": KILL_SECONDS_FROM * budget}}


def asha(min_resource: int) -> dict[str, Any]:
    """ASHA (Optuna's successive halving) with its first rung at ``min_resource`` steps."""
    return {"name": "successive_halving", "options": {"min_resource": min_resource, "reduction_factor": 3}}


# --- the tables -----------------------------------------------------------------------------
@lru_cache(maxsize=4)
def load_table(path: str) -> dict[int, pd.DataFrame]:
    """config_id → its rows, in step order."""
    df = pd.read_csv(path)
    return {int(cid): g.sort_values("step").reset_index(drop=True) for cid, g in df.groupby("config_id")}


def seeds_path(table: str | Path) -> Path:
    """Where the extra seeds of ``table`` live: ``ngpt_timed.csv`` → ``ngpt_timed.seeds.csv``."""
    return Path(table).with_suffix(".seeds.csv")


def target_of(table: dict[int, pd.DataFrame], quantile: float) -> float:
    """The replays' target: this quantile of the configs' best val_loss (the share that reaches it)."""
    best_loss = pd.Series({cid: rows.val_loss.min() for cid, rows in table.items()})
    return float(round(best_loss.quantile(quantile), 3))


def budget_of(table: dict[int, pd.DataFrame], clock: str) -> float:
    """The replays' per-trial budget: the longest recorded run on ``clock``."""
    return float(max(rows[clock].max() for rows in table.values()))


# --- what the full curves say ---------------------------------------------------------------
@dataclass(frozen=True)
class Truth:
    """What full curves say: each config's time to target (censored as hpo does) and the top 5."""

    time_to_target: dict[int, float]
    top5: list[int]

    @property
    def best(self) -> int:
        return self.top5[0]


def true_times(table: dict[int, pd.DataFrame], target: float, budget: float,
               clock: str = "train_seconds") -> Truth:
    """Time to target from the full curves, with hpo's censoring for the configs that miss it."""
    times = {}
    for cid, rows in table.items():
        hit = rows[rows.val_loss < target]
        if len(hit):
            times[cid] = float(hit[clock].iloc[0])
        else:
            best = rows.val_loss[np.isfinite(rows.val_loss)].min()
            gap = 1.0 if not np.isfinite(best) else max(0.0, best - target) / abs(target)
            times[cid] = budget * (1 + gap)
    ranked = sorted(times, key=times.__getitem__)
    return Truth(times, ranked[:5])


def mean_times(table: dict[int, pd.DataFrame], recorded: Truth, seeds: pd.DataFrame, target: float, budget: float,
               clock: str) -> dict[int, float]:
    """Each config's time to target averaged over its recorded run (``recorded``) and its extra seeds.

    A seed's time is the recorded run's ``clock`` at the step where that seed first gets below
    ``target`` (censored as ``true_times`` does when it never does); configs without extra seeds
    keep their one time.
    """
    runs = {cid: [t] for cid, t in recorded.time_to_target.items()}
    for (cid, _seed), rows in seeds.groupby(["config_id", "seed"]):
        at_step = table[int(cid)].set_index("step")[clock]
        timed = rows.sort_values("step").assign(**{clock: rows.step.map(at_step)})
        runs[int(cid)].append(true_times({0: timed}, target, budget, clock).time_to_target[0])
    return {cid: float(np.mean(ts)) for cid, ts in runs.items()}


def judged_truth(table_path: str, table: dict[int, pd.DataFrame], recorded: Truth, target: float, budget: float,
                 clock: str, single_seed: bool = False) -> tuple[Truth, str]:
    """The truth to judge strategies by, and how it was judged: each config's time to target
    averaged over its extra seeds where ``<table>.seeds.csv`` has them (``record_seeds.py``),
    else (or with ``single_seed``) ``recorded``, the recorded runs' (:func:`true_times`)."""
    path = seeds_path(table_path)
    if single_seed or not path.exists():
        return recorded, "of the recorded run (seed 0)"
    seeds = pd.read_csv(path)
    times = mean_times(table, recorded, seeds, target, budget, clock)
    how = (f"averaged over seed 0 and seeds {sorted(seeds.seed.unique().tolist())} for the "
           f"{seeds.config_id.nunique()} configs in {path.name}")
    return Truth(times, sorted(times, key=times.__getitem__)[:5]), how


@dataclass(frozen=True)
class Recorded:
    """A recorded table as a replay judges it: its curves, target, budget and truths."""

    path: str
    curves: dict[int, pd.DataFrame]
    clock: str
    target: float
    budget: float
    recorded: Truth  # the recorded runs' times to target (seed 0)
    truth: Truth  # the times strategies are judged by (:func:`judged_truth`)
    judged: str  # how ``truth`` was judged, for the header line

    @property
    def max_tokens(self) -> float:
        """The longest run's tokens."""
        return float(max(rows.tokens.max() for rows in self.curves.values()))

    @property
    def val_every(self) -> int:
        """Steps between validations (the first report's step)."""
        return int(next(iter(self.curves.values())).step.iloc[0])


def open_table(path: str, clock: str | None = None, target_quantile: float = 0.4,
               single_seed: bool = False) -> Recorded:
    """The table at ``path``, its target (this quantile of the configs' best val_loss), its budget
    (the longest run on ``clock``; default ``cpu_seconds`` where the table has it, else
    ``train_seconds``) and its truths."""
    curves = load_table(path)
    clock = clock or ("cpu_seconds" if "cpu_seconds" in next(iter(curves.values())) else "train_seconds")
    target = target_of(curves, target_quantile)
    budget = budget_of(curves, clock)
    recorded = true_times(curves, target, budget, clock)
    truth, judged = judged_truth(path, curves, recorded, target, budget, clock, single_seed)
    return Recorded(path, curves, clock, target, budget, recorded, truth, judged)


def add_table_arguments(parser: argparse.ArgumentParser, table: Path, seeds: int) -> None:
    """The options every replay takes: ``--table``, ``--seeds``, ``--target-quantile``,
    ``--single-seed`` (the arguments of :func:`open_table` and the number of seeds)."""
    parser.add_argument("--table", default=str(table))
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--target-quantile", type=float, default=0.4,
                        help="target = this quantile of the configs' best val_loss (the share that reaches it)")
    parser.add_argument("--single-seed", action="store_true",
                        help="judge by the recorded runs alone, ignoring the table's extra seeds")


# --- proposals onto recorded configs --------------------------------------------------------
class Grid:
    """The recorded configs as points in level units, and the nearest one to any params."""

    def __init__(self, table_path: str) -> None:
        meta = json.loads(Path(table_path).with_suffix(".meta.json").read_text())
        self.levels: dict[str, list[Any]] = meta["levels"]
        rows = pd.read_csv(table_path).drop_duplicates("config_id").set_index("config_id").sort_index()
        self.ids = [int(i) for i in rows.index]
        self.numeric = [k for k, v in self.levels.items() if _numeric(v) and len(v) > 2]
        self.categorical = [k for k in self.levels if k not in self.numeric]
        self.coords = np.array([[self.position(k, rows.at[i, k]) for k in self.numeric] for i in rows.index])
        self.cats = [[norm(rows.at[i, k]) for k in self.categorical] for i in rows.index]
        # the recorder copies one run to every config that differs only in parameters the run
        # ignores (AdamW: the Muon-only ones): configs with the same curve are one run
        curves = load_table(table_path)
        first: dict[bytes, int] = {}  # bytes, so that copies of a diverged (nan) curve match too
        self.run = {c: first.setdefault(curves[c].val_loss.to_numpy().tobytes(), c) for c in self.ids}

    def position(self, name: str, value: Any) -> float:
        """``value`` on the parameter's level axis, 0..1 (log axis when the levels span 10x)."""
        levels = np.array(self.levels[name], dtype=float)
        f = np.log if levels.max() / max(levels.min(), 1e-300) >= 10 else (lambda x: x)
        return float(np.interp(f(float(value)), f(levels), np.arange(len(levels))) / (len(levels) - 1))

    def nearest(self, params: dict[str, Any], exclude: set[int] | None = None) -> int:
        """The recorded config nearest to ``params``, skipping those whose run (:attr:`run`) is in
        ``exclude`` (unless that is all); a parameter ``params`` lacks (switched off by a
        ``when``) does not count."""
        has = np.array([k in params for k in self.numeric])
        point = np.array([self.position(k, params[k]) if k in params else 0.0 for k in self.numeric])
        d = (((self.coords - point) ** 2) * has).sum(axis=1)
        d += [sum(c != norm(params[k]) for c, k in zip(cats, self.categorical) if k in params) for cats in self.cats]
        order = [self.ids[i] for i in np.argsort(d, kind="stable")]
        return next((c for c in order if self.run[c] not in (exclude or ())), order[0])

    def space(self, when: dict[str, Any] | None = None) -> dict[str, Any]:
        """The grid's box as an hpo space: numeric ranges (log if the levels span 10x), choices;
        ``when``: conditions by parameter name."""
        out: dict[str, Any] = {}
        for k, v in self.levels.items():
            if k in self.categorical:
                out[k] = {"type": "categorical", "choices": v}
            else:
                ints = all(isinstance(x, int) for x in v)
                out[k] = {"type": "int" if ints else "float", "low": min(v), "high": max(v),
                          "log": max(v) / min(v) >= 10}
            if when and k in when:
                out[k]["when"] = when[k]
        return out


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def norm(v: Any) -> str:
    """A categorical value as the grid compares it (``True`` and ``"true"`` are one)."""
    return str(v).lower()


@lru_cache(maxsize=2)
def grid(table_path: str) -> Grid:
    return Grid(table_path)


RUN: dict[str, set[int]] = {}  # the runs (Grid.run) each strategy run (fixed value "run") has trained


def pick(g: Grid, params: dict[str, Any], run: str, repeats: bool = False) -> int:
    """The config a strategy's trial trains: the nearest one whose run it has not trained yet
    (``repeats``: the nearest one)."""
    done = RUN.setdefault(run, set())
    cid = g.nearest(params) if repeats else g.nearest(params, done)
    done.add(g.run[cid])
    return cid


# --- the objectives -------------------------------------------------------------------------
def replay_config(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """The objective ``replay:replay_config``: report the recorded rows of ``config_id`` from
    ``table``; train nothing.

    ``step_unit: ktokens`` reports thousands of tokens (1024) as the step, so that step-indexed
    pruners compare configs of different batch sizes at equal data rather than equal steps.
    """
    rows = load_table(str(config["table"]))[int(config["config_id"])]
    by_tokens = config.get("step_unit", "step") == "ktokens"
    for row in rows.itertuples(index=False):
        step = int(row.tokens) // TOKENS_PER_STEP_UNIT if by_tokens else int(row.step)
        report(step, **{k: float(getattr(row, k)) for k in REPORTED if hasattr(row, k)})
    return {}


def replay_nearest(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """The objective ``replay:replay_nearest``: the curve of the recorded config nearest to the
    trial's params (:func:`pick`, within the strategy run ``run``; ``repeats``: may re-run one)
    through ``report``, its ``clock`` column as ``train_seconds``; trains nothing."""
    cid = pick(grid(config["table"]), config, config["run"], config["repeats"])
    clock = config["clock"]
    for row in load_table(config["table"])[cid].itertuples(index=False):
        report(int(row.step), tokens=float(row.tokens), train_seconds=float(getattr(row, clock)),
               val_loss=float(row.val_loss), val_ppl=float(row.val_ppl), config_id=float(cid))
    return {}


def run_study(spec: StudySpec, storage: BaseStorage | None = None,
              queue: Iterable[dict[str, Any]] = ()) -> optuna.Study:
    """Run ``spec`` to its ``n_trials`` in memory, as ``hpo.run.loop.optimize`` runs it on a storage
    URL: the study created or resumed, the spec's start configs queued, then ``queue``, the spec's
    objective and pruners.

    ``open_session`` opens a storage by its URL, and an in-memory storage (thousands of replayed
    trials a minute; a study that stage 2 continues on the same storage) has none: this builds
    the session ``open_session`` would, without a heartbeat, lock or checkpoint store.

    Args:
        spec: the study spec (its objective one of this module's).
        storage: the storage (default: a new in-memory one).
        queue: configs to enqueue after the spec's own, in this order.
    """
    storage = storage or InMemoryStorage()
    study = load_study(spec, storage)
    enqueue_start(study, spec)
    for params in queue:
        study.enqueue_trial(params)
    session = Session(spec=spec, study=study, storage=storage, train=load_objective(spec),
                      pruner=build_pruner(spec.pruners, clock=spec.clock))
    return run(session, out=io.StringIO())
