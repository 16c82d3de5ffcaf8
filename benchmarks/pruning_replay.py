"""Does pruning pay, without killing the winners? Replay recorded nGPT curves through real hpo studies.

The table ``benchmarks/data/ngpt_curves.csv`` (made by ``benchmarks/record_curves.py``) holds the
full learning curve of every recorded config. Each study here is a real ``hpo`` study (runner,
reporter, pruner view, in-memory storage, spec built in code) whose objective trains nothing: it
replays the chosen config's rows through ``report()`` (``replay.py``, shared with the other
replays). Every study runs each recorded config once, in an order set by the seed (a seeded
permutation of ``config_id``, enqueued: Optuna's grid sampler compares the whole grid at every
trial, minutes for a 1000-config table), with target stopping on, so the strategies differ only
in what their pruners stop.

Per strategy it prints, over the seeds: compute spent (sum of the recorded training seconds up to
where each trial stopped) relative to no pruning, in how many seeds the best time-to-target config
survived (was not pruned), and how many of the true top-5 (by time to target on the full curves;
averaged over seeds where the table has extra seeds, ``record_seeds.py``) were pruned.

    python benchmarks/pruning_replay.py [--table PATH] [--seeds 10] [--kill-rule-grid]

The time column is ``cpu_seconds`` (training-thread CPU time) when the table has it: the table's
wall-clock ``train_seconds`` ran up to 2x slower in busy minutes of the shared machine, which
biased time-to-target rankings toward configs that happened to run in quiet minutes. The target is the 40 % quantile of the
configs' best val_loss; the budget is the longest recorded run.

**The kill rule on the CPU preset** (``replay.KILL_RULE``). The seed judges after 1M of 5M tokens (20 %
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
import itertools
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from hpo._optuna import REASON_ATTR
from hpo.specs.models import StudySpec, parse_spec

from replay import (DATA, KILL_RULE, Recorded, add_table_arguments, asha, kill_rule, kill_seconds, open_table,
                    run_study)

TABLE = DATA / "ngpt_curves.csv"


def replay_spec(table: Recorded, name: str, pruners: list[dict[str, Any]], step_unit: str, seed: int) -> StudySpec:
    """One strategy's study in one seed: every recorded config once (``config_id``), replayed."""
    return parse_spec({
        "study": f"replay_{name.replace(' ', '_')}_{seed}",
        "objective": "replay:replay_config",
        "metrics": {"time_to_target": "minimize"},
        "curve": {"metric": "val_loss"},
        "target": {"metric": "val_loss", "below": table.target, "clock": table.clock},
        "trial_budget_seconds": table.budget,
        "n_trials": len(table.curves),
        "sampler": {"name": "random", "options": {"seed": seed}},  # never asked: every trial is enqueued
        "pruners": pruners,
        "fixed": {"table": table.path, "step_unit": step_unit},
        "space": {"config_id": {"type": "categorical", "choices": sorted(table.curves)}},
    }, "pruning_replay")


def run_replay(spec: StudySpec, seed: int) -> optuna.Study:
    """One real hpo study, in memory, over every config once in a seeded order."""
    order = np.random.default_rng(seed).permutation(spec.space["config_id"].choices)
    return run_study(spec, queue=({"config_id": int(cid)} for cid in order))


def outcome(study: optuna.Study, table: Recorded) -> dict[str, float]:
    """Compute spent and which of the true winners were stopped early (pruned, or capped: COMPLETE
    with a censored value), for one study."""
    spent, pruned = 0.0, set()
    for t in study.get_trials(deepcopy=False):
        cid = int(t.params["config_id"])
        spent += float(table.curves[cid][table.clock].iloc[len(t.intermediate_values) - 1])  # up to the last report
        if t.state == TrialState.PRUNED or t.user_attrs.get(REASON_ATTR, {}).get("censored"):
            pruned.add(cid)
    truth = table.truth
    return {"compute": spent, "best_survived": float(truth.best not in pruned),
            "top5_killed": float(len(pruned & set(truth.top5))), "pruned": float(len(pruned))}


def strategies(table: Recorded, min_tokens: float, rule: dict[str, Any]) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """Name → (pruner components, step unit)."""
    kill = kill_rule(min_tokens, rule)
    seconds = kill_seconds(table.clock, table.budget)
    cap = {"name": "time_cap", "options": {"clock": table.clock, "rank": 5}}
    seed_rule = {"name": "kill_rule", "options": {"metric": "val_ppl", "threshold": 0.5, "min_tokens": min_tokens}}
    by_steps = asha(2 * table.val_every)
    # the same first rung in tokens: 2 validations at batch 16, seq 64 = 20 x 1024 tokens
    by_tokens = asha(20)
    return {
        "no pruning": ([], "step"),
        "median (Optuna defaults)": ([{"name": "median"}], "step"),
        "ASHA": ([by_steps], "step"),
        "kill rule": ([kill], "step"),
        "kill rule + ASHA": ([kill, by_steps], "step"),
        "kill rule at equal seconds": ([seconds], "step"),
        "kill rule + time cap (rank 5)": ([kill, cap], "step"),
        "equal seconds + time cap (spec)": ([seconds, cap], "step"),
        "kill rule 0.5 PPL, patience 1": ([seed_rule], "step"),  # the seed's numbers, for comparison
        "ASHA, step = 1k tokens": ([by_tokens], "ktokens"),
        "kill rule + ASHA, 1k tokens": ([kill, by_tokens], "ktokens"),
    }


def kill_rule_grid(table: Recorded) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """``--kill-rule-grid``: no pruning, then the kill rule alone over min_tokens x thresholds x patiences."""
    plan: dict[str, tuple[list[dict[str, Any]], str]] = {"no pruning": ([], "step")}
    for frac, threshold, patience in itertools.product((0.1, 0.2, 0.4), (0.5, 1.0, 2.0), (1, 2, 3)):
        options = {"metric": "val_ppl", "threshold": threshold, "patience": patience,
                   "min_tokens": frac * table.max_tokens}
        plan[f"{frac:.0%} tokens, {threshold} PPL, patience {patience}"] = (
            [{"name": "kill_rule", "options": options}], "step")
    return plan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_table_arguments(p, TABLE, seeds=10)
    p.add_argument("--clock", default=None,
                   help="time column: cpu_seconds when the table has it (load-independent), else train_seconds")
    p.add_argument("--min-tokens", type=float, help="kill rule: default 20%% of the longest run's tokens")
    p.add_argument("--threshold", type=float, default=KILL_RULE["threshold"])
    p.add_argument("--patience", type=int, default=KILL_RULE["patience"])
    p.add_argument("--kill-rule-grid", action="store_true",
                   help="instead: the kill rule alone for thresholds x patiences x min_tokens (sensitivity)")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rule = {**KILL_RULE, "threshold": args.threshold, "patience": args.patience}

    table = open_table(args.table, args.clock, args.target_quantile, args.single_seed)
    min_tokens = args.min_tokens if args.min_tokens is not None else 0.2 * table.max_tokens
    truth = table.truth
    reached = sum(t < table.budget for t in truth.time_to_target.values())
    top = ", ".join(f"{c} ({truth.time_to_target[c]:.1f} s)" for c in truth.top5)
    print(f"{len(table.curves)} configs from {args.table}; clock {table.clock}; target val_loss < {table.target} "
          f"({reached} reach it); budget {table.budget:.0f} s\ntrue top 5 (times to target {table.judged}): {top}")
    plan = kill_rule_grid(table) if args.kill_rule_grid else strategies(table, min_tokens, rule)
    print(f"kill rule: {rule | {'min_tokens': min_tokens}}; {args.seeds} seeds (orders)\n")

    results = []
    for name, (pruners, unit) in plan.items():
        for seed in range(args.seeds):
            study = run_replay(replay_spec(table, name, pruners, unit, seed), seed)
            results.append({"strategy": name, "seed": seed, **outcome(study, table)})
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
