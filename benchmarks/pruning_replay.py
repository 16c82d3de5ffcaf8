"""Does pruning pay, without killing the winners? Replay recorded nGPT curves through real hpo studies.

The table ``benchmarks/data/ngpt_curves.csv`` (made by ``benchmarks/record_curves.py``) holds the
full learning curve of every recorded config. Each study here is a real ``hpo`` study (runner,
reporter, pruner view, in-memory storage, spec built in code) whose objective trains nothing: it
replays the chosen config's rows through ``report()``. Every study runs each recorded config once,
in an order set by the seed (a seeded permutation of ``config_id``, enqueued: Optuna's grid sampler
compares the whole grid at every trial, minutes for a 1000-config table), with target stopping on,
so the strategies differ only in what their pruners stop.

Per strategy it prints, over the seeds: compute spent (sum of the recorded training seconds up to
where each trial stopped) relative to no pruning, in how many seeds the best time-to-target config
survived (was not pruned), and how many of the true top-5 (by time to target on the full curves;
averaged over seeds where the table has extra seeds, ``record_seeds.py``) were pruned.

    python benchmarks/pruning_replay.py [--table PATH] [--seeds 10] [--kill-rule-grid]

The time column is ``cpu_seconds`` (training-thread CPU time) when the table has it: the table's
wall-clock ``train_seconds`` ran up to 2x slower in busy minutes of the shared machine, which
biased time-to-target rankings toward configs that happened to run in quiet minutes. The target is the 40 % quantile of the
configs' best val_loss; the budget is the longest recorded run.

**The kill rule on the CPU preset** (``KILL_RULE``). The seed judges after 1M of 5M tokens (20 %
of a run) and kills at 0.5 perplexity worse than the reference, at perplexities near 40. The
preset runs 0.1-0.4M tokens (batch 8-32), so ``min_tokens`` is 20 % of the longest run (82K
tokens), as in the seed. There the perplexity is about 10 and one validation on 2 fixed batches
is noisy: the robust s.d. of a point around its curve is about 0.4 PPL, so 0.5 PPL is barely one
s.d. and a single noisy check kills good runs. 1.0 PPL (about 2.5 s.d.) with ``patience`` 2
(two consecutive validations over) kills on evidence. ``--kill-rule-grid`` prints the trade-off
over min_tokens 10/20/40 %, thresholds 0.5/1/2 PPL and patience 1/2/3: patience 1 loses top-5
configs at every threshold; patience 2 at 1 PPL keeps the best and nearly all of the top 5.

**Step-indexed pruners and batch size.** Median and ASHA compare trials at equal *steps*; with
``batch_size`` searched, a batch-8 config has seen a quarter of a batch-32 config's tokens at the
same step, so the fastest configs in seconds (small batches, cheap steps) look worst and are
pruned. The ``step = 1k tokens`` rows report tokens as the step (an objective's choice, no
change to hpo) to show the difference; the kill rule is token-indexed by design.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hpo.pruners import REASON_ATTR, build_pruner
from hpo.loop import run
from hpo.session import Session, load_study
from hpo.spec import StudySpec, parse_spec

TABLE = ROOT / "benchmarks" / "data" / "ngpt_curves.csv"
REPORTED = ("tokens", "train_seconds", "cpu_seconds", "val_loss", "val_ppl")
TOKENS_PER_STEP_UNIT = 1024  # step_unit "ktokens": report(step=tokens // 1024)

# The kill rule on the CPU preset (see the module docstring): min_tokens is set from the table.
KILL_RULE: dict[str, Any] = {"metric": "val_ppl", "threshold": 1.0, "patience": 2}
# The kill rule at equal seconds, as search_spaces/ngpt_ttt.yaml ships it: val_loss 0.2 nats over
# the fastest trial's curve at the same seconds, two checks running, judged from 1/6 of the budget
# (from 1/8 it stopped config 1572, the best by times averaged over seeds, in 8 of 10 orders: a
# batch-16 curve trails a batch-8 one by 0.2-0.25 nats at 2-2.6 s and is level by 7 s).
KILL_SECONDS: dict[str, Any] = {"metric": "val_loss", "threshold": 0.2, "patience": 2, "reference": "fastest"}
KILL_SECONDS_FROM = 1 / 6


def kill_seconds(clock: str, budget: float) -> dict[str, Any]:
    """The ``KILL_SECONDS`` pruner component on ``clock``, for a study with this trial budget."""
    return {"name": "kill_rule", "options": {**KILL_SECONDS, "index": clock, "min_index": KILL_SECONDS_FROM * budget}}


@lru_cache(maxsize=4)
def load_table(path: str) -> dict[int, pd.DataFrame]:
    """config_id → its rows, in step order."""
    df = pd.read_csv(path)
    return {int(cid): g.sort_values("step").reset_index(drop=True) for cid, g in df.groupby("config_id")}


def replay(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """The objective: report the recorded rows of ``config_id`` from ``table``; train nothing.

    ``step_unit: ktokens`` reports thousands of tokens (1024) as the step, so that step-indexed
    pruners compare configs of different batch sizes at equal data rather than equal steps.
    """
    rows = load_table(str(config["table"]))[int(config["config_id"])]
    by_tokens = config.get("step_unit", "step") == "ktokens"
    for row in rows.itertuples(index=False):
        step = int(row.tokens) // TOKENS_PER_STEP_UNIT if by_tokens else int(row.step)
        report(step, **{k: float(getattr(row, k)) for k in REPORTED if hasattr(row, k)})
    return {}


def target_of(table: dict[int, pd.DataFrame], quantile: float) -> float:
    """The replays' target: this quantile of the configs' best val_loss (the share that reaches it)."""
    best_loss = pd.Series({cid: rows.val_loss.min() for cid, rows in table.items()})
    return float(round(best_loss.quantile(quantile), 3))


def budget_of(table: dict[int, pd.DataFrame], clock: str) -> float:
    """The replays' per-trial budget: the longest recorded run on ``clock``."""
    return float(max(rows[clock].max() for rows in table.values()))


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


def seeds_path(table: str | Path) -> Path:
    """Where the extra seeds of ``table`` live: ``ngpt_timed.csv`` → ``ngpt_timed.seeds.csv``."""
    return Path(table).with_suffix(".seeds.csv")


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
class Setup:
    """What every study of one benchmark run shares."""

    table: str
    ids: list[int]
    target: float
    budget: float
    clock: str


def replay_spec(setup: Setup, name: str, pruners: list[dict[str, Any]], step_unit: str, seed: int) -> StudySpec:
    return parse_spec({
        "study": f"replay_{name.replace(' ', '_')}_{seed}",
        "objective": "benchmarks.pruning_replay:replay",
        "metrics": {"time_to_target": "minimize"},
        "curve": {"metric": "val_loss"},
        "target": {"metric": "val_loss", "below": setup.target, "clock": setup.clock},
        "trial_budget_seconds": setup.budget,
        "n_trials": len(setup.ids),
        "sampler": {"name": "random", "options": {"seed": seed}},  # never asked: every trial is enqueued
        "pruners": pruners,
        "fixed": {"table": setup.table, "step_unit": step_unit},
        "space": {"config_id": {"type": "categorical", "choices": setup.ids}},
    }, "pruning_replay")


def run_replay(spec: StudySpec, seed: int) -> optuna.Study:
    """One real hpo study, in memory, over every config once in a seeded order."""
    storage = InMemoryStorage()
    study = load_study(spec, storage)
    for cid in np.random.default_rng(seed).permutation(spec.space["config_id"].choices):
        study.enqueue_trial({"config_id": int(cid)})
    session = Session(spec=spec, study=study, storage=storage, train=replay, pruner=build_pruner(spec.pruners))
    run(session, out=io.StringIO())
    return session.study


def outcome(study: optuna.Study, table: dict[int, pd.DataFrame], truth: Truth, clock: str) -> dict[str, float]:
    """Compute spent and which of the true winners were stopped early (pruned, or capped: COMPLETE
    with a censored value), for one study."""
    spent, pruned = 0.0, set()
    for t in study.get_trials(deepcopy=False):
        cid = int(t.params["config_id"])
        spent += float(table[cid][clock].iloc[len(t.intermediate_values) - 1])  # up to the last report
        if t.state == TrialState.PRUNED or t.user_attrs.get(REASON_ATTR, {}).get("censored"):
            pruned.add(cid)
    return {"compute": spent, "best_survived": float(truth.best not in pruned),
            "top5_killed": float(len(pruned & set(truth.top5))), "pruned": float(len(pruned))}


def strategies(min_tokens: float, val_every: int, clock: str, budget: float) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """Name → (pruner components, step unit)."""
    kill = {"name": "kill_rule", "options": {**KILL_RULE, "min_tokens": min_tokens}}
    seconds = kill_seconds(clock, budget)
    cap = {"name": "time_cap", "options": {"clock": clock, "rank": 5}}
    seed_rule = {"name": "kill_rule", "options": {"metric": "val_ppl", "threshold": 0.5, "min_tokens": min_tokens}}
    asha = {"name": "successive_halving", "options": {"min_resource": 2 * val_every, "reduction_factor": 3}}
    # the same first rung in tokens: 2 validations at batch 16, seq 64 = 20 x 1024 tokens
    asha_tokens = {"name": "successive_halving", "options": {"min_resource": 20, "reduction_factor": 3}}
    return {
        "no pruning": ([], "step"),
        "median (Optuna defaults)": ([{"name": "median"}], "step"),
        "ASHA": ([asha], "step"),
        "kill rule": ([kill], "step"),
        "kill rule + ASHA": ([kill, asha], "step"),
        "kill rule at equal seconds": ([seconds], "step"),
        "kill rule + time cap (rank 5)": ([kill, cap], "step"),
        "equal seconds + time cap (spec)": ([seconds, cap], "step"),
        "kill rule 0.5 PPL, patience 1": ([seed_rule], "step"),  # the seed's numbers, for comparison
        "ASHA, step = 1k tokens": ([asha_tokens], "ktokens"),
        "kill rule + ASHA, 1k tokens": ([kill, asha_tokens], "ktokens"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(TABLE))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--clock", default=None,
                   help="time column: cpu_seconds when the table has it (load-independent), else train_seconds")
    p.add_argument("--target-quantile", type=float, default=0.4,
                   help="target = this quantile of the configs' best val_loss (the share that reaches it)")
    p.add_argument("--min-tokens", type=float, help="kill rule: default 20%% of the longest run's tokens")
    p.add_argument("--threshold", type=float, default=KILL_RULE["threshold"])
    p.add_argument("--patience", type=int, default=KILL_RULE["patience"])
    p.add_argument("--single-seed", action="store_true",
                   help="the true top 5 by the recorded runs alone, ignoring the table's extra seeds")
    p.add_argument("--kill-rule-grid", action="store_true",
                   help="instead: the kill rule alone for thresholds x patiences x min_tokens (sensitivity)")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    KILL_RULE.update(threshold=args.threshold, patience=args.patience)

    table = load_table(args.table)
    first = next(iter(table.values()))
    clock = args.clock or ("cpu_seconds" if "cpu_seconds" in first else "train_seconds")
    setup = Setup(table=args.table, ids=sorted(table), clock=clock, target=target_of(table, args.target_quantile),
                  budget=budget_of(table, clock))
    max_tokens = float(max(rows.tokens.max() for rows in table.values()))
    min_tokens = args.min_tokens if args.min_tokens is not None else 0.2 * max_tokens
    truth, judged = judged_truth(args.table, table, true_times(table, setup.target, setup.budget, clock),
                                 setup.target, setup.budget, clock, args.single_seed)
    reached = sum(truth.time_to_target[c] < setup.budget for c in setup.ids)
    top = ", ".join(f"{c} ({truth.time_to_target[c]:.1f} s)" for c in truth.top5)
    print(f"{len(setup.ids)} configs from {args.table}; clock {clock}; target val_loss < {setup.target} "
          f"({reached} reach it); budget {setup.budget:.0f} s\ntrue top 5 (times to target {judged}): {top}")
    plan = strategies(min_tokens, int(first.step.iloc[0]), clock, setup.budget)
    if args.kill_rule_grid:
        plan = {"no pruning": ([], "step")}
        for frac, threshold, patience in itertools.product((0.1, 0.2, 0.4), (0.5, 1.0, 2.0), (1, 2, 3)):
            options = {"metric": "val_ppl", "threshold": threshold, "patience": patience,
                       "min_tokens": frac * max_tokens}
            plan[f"{frac:.0%} tokens, {threshold} PPL, patience {patience}"] = (
                [{"name": "kill_rule", "options": options}], "step")
    print(f"kill rule: {KILL_RULE | {'min_tokens': min_tokens}}; {args.seeds} seeds (orders)\n")

    results = []
    for name, (pruners, unit) in plan.items():
        for seed in range(args.seeds):
            study = run_replay(replay_spec(setup, name, pruners, unit, seed), seed)
            results.append({"strategy": name, "seed": seed, **outcome(study, table, truth, clock)})
    df = pd.DataFrame(results)
    df["relative"] = df.compute / df.seed.map(df[df.strategy == "no pruning"].set_index("seed").compute)
    summary = df.groupby("strategy", sort=False).agg(
        compute_vs_none=("relative", "median"), min=("relative", "min"), max=("relative", "max"),
        best_survived=("best_survived", "sum"), top5_killed=("top5_killed", "mean"),
        top5_killed_max=("top5_killed", "max"), pruned=("pruned", "mean"))
    summary["best_survived"] = summary.best_survived.map(lambda k: f"{int(k)}/{args.seeds}")
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
