"""Compute to a near-best config: the seed's two-stage plan vs Optuna defaults vs hpo (issue 5).

Replays recorded nGPT curves (``benchmarks/record_curves.py``: a grid over the ngpt_ttt space)
and asks of each strategy: how many training seconds does it spend before it has run, to the
target, a config whose time to target is within 5% of the best in the table? Trials train
nothing: a strategy asks for params anywhere in the grid's box, and the
recorded config nearest to them (in level units; a categorical mismatch counts one whole range)
that this strategy has not run yet in this seed has its curve reported, so samplers still see a
landscape with structure. "Not run yet": the table holds a few hundred of the space's configs, so
a sampler's proposals near a good point (which in the real space are other, nearby configs) would
otherwise all land on the same recorded run and re-run it for nothing (a TPE study ran 96 trials
on 14 distinct configs that way). A run the recorder copied to several configs (AdamW's, which
differ only in the parameters AdamW ignores) is one run: 997 config ids, 539 runs.
``--allow-repeats`` maps to the plain nearest config instead.

* (a) **seed**: seed 003's plan. Stage 1 is a fixed list of 48 configs: a baseline, every other
  level of every factor around it (the seed's groups A-F, ``hpo.policy.design.one_factor``) and
  hand-picked combinations (group G; here random combinations drawn per seed). Stage 2 is the
  fractional grid around the top 5 (``hpo.policy.narrowing`` + ``hpo.policy.design``, about 36 runs). Every
  run goes to the target or max steps.
* (b) **optuna**: Optuna's defaults, TPE + median pruner, target stopping on.
* (c) **hpo**: as ``search_spaces/ngpt_ttt.yaml`` ships: its sampler (multivariate TPE), the kill
  rule at equal seconds (``replay.KILL_SECONDS``) and the time cap at the 5th-best time
  (``--pruners``/``--cap-rank`` change them; ``asha`` adds ASHA, which ``pruning_replay`` shows
  killing the winners), two stages via ``hpo.run.two_stage``: Stage 1 of ``--stage1`` trials, narrow
  to the top 5, Stage 2 = the design enqueued first, then TPE.

**Baseline**: (a) needs a centre for its one-factor list, and the result hangs on it.
``--baseline middle`` (default): the grid's middle levels (first choice of each categorical), no
prior knowledge; ``defaults``: the objective's (``objectives/ngpt_ttt.py`` ``DEFAULTS``, textbook
Muon: lr 0.03, momentum 0.95, batch 16); ``seed``: seed 003's own (``SEED_BASELINE``: Muon with
Polar Express, lazy 7, batch 32, lr 0.01, which falls halfway between two of the grid's levels).
``--set KEY=VALUE`` overrides one of its values. Every baseline is snapped to the grid's levels.
``--warm`` is what (b) and (c) get: ``none`` (default; hpo's defaults, as the issue asks),
``baseline`` (enqueued as trial 0, a spec's ``enqueue``) or ``neighbours`` (also its one-factor
neighbours, a spec's ``one_factor_levels: 4``: the seed's groups A-F run through a study with
its sampler and pruners).

(b) and (c) search the same space, the spec's, with its conditions (``when``: AdamW trials have
no Muon-only parameters; ``--no-when`` drops them); a proposal without a parameter matches
recorded configs on the others.

**Near-best** is judged on the config, not on one lucky run: where the table has extra seeds
(``record_seeds.py``: ``<table>.seeds.csv``, the contenders re-trained with seeds 1-3), a config's
time to target is its average over the seeds, and near-best means within 5% of the best average.
What the strategies see is unchanged: the recorded (seed 0) curve, as a study with ``seed: 0``
fixed would. ``--single-seed`` judges on seed 0 alone, as before the extra seeds.

The default table is ``ngpt_timed.csv``: every config trained for the same 15 s of CPU
(``record_curves.py --budget-cpu 15``), as in a time-budgeted study. ``ngpt_curves.csv`` (200
steps per config whatever its batch size) makes time to target mostly a matter of which configs
happen to cross just before their last step.

Each strategy is replayed over ``--seeds`` seeds; it prints the share of seeds that got there,
the median and quartiles of the compute to get there (infinite for a seed that never does, so the
median is finite only when over half the seeds got there), the median of what was spent, got
there or not (for a seed that never gets there a lower bound of the compute to get there: a
strategy that gives up early looks cheap by it), and the expected compute to get there (ERT: all
compute over all seeds / successes), and the ratios (c)/(a) and (c)/(b) of these (the issue's
goals: <= 0.2 and <= 0.7), with a bootstrap interval over seeds for the ERT ratio.

Times are the recorded ``cpu_seconds`` by default (``--clock train_seconds`` for wall-clock, which
the machine's load skewed while recording).

    python benchmarks/two_stage_replay.py [--table PATH] [--seeds 20] [--baseline middle|defaults|seed]
        [--set KEY=VALUE] [--warm none|baseline|neighbours]
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from hpo.policy.design import build_design, one_factor
from hpo.errors import HpoError
from hpo.policy.narrowing import narrow_study
from hpo._optuna import FROM_ATTR, SPEC_ATTR
from hpo.specs.space import distributions
from hpo.specs.models import StudySpec, dump_spec, parse_spec
from hpo.run.session import load_spec
from hpo.run.two_stage import apply, make_plan
from objectives.ngpt_ttt import DEFAULTS

from replay import (DATA, RUN, Grid, Recorded, add_table_arguments, asha, grid, kill_rule, kill_seconds, norm,
                    open_table, pick, run_study)

TABLE = DATA / "ngpt_timed.csv"
WITHIN = 0.05  # "near-best": time to target within 5% of the table's best
STAGE1, RUNS, TOP = 48, 36, 5
LEVELS = 4  # the grid's levels per numeric factor: (a)'s one-factor list moves each factor over them
# (c) samples as the shipped spec does (multivariate TPE, 10 random startup trials); (b) gets
# Optuna's TPE defaults.
HPO_SPEC = Path(__file__).resolve().parents[1] / "search_spaces" / "ngpt_ttt.yaml"
_SHIPPED = load_spec(HPO_SPEC, check_objective=False)
HPO_SAMPLER = {k: v for k, v in _SHIPPED.sampler.options.items() if k != "seed"}
# (b) and (c) search the space as the spec defines it, with its conditions (AdamW ignores the
# Muon-only parameters); (a) is the seed's fixed list.
WHEN = {k: p.when for k, p in _SHIPPED.space.items() if p.when}


@dataclass(frozen=True)
class Bench:
    """What every strategy of one run shares: the table, its grid and the run's options."""

    table: Recorded
    grid: Grid
    stage1: int = STAGE1  # Stage-1 trials of (a) and (c)
    repeats: bool = False  # a strategy may re-run a recorded run (``--allow-repeats``)
    when: dict[str, Any] | None = None  # the conditions (b) and (c) search with


def spec_for(bench: Bench, name: str, pruners: list[dict[str, Any]], seed: int, n_trials: int,
             sampler_options: dict[str, Any] | None = None, when: dict[str, Any] | None = None,
             enqueue: list[dict[str, Any]] | None = None, one_factor_levels: int | None = None) -> StudySpec:
    """A strategy's study in one seed: the grid's box as its space, proposals replayed as the
    nearest recorded config not yet run by this strategy in this seed (``replay.replay_nearest``)."""
    table = bench.table
    return parse_spec({
        "study": f"{name}_{seed}", "objective": "replay:replay_nearest",
        "metrics": {"time_to_target": "minimize"}, "curve": {"metric": "val_loss"},
        "target": {"metric": "val_loss", "below": table.target}, "trial_budget_seconds": table.budget,
        "n_trials": n_trials, "sampler": {"name": "tpe", "options": {**(sampler_options or {}), "seed": seed}},
        "pruners": pruners,
        "fixed": {"table": table.path, "run": f"{name}_{seed}", "clock": table.clock, "repeats": bench.repeats},
        "space": bench.grid.space(when), "enqueue": enqueue or [], "one_factor_levels": one_factor_levels,
    }, "two_stage_replay")


class Ledger:
    """Compute spent, trial by trial, until a near-best config has been run to the target.

    Near-best: ``quality`` (a config's time to target as judged, ``replay.judged_truth``) within
    ``WITHIN`` of the best.
    """

    def __init__(self, table: Recorded, quality: dict[int, float]) -> None:
        self.curves, self.clock, budget = table.curves, table.clock, table.budget
        best = min(quality.values())
        self.good = {c for c, t in quality.items() if t <= best * (1 + WITHIN) and t < budget}
        self.spent, self.hit = 0.0, None

    def add(self, cid: int, until_step: int | None, reached: bool) -> None:
        if self.hit is not None:
            return
        rows = self.curves[cid]
        upto = rows if until_step is None else rows[rows.step <= until_step]
        self.spent += float(upto[self.clock].iloc[-1])
        if reached and cid in self.good:
            self.hit = self.spent

    def add_study(self, study: optuna.Study) -> None:
        """The study's own trials in run order (copied Stage-1 trials cost nothing again)."""
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if FROM_ATTR in t.system_attrs or t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
                continue
            self.add(int(t.user_attrs["config_id"]), t.last_step,
                     t.state == TrialState.COMPLETE and bool(t.user_attrs.get("reached_target")))


def middle(g: Grid) -> dict[str, Any]:
    """The uninformed baseline: each numeric factor's middle level, each categorical's first choice."""
    return {k: v[len(v) // 2] if k in g.numeric else v[0] for k, v in g.levels.items()}


# Seed 003's own baseline, as its text states it: "Muon with Polar Express"; lazy 7 ("every 7
# steps is balanced", Group D's fixed value), batch 32 (Group D's), no VR or CWD (Group B's
# "baseline"), lr 0.01 (the base lr of Groups A and G), momentum 0.95 (Muon's usual value, the
# middle of Group F). On the grid, lr 0.01 lies halfway between the levels 0.004642 and 0.02154
# on the log scale (their geometric mean is 0.009999) and snaps to 0.02154, the level of every
# near-best config of ngpt_timed.csv; ``--set lr=0.004642`` for the other side.
SEED_BASELINE: dict[str, Any] = {
    "optimizer": "muon", "orthog": "polar_express", "variance_reduction": False, "cautious_wd": False,
    "lazy_proj_freq": 7, "lr": 0.01, "batch_size": 32, "momentum": 0.95,
}


def snapped(g: Grid, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` at the grid's nearest levels (in level units)."""

    def level(k: str, v: list[Any]) -> Any:
        if k in g.categorical:
            return next(x for x in v if norm(x) == norm(config[k]))
        return min(v, key=lambda x: abs(g.position(k, x) - g.position(k, config[k])))

    return {k: level(k, v) for k, v in g.levels.items()}


def baseline(g: Grid, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """(a)'s centre: ``middle`` (no prior knowledge), ``defaults`` (``objectives/ngpt_ttt.py``
    DEFAULTS: textbook Muon) or ``seed`` (:data:`SEED_BASELINE`), with ``overrides``, snapped."""
    start = {"middle": middle(g), "defaults": DEFAULTS, "seed": SEED_BASELINE}[name]
    for key, value in overrides.items():
        if key not in g.levels:
            raise SystemExit(f"two_stage_replay: --set {key}: not a parameter of the grid (fix: one of {list(g.levels)})")
        if key in g.categorical and norm(value) not in map(norm, g.levels[key]):
            raise SystemExit(f"two_stage_replay: --set {key}={value}: not a choice (fix: one of {g.levels[key]})")
    return snapped(g, {**start, **overrides})


def parse_set(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--set``) as a dict, values parsed as YAML (numbers, true/false)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"two_stage_replay: --set {item!r} is not KEY=VALUE (fix: e.g. --set lr=0.004642)")
        out[key] = yaml.safe_load(value)
    return out


def seed_plan(bench: Bench, ledger: Ledger, seed: int, base: dict[str, Any]) -> None:
    """(a): the fixed Stage-1 list around ``base``, then the fractional grid around its top 5,
    all to target (on the recorded runs' times)."""
    g, times = bench.grid, bench.table.recorded.time_to_target
    rng = np.random.default_rng(seed)
    spec = spec_for(bench, "seed", [], seed, bench.stage1)
    stage1 = one_factor(spec.space, base, LEVELS)
    while len(stage1) < bench.stage1:
        stage1.append({k: v[int(rng.integers(len(v)))] for k, v in g.levels.items()})
    study = optuna.create_study(direction="minimize")
    study.set_user_attr(SPEC_ATTR, dump_spec(spec))
    dists = distributions(spec)
    run = f"seed_{seed}"
    for params in stage1:
        cid = _run_to_target(bench, pick(g, params, run, bench.repeats), ledger)
        study.add_trial(optuna.create_trial(value=times[cid], params=params, distributions=dists))
    narrowed = narrow_study(study, TOP)
    for point in build_design(narrowed.spec.space, RUNS).points:
        _run_to_target(bench, pick(g, {**narrowed.spec.fixed, **point}, run, bench.repeats), ledger)


def _run_to_target(bench: Bench, cid: int, ledger: Ledger) -> int:
    """Run one config of the seed's plan: to the target if it gets there, else to max steps."""
    table = bench.table
    rows, reached = table.curves[cid], table.recorded.time_to_target[cid] < table.budget
    ledger.add(cid, int(rows[rows.val_loss < table.target].step.iloc[0]) if reached else None, reached)
    return cid


def hpo_two_stage(bench: Bench, ledger: Ledger, pruners: list[dict[str, Any]], seed: int,
                  warm: dict[str, Any]) -> bool:
    """(c): Stage 1 with TPE and pruners, then hpo.run.two_stage's narrowing, design and Stage 2;
    ``warm``: Stage 1's ``enqueue`` and ``one_factor_levels``, as in a spec.

    Returns whether Stage 2 ran: with fewer than 2 COMPLETE Stage-1 trials (the pruners stopped
    the rest) there is nothing to narrow around, and Stage 1's TPE goes on for Stage 2's share.
    """
    storage = InMemoryStorage()
    spec = spec_for(bench, "hpo", pruners, seed, bench.stage1, HPO_SAMPLER, bench.when, **warm)
    first = run_study(spec, storage)
    second = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plan = make_plan(first, top=TOP, runs=RUNS, reuse=False, root=Path(tmp))
            apply(plan, storage, out=io.StringIO())
            second = run_study(plan.spec, storage)
    except HpoError:
        first = run_study(spec.model_copy(update={"n_trials": bench.stage1 + RUNS}), storage)
    ledger.add_study(first)
    if second is not None:
        ledger.add_study(second)
    return second is not None


def ert(rows: pd.DataFrame) -> float:
    """ERT, the expected running time of optimisation benchmarking (COCO): all compute spent over
    all seeds, successful or not, divided by the number of successes; a strategy that spends
    little because it gives up early does not look cheap by it."""
    return rows.compute.sum() / rows.reached.sum() if rows.reached.any() else math.inf


def to_reach(rows: pd.DataFrame) -> np.ndarray:
    """Compute to reach a near-best config, per seed: infinite where the seed never got there."""
    return np.where(rows.reached, rows.compute, math.inf)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: share of seeds that got there; compute to get there (median and quartiles
    over seeds, infinite where a seed never did, so a median is finite only when over half got
    there); what was spent, got there or not (median: a lower bound of the compute to get there);
    and ERT."""
    out = {}
    for name, rows in df.groupby("strategy", sort=False):
        q25, median, q75 = np.quantile(to_reach(rows), [0.25, 0.5, 0.75], method="inverted_cdf")
        out[name] = {"reached": rows.reached.mean(), "median": median, "q25": q25, "q75": q75,
                     "spent": rows.compute.median(), "ERT": ert(rows)}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("strategy")


def ratio(mine: float, other: float) -> float:
    """mine / other, where other may never get there (inf: 0, or nan if mine never does either)."""
    if math.isinf(other):
        return math.nan if math.isinf(mine) else 0.0
    return mine / other


def _fmt_ratio(r: float) -> str:
    return "n/a (both infinite)" if math.isnan(r) else f"{r:.2f}"


def bootstrap_ert_ratio(df: pd.DataFrame, mine: str, other: str, n: int = 2000) -> tuple[float, float]:
    """A 90% interval of ERT(mine) / ERT(other), resampling seeds (the same seeds for both)."""
    rng = np.random.default_rng(0)
    a, b = (df[df.strategy == k].sort_values("seed") for k in (mine, other))
    ratios = []
    for _ in range(n):
        pick = rng.integers(len(a), size=len(a))
        ratios.append(ratio(ert(a.iloc[pick]), ert(b.iloc[pick])))
    lo, hi = np.nanquantile(ratios, [0.05, 0.95])
    return float(lo), float(hi)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_table_arguments(p, TABLE, seeds=20)
    p.add_argument("--stage1", type=int, default=STAGE1, help="Stage-1 trials of (a) and (c) (default: 48)")
    p.add_argument("--clock", default="cpu_seconds", choices=["cpu_seconds", "train_seconds"],
                   help="the recorded clock (default cpu_seconds: immune to load while recording)")
    p.add_argument("--pruners", default="kill_seconds+time_cap",
                   help="hpo's pruners, '+'-joined from kill_seconds, kill_rule, time_cap, asha (default: as the "
                        "spec ships, the kill rule at equal seconds and adaptive time capping; kill_rule: at "
                        "equal tokens, the seed's rule)")
    p.add_argument("--allow-repeats", action="store_true",
                   help="map each proposal to the nearest recorded config even if already run")
    p.add_argument("--no-when", action="store_true",
                   help="(b) and (c) search without the spec's conditions (AdamW trials then carry the "
                        "Muon-only parameters it ignores)")
    p.add_argument("--cap-rank", type=int, default=5, help="time_cap's rank (default 5, as in the spec)")
    p.add_argument("--baseline", default="middle", choices=["middle", "defaults", "seed"],
                   help="the centre of (a)'s one-factor list: middle (the grid's middle levels, no prior "
                        "knowledge), defaults (the objective's: textbook Muon) or seed (seed 003's own baseline)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value of the baseline (repeatable), e.g. --set lr=0.004642")
    p.add_argument("--warm", default="none", choices=["none", "baseline", "neighbours"],
                   help="what (b) and (c) are given: nothing (hpo's defaults, as the issue asks), the baseline "
                        "enqueued as trial 0 (a spec's enqueue), or also its one-factor neighbours "
                        "(one_factor_levels: 4, (a)'s groups A-F)")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    table = open_table(args.table, args.clock, args.target_quantile, args.single_seed)
    bench = Bench(table, grid(args.table), args.stage1, args.allow_repeats, {} if args.no_when else WHEN)
    g, quality = bench.grid, table.truth.time_to_target
    cap = {"name": "time_cap", "options": {"rank": args.cap_rank}}
    named = {"kill_rule": kill_rule(0.2 * table.max_tokens), "asha": asha(2 * table.val_every), "time_cap": cap,
             "kill_seconds": kill_seconds("train_seconds", table.budget)}
    pruners = [named[n] for n in args.pruners.split("+")]
    good = Ledger(table, quality).good
    base = baseline(g, args.baseline, parse_set(args.set))
    # what (b) and (c) enqueue: as a spec's enqueue and one_factor_levels
    warm = {"enqueue": [] if args.warm == "none" else [base],
            "one_factor_levels": LEVELS if args.warm == "neighbours" else None}
    print(f"baseline ({args.baseline}{', ' + ', '.join(args.set) if args.set else ''}): {base}; "
          f"(b) and (c) are given: {args.warm}")
    print(f"{len(table.curves)} recorded configs of a {math.prod(len(v) for v in g.levels.values())}-point grid; "
          f"target val_loss < {table.target}; budget {table.budget:.0f} s; best time to target "
          f"{min(quality.values()):.2f} s {table.judged}; near-best (within {WITHIN:.0%}): {sorted(good)}")

    results = []
    for seed in range(args.seeds):
        start = time.perf_counter()
        for name in ("seed", "optuna", "hpo"):
            RUN.clear()
            ledger = Ledger(table, quality)
            if name == "seed":
                seed_plan(bench, ledger, seed, base)
            elif name == "optuna":
                n = bench.stage1 + RUNS
                ledger.add_study(run_study(spec_for(bench, "optuna", [{"name": "median"}], seed, n, when=bench.when,
                                                    **warm)))
            else:
                narrowed = hpo_two_stage(bench, ledger, pruners, seed, warm)
            results.append({"strategy": name, "seed": seed, "compute": ledger.hit or ledger.spent,
                            "reached": ledger.hit is not None, "narrowed": name == "hpo" and narrowed})
        print(f"seed {seed}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    df = pd.DataFrame(results)
    summary = summarize(df)
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"hpo: stage 2 ran in {int(df.narrowed.sum())}/{args.seeds} seeds (else < 2 COMPLETE stage-1 trials)")
    for other, goal in (("seed", 0.2), ("optuna", 0.7)):
        letter = "a" if other == "seed" else "b"
        lo, hi = bootstrap_ert_ratio(df, "hpo", other)
        r = {k: _fmt_ratio(ratio(*summary.loc[["hpo", other], k])) for k in ("ERT", "median", "spent")}
        print(f"(c)/({letter}) hpo/{other}: expected compute (ERT) {r['ERT']} (90% bootstrap over seeds "
              f"{lo:.2f}..{hi:.2f}), medians to get there {r['median']}, medians spent {r['spent']} (goal <= {goal})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
