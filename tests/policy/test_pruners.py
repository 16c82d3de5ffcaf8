"""Pruners: the kill rule against hand-computed curves, composition, the registry, and Optuna parity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from curves import Curve, loss_rows, ppl_rows, pruned_steps, replay, run_hpo_curves, run_plain_curves
from hpo._optuna import REASON_ATTR
from hpo.policy.pruners import REGISTRY, AnyPruner, KillRulePruner, TimeCapPruner, build_one, build_pruner
from hpo.specs.models import PRUNERS, Component

M = 1_000_000


def kill_rule(**options: Any) -> list[dict[str, Any]]:
    return [{"name": "kill_rule", "options": options}]


def as_rows(curves: list[list[float]]) -> list[Curve]:
    """Value curves as report rows (tokens = step)."""
    return [loss_rows(c) for c in curves]


def reason(study: optuna.Study, number: int) -> dict[str, Any]:
    return study.trials[number].user_attrs[REASON_ATTR]


# --- the kill rule, hand-computed ------------------------------------------------------------


def test_kills_at_the_first_check_past_min_tokens_that_is_threshold_worse() -> None:
    # ppl 20 at 0.5M is 10 worse than the baseline but before min_tokens; 10.4 is 0.4 worse;
    # 10.5 is exactly 0.5 worse (>= threshold) -> killed at step 3, never reaching step 4.
    curve = ppl_rows([20, 10.4, 10.5, 9], [0.5 * M, 1 * M, 1.5 * M, 2 * M])
    study = run_hpo_curves([curve], kill_rule(baseline=10.0))
    assert pruned_steps(study) == [3]
    assert reason(study, 0) == {"pruner": "kill_rule", "step": 3, "tokens": 1.5 * M, "value": 10.5,
                                "reference": 10.0, "difference": 0.5, "threshold": 0.5}
    assert study.trials[0].user_attrs["stop_reason"].startswith("kill_rule: pruned at step 3")


def test_min_tokens_counts_tokens_not_steps() -> None:
    # 1 step = 0.4M tokens: step 3 (1.2M) is the first judged check, although step 1 is already worse.
    curve = ppl_rows([12, 12, 12], [0.4 * M, 0.8 * M, 1.2 * M])
    assert pruned_steps(run_hpo_curves([curve], kill_rule(baseline=10.0))) == [3]


def test_patience_needs_consecutive_checks_and_a_good_check_resets_it() -> None:
    tokens = [0.5 * M * i for i in range(1, 9)]
    # judged from 1M (step 2) on: worse, worse, fine (reset), worse, worse, worse -> killed at step 7.
    # Counting the unjudged step 1 would kill at step 3; ignoring the reset would kill at step 5.
    ppls = [30, 30, 10.6, 10.2, 10.7, 10.8, 10.9, 9.0]
    study = run_hpo_curves([ppl_rows(ppls, tokens)], kill_rule(baseline=10.0, patience=3))
    assert pruned_steps(study) == [7]
    assert reason(study, 0)["tokens"] == 3.5 * M and reason(study, 0)["value"] == 10.9


REFERENCE_CURVES = [
    ppl_rows([12, 10, 9, 8.5], [1 * M, 2 * M, 3 * M, 4 * M]),  # best final value: the reference
    ppl_rows([11, 9.6, 9.2, 8.9], [1 * M, 2 * M, 3 * M, 4 * M]),  # better early, worse final
    # twice the batch: reports at 1.5M, 2.5M, 3.5M, 4.5M (between trial 0's reports)
    ppl_rows([11.4, 9.9, 9.3, 9.1], [1.5 * M, 2.5 * M, 3.5 * M, 4.5 * M]),
]


def test_reference_is_the_best_finished_trial_interpolated_at_the_same_tokens() -> None:
    # Trial 1 vs trial 0: 11-12, 9.6-10, 9.2-9, 8.9-8.5 = at most 0.4 -> completes (final 8.9 > 8.5).
    # Trial 2 vs trial 0 interpolated: 11.4-11.0=0.4, 9.9-9.5=0.4, 9.3-8.75=0.55 -> killed at step 3.
    # (Against trial 1, step 1 would be 11.4-10.3=1.1; with the previous report instead of
    # interpolation step 3 would be 9.3-9.0=0.3.)
    study = run_hpo_curves(REFERENCE_CURVES, kill_rule())
    assert pruned_steps(study) == [None, None, 3]
    r = reason(study, 2)
    assert (r["tokens"], r["value"]) == (3.5 * M, 9.3)
    assert r["reference"] == pytest.approx(8.75) and r["difference"] == pytest.approx(0.55)


def test_named_baseline_trial_is_the_reference() -> None:
    # Trial 1's curve interpolated at 1.5M: (11 + 9.6) / 2 = 10.3; 11.4 - 10.3 = 1.1 -> killed at once.
    study = run_hpo_curves(REFERENCE_CURVES, kill_rule(baseline_trial=1))
    assert pruned_steps(study) == [None, None, 1]
    assert reason(study, 2)["reference"] == pytest.approx(10.3)


def test_reference_held_flat_after_its_end_and_absent_before_its_start() -> None:
    ref = ppl_rows([10, 9], [1 * M, 2 * M])
    # 0.5M: before the reference's first report, nothing to compare (50 is not judged);
    # 1.5M: 9.9 vs 9.5; 3M: 9.5 vs 9 (held flat) -> 0.5 -> killed at step 3.
    late = ppl_rows([50, 9.9, 9.5], [0.5 * M, 1.5 * M, 3 * M])
    study = run_hpo_curves([ref, late], kill_rule(min_tokens=0))
    assert pruned_steps(study) == [None, 3]
    assert reason(study, 1)["reference"] == 9.0


def seconds_rows(losses: list[float], seconds: float, tokens: float) -> list[dict[str, float]]:
    """One report per ``seconds`` of train_seconds and ``tokens`` tokens."""
    return [{"val_loss": v, "train_seconds": seconds * (i + 1), "tokens": tokens * (i + 1)}
            for i, v in enumerate(losses)]


# Target val_loss < 1.0. Trial 0, big batch: 2 s and 8K tokens per report, reaches it at 8 s with
# the lower final value. Trial 1, small batch: 1 s and 1K tokens per report, reaches it at 3 s.
BEST_AND_FAST = [seconds_rows([1.9, 1.5, 1.2, 0.5], 2.0, 8e3), seconds_rows([2.0, 1.2, 0.9], 1.0, 1e3)]


def test_kill_rule_at_equal_seconds_against_the_fastest_trial() -> None:
    # Trial 2 (1 s, 1K tokens per report): 1.9 at 2 s is 0.7 over the fastest trial's 1.2 at 2 s ->
    # killed at step 2. Against "best" (trial 0, final 0.5) at 2 s it is 0.0 over; at 3 s 1.85 vs
    # 1.7 (interpolated) 0.15; at 4 s 1.8 vs 1.5 0.3; at 5 s 0.4; at 6 s 1.72 vs 1.2 -> step 6.
    slow = seconds_rows([2.0, 1.9, 1.85, 1.8, 1.75, 1.72, 1.7, 1.7], 1.0, 1e3)
    options = {"metric": "val_loss", "threshold": 0.5, "index": "train_seconds", "min_index": 2}
    target = {**TTT}
    fastest = run_hpo_curves([*BEST_AND_FAST, slow], kill_rule(**options, reference="fastest"), **target)
    assert pruned_steps(fastest) == [None, None, 2]
    r = reason(fastest, 2)
    assert (r["index"], r["train_seconds"], r["value"], r["reference"]) == ("train_seconds", 2.0, 1.9, 1.2)
    assert "at train_seconds 2" in fastest.trials[2].user_attrs["stop_reason"]
    best = run_hpo_curves([*BEST_AND_FAST, slow], kill_rule(**options), **target)
    assert pruned_steps(best) == [None, None, 6]
    # The same curves at equal tokens (the seed's rule): the big batch's curve is the reference
    # and trial 2's 1K-token reports come before its first report (8K): nothing is judged.
    tokens = run_hpo_curves([*BEST_AND_FAST, slow], kill_rule(metric="val_loss", threshold=0.5, min_tokens=0),
                            **target)
    assert pruned_steps(tokens) == [None, None, None]


def test_mode_max_kills_when_the_metric_falls_below_the_reference() -> None:
    accs = [0.78, 0.76, 0.74, 0.9]  # 0.02, 0.04, 0.06 below a baseline of 0.8
    curve = [{"val_loss": 1 - a, "val_acc": a, "tokens": 1e5 * (i + 1)} for i, a in enumerate(accs)]
    study = run_hpo_curves([curve], kill_rule(metric="val_acc", mode="max", baseline=0.8, threshold=0.05,
                                              min_tokens=0))
    assert pruned_steps(study) == [3]
    assert reason(study, 0)["difference"] == pytest.approx(0.06)


def test_stall_patience_kills_a_run_that_stopped_improving() -> None:
    # judged from 1M: 10, 9, 9.5, 9.2 -> the last two never beat 9 -> stall at step 5.
    # (The unjudged 5 at 0.5M would make it step 3; the improvement to 9 resets the count.)
    tokens = [0.5 * M * i for i in range(1, 7)]
    curve = ppl_rows([5, 10, 9, 9.5, 9.2, 9.4], tokens)
    study = run_hpo_curves([curve], kill_rule(threshold=100.0, stall_patience=2))
    assert pruned_steps(study) == [5]
    r = reason(study, 0)
    assert (r["pruner"], r["step"], r["tokens"], r["value"]) == ("stall", 5, 2.5 * M, 9.2)


PLAIN_KILL = [
    [10, 8, 6, 5, 4.5],
    # steps 1-2 are before min_tokens=3; step 3 worse by 0.6, step 4 by 0.3 (reset),
    # step 5 by 0.6, step 6 by 0.7 against the reference held flat at 4.5 -> killed at step 6.
    [10.6, 8.7, 6.6, 5.3, 5.1, 5.2, 4.0],
    [10, 8, 6, 5, 4.5],
]


def test_kill_rule_in_a_plain_optuna_study() -> None:
    study = run_plain_curves(PLAIN_KILL, KillRulePruner(metric=None, threshold=0.5, min_tokens=3, patience=2))
    assert pruned_steps(study) == [None, 6, None]
    r = reason(study, 1)
    assert (r["step"], r["tokens"], r["value"], r["reference"]) == (6, 6.0, 5.2, 4.5)
    assert r["difference"] == pytest.approx(0.7)


def test_kill_rule_on_the_curve_through_hpo_matches_plain_optuna() -> None:
    # metric null: the curve itself, indexed by tokens; tokens = step here, so plain decisions hold.
    study = run_hpo_curves(as_rows(PLAIN_KILL), kill_rule(metric=None, threshold=0.5, min_tokens=3, patience=2))
    assert pruned_steps(study) == [None, 6, None]


def test_kill_rule_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="mode"):
        KillRulePruner(mode="lowest")
    with pytest.raises(ValueError, match="patience"):
        KillRulePruner(patience=0)


# --- adaptive time capping ------------------------------------------------------------------

TTT = {"metrics": {"time_to_target": "minimize"}, "target": {"metric": "val_loss", "below": 1.0},
       "trial_budget_seconds": 100}


def time_cap(**options: Any) -> list[dict[str, Any]]:
    return [{"name": "time_cap", "options": options}]


def capped_steps(study: optuna.Study) -> list[int | None]:
    """Per trial: the step ``time_cap`` stopped it at, or None."""
    return [t.last_step if t.user_attrs.get(REASON_ATTR, {}).get("pruner") == "time_cap" else None
            for t in study.get_trials(deepcopy=False)]


def test_time_cap_stops_a_trial_once_it_is_slower_than_the_best_time_to_target() -> None:
    # loss_rows: 1 s per report. Trial 0 reaches the target (< 1.0) at 3 s; trial 1 never does and
    # is stopped at 3 s, not at the 100 s budget; trial 2 crosses at 3 s and completes; trial 3 is
    # faster (2 s) and lowers the cap, so trial 4 stops at 2 s.
    curves = as_rows([[2.0, 1.5, 0.9], [2.0] * 8, [2.0, 2.0, 0.95, 0.5], [1.5, 0.8], [2.0] * 8])
    study = run_hpo_curves(curves, time_cap(), **TTT)
    assert capped_steps(study) == [None, 3, None, None, 2]
    # a capped trial is COMPLETE, censored: the budget + seconds at the cap x (1 + gap to the target
    # 1.0 / 1.0), so it ranks after every trial that reached the target
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
    assert [t.values[0] for t in study.trials] == [3.0, 100 + 3.0 * 2, 3.0, 2.0, 100 + 2.0 * 2]
    assert [t.user_attrs.get("censored_at") for t in study.trials] == [None, 3.0, None, None, 2.0]
    assert [t.user_attrs["reached_target"] for t in study.trials] == [True, False, True, True, False]
    assert reason(study, 1) == {"pruner": "time_cap", "step": 3, "clock": "train_seconds", "value": 3.0,
                                "cap": 3.0, "rank": 1, "censored": True, "why": reason(study, 1)["why"]}
    assert study.trials[1].user_attrs["stop_reason"].startswith("time_cap: capped at step 3: ")
    assert "cap 3 s" in study.trials[1].user_attrs["stop_reason"]


def test_a_capped_trial_ranks_after_faster_ones_and_before_itself_run_to_the_budget() -> None:
    # trial 0 reaches the target at 2 s. Trials 1 and 2 never do (best 1.5: gap 0.5). Capped at 2 s
    # they are worth 4 + 2 x 1.5 = 7.0; uncapped (slack 1.5: cap 5 s, past the 4 s budget) they run
    # to the budget and are worth 4 + 4 x 1.5 = 10.0. Either way after the trial that got there.
    curves = as_rows([[2.0, 0.9], [2.0, 1.5, 1.5], [1.5] * 4])
    budget = {**TTT, "trial_budget_seconds": 4}
    uncapped = run_hpo_curves(curves, time_cap(slack=1.5), **budget)
    assert capped_steps(uncapped) == [None, None, None]
    assert [t.values[0] for t in uncapped.trials] == [2.0, 4 + 4.0 * 1.5, 4 + 4.0 * 1.5]
    capped = run_hpo_curves(curves, time_cap(), **budget)
    assert capped_steps(capped) == [None, 2, 2]
    assert [t.values[0] for t in capped.trials] == [2.0, 4 + 2.0 * 1.5, 4 + 2.0 * 1.5]


def test_time_cap_rank_waits_for_that_many_finishers_and_slack_extends_the_cap() -> None:
    # rank 2: trial 1 runs to the budget-free end (only one finisher yet); then the 2nd-best time is
    # 4 s, and slack 0.5 caps trial 3 at 6 s.
    curves = as_rows([[2.0, 0.9], [2.0] * 8, [2.0, 2.0, 2.0, 0.9], [2.0] * 8])
    study = run_hpo_curves(curves, time_cap(rank=2, slack=0.5), **TTT)
    assert capped_steps(study) == [None, None, None, 6]
    assert reason(study, 3)["cap"] == 6.0


def test_time_cap_ignores_finished_trials_that_missed_the_target() -> None:
    # trial 0 ends at its last report without reaching the target: it sets no cap.
    study = run_hpo_curves(as_rows([[2.0, 1.5], [2.0] * 5]), time_cap(), **TTT)
    assert capped_steps(study) == [None, None]


def test_time_cap_works_in_a_multi_objective_study() -> None:
    curves = as_rows([[2.0, 1.5, 0.9], [2.0] * 8, [1.5, 0.8], [2.0] * 8])
    study = run_hpo_curves(curves, time_cap(), **{**TTT, "metrics": {"time_to_target": "minimize",
                                                                    "val_loss": "minimize"}})
    assert len(study.directions) == 2
    assert capped_steps(study) == [None, 3, None, 2]
    assert study.trials[1].values == [100 + 3.0 * 2, 2.0]


def test_time_cap_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="rank"):
        TimeCapPruner(rank=0)
    with pytest.raises(ValueError, match="slack"):
        TimeCapPruner(slack=-0.1)


# --- composition ---------------------------------------------------------------------------


def random_curves(n: int = 30, steps: int = 12, seed: int = 0) -> list[list[float]]:
    """Noisy power-law loss curves with random floors and speeds."""
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(n):
        floor, scale, speed = rng.uniform(1.5, 3.0), rng.uniform(1.0, 4.0), rng.uniform(0.3, 1.2)
        noise = rng.normal(0.0, 0.05, steps)
        curves.append([float(floor + scale * s**-speed + e) for s, e in zip(range(1, steps + 1), noise)])
    return curves


def test_any_pruner_records_which_pruner_fired() -> None:
    curves = random_curves()
    bound, first_judged = 2.8, 6  # the kill rule judges from step 6 (x = tokens = step)
    specs = [{"name": "kill_rule", "options": {"metric": None, "baseline": bound - 0.5, "min_tokens": 6}},
             {"name": "hyperband", "options": {"min_resource": 1, "max_resource": 12, "reduction_factor": 3}}]
    hpo_study = run_hpo_curves(as_rows(curves), specs)
    plain = run_plain_curves(curves, build_pruner([Component.model_validate(s) for s in specs]))
    assert pruned_steps(hpo_study) == pruned_steps(plain)
    fired = []
    for t in hpo_study.trials:
        if t.state != TrialState.PRUNED:
            continue
        r, judged = t.user_attrs[REASON_ATTR], curves[t.number][first_judged - 1 : t.last_step]
        fired.append(r["pruner"])
        assert r["step"] == t.last_step and r["value"] == pytest.approx(curves[t.number][t.last_step - 1])
        if r["pruner"] == "kill_rule":  # the first judged value at or over the bound
            assert judged[-1] >= bound and all(v < bound for v in judged[:-1])
        else:
            assert r["pruner"] == "hyperband" and all(v < bound for v in judged)
        assert plain.trials[t.number].user_attrs[REASON_ATTR]["pruner"] == r["pruner"]
    assert set(fired) == {"kill_rule", "hyperband"}


def test_no_pruners_is_nop_and_one_or_more_is_any() -> None:
    assert isinstance(build_pruner([]), optuna.pruners.NopPruner)
    built = build_pruner([Component(name="median"), Component(name="kill_rule")])
    assert isinstance(built, AnyPruner)
    assert [(n, type(p).__name__) for n, p in built.pruners] == [("median", "MedianPruner"),
                                                                   ("kill_rule", "KillRulePruner")]


# --- the registry ----------------------------------------------------------------------------

REGISTRY_CASES: list[tuple[str, dict[str, Any], Callable[[Any], bool]]] = [
    ("nop", {}, lambda p: isinstance(p, optuna.pruners.NopPruner)),
    ("median", {"n_startup_trials": 3, "n_warmup_steps": 2, "interval_steps": 2},
     lambda p: (p._n_startup_trials, p._n_warmup_steps, p._interval_steps, p._percentile) == (3, 2, 2, 50.0)),
    ("percentile", {"percentile": 25.0, "n_min_trials": 2},
     lambda p: (p._percentile, p._n_min_trials) == (25.0, 2)),
    ("successive_halving", {"min_resource": 2, "reduction_factor": 3, "min_early_stopping_rate": 1},
     lambda p: (p._min_resource, p._reduction_factor, p._min_early_stopping_rate) == (2, 3, 1)),
    ("hyperband", {"min_resource": 1, "max_resource": 27, "reduction_factor": 3},
     lambda p: (p._min_resource, p._max_resource, p._reduction_factor) == (1, 27, 3)),
    ("threshold", {"upper": 5.0, "n_warmup_steps": 1}, lambda p: (p._upper, p._n_warmup_steps) == (5.0, 1)),
    ("patient", {"patience": 3, "min_delta": 0.01,
                 "wrapped": {"name": "median", "options": {"n_startup_trials": 7}}},
     lambda p: (p._patience, p._min_delta, type(p._wrapped_pruner).__name__,
                p._wrapped_pruner._n_startup_trials) == (3, 0.01, "MedianPruner", 7)),
    ("patient", {"patience": 2}, lambda p: p._wrapped_pruner is None),
    ("wilcoxon", {"p_threshold": 0.05, "n_startup_steps": 4},
     lambda p: (p._p_threshold, p._n_startup_steps) == (0.05, 4)),
    ("kill_rule", {"metric": "val_ppl", "threshold": 0.3, "min_tokens": 5e5, "patience": 2, "mode": "max",
                   "baseline_trial": 4, "stall_patience": 6},
     lambda p: (p.metric, p.threshold, p.min_x, p.patience, p.sign, p.baseline_trial, p.stall_patience)
     == ("val_ppl", 0.3, 5e5, 2, -1.0, 4, 6)),
    ("kill_rule", {"metric": "val_loss", "index": "train_seconds", "min_index": 2.0, "reference": "fastest"},
     lambda p: (p.metric, p.index, p.min_x, p.reference) == ("val_loss", "train_seconds", 2.0, "fastest")),
    ("time_cap", {"clock": "cpu_seconds", "rank": 5, "slack": 0.1},
     lambda p: (p.clock, p.rank, p.slack) == ("cpu_seconds", 5, 0.1)),
]


@pytest.mark.parametrize(("name", "options", "check"), REGISTRY_CASES, ids=[c[0] for c in REGISTRY_CASES])
def test_every_registry_pruner_builds_from_a_spec_component(
    name: str, options: dict[str, Any], check: Callable[[Any], bool]
) -> None:
    pruner = build_one(Component(name=name, options=options))
    assert isinstance(pruner, optuna.pruners.BasePruner) and check(pruner)


def test_registry_covers_every_pruner_the_spec_accepts() -> None:
    assert set(REGISTRY) == set(PRUNERS)
    assert {name for name, _, _ in REGISTRY_CASES} == set(PRUNERS)


# --- Optuna's pruners: the same decisions through hpo as through plain Optuna -----------------

PARITY_CASES: list[tuple[str, dict[str, Any], Callable[[], optuna.pruners.BasePruner]]] = [
    ("median", {"n_startup_trials": 3, "n_warmup_steps": 2},
     lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)),
    ("percentile", {"percentile": 30.0, "n_startup_trials": 3, "n_warmup_steps": 1, "interval_steps": 2},
     lambda: optuna.pruners.PercentilePruner(30.0, n_startup_trials=3, n_warmup_steps=1, interval_steps=2)),
    ("successive_halving", {"min_resource": 1, "reduction_factor": 2},
     lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)),
    ("hyperband", {"min_resource": 1, "max_resource": 12, "reduction_factor": 3},
     lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=12, reduction_factor=3)),
    ("threshold", {"upper": 2.8, "n_warmup_steps": 5},
     lambda: optuna.pruners.ThresholdPruner(upper=2.8, n_warmup_steps=5)),
    ("patient", {"patience": 1, "wrapped": {"name": "median", "options": {"n_startup_trials": 3}}},
     lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(n_startup_trials=3), patience=1)),
]


@pytest.mark.parametrize(("name", "options", "plain"), PARITY_CASES, ids=[c[0] for c in PARITY_CASES])
def test_optuna_pruner_decides_the_same_through_hpo(
    name: str, options: dict[str, Any], plain: Callable[[], optuna.pruners.BasePruner], tmp_path: Path
) -> None:
    curves = random_curves()
    expected = pruned_steps(run_plain_curves(curves, plain()))
    assert 0 < sum(s is not None for s in expected) < len(curves)  # the comparison means something
    # One case on SQLite (rung attributes written through the view to a real database), the rest
    # in memory: the view and the reporter are the same code on every storage.
    url = f"sqlite:///{tmp_path / 'parity.db'}" if name == "successive_halving" else None
    study = run_hpo_curves(as_rows(curves), [{"name": name, "options": options}], url=url)
    assert pruned_steps(study) == expected


MULTI_CASES: list[tuple[str, dict[str, Any], Callable[[], optuna.pruners.BasePruner]]] = [
    ("median", {"n_startup_trials": 3}, lambda: optuna.pruners.MedianPruner(n_startup_trials=3)),
    # judges against the best trial: in a multi-objective study, the best last value of the curve
    ("wilcoxon", {"p_threshold": 0.1}, lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.1)),
]


@pytest.mark.parametrize(("name", "options", "plain"), MULTI_CASES, ids=[c[0] for c in MULTI_CASES])
def test_multi_objective_study_prunes_like_plain_optuna_in_the_curve_direction(
    name: str, options: dict[str, Any], plain: Callable[[], optuna.pruners.BasePruner]
) -> None:
    accuracy = [[1.0 - v / 10 for v in c] for c in random_curves()]  # maximised
    expected = pruned_steps(run_plain_curves(accuracy, plain(), direction="maximize"))
    assert 0 < sum(s is not None for s in expected) < len(accuracy)
    rows = [[{**row, "val_acc": a} for row, a in zip(loss_rows(c), c, strict=True)] for c in accuracy]
    study = run_hpo_curves(rows, [{"name": name, "options": options}],
                           metrics={"val_loss": "minimize", "train_seconds": "minimize"},
                           curve={"metric": "val_acc", "direction": "maximize"})
    assert pruned_steps(study) == expected


def test_a_failed_baseline_is_retried_and_judges_from_its_retry() -> None:
    """Baseline trial 0 fails; its retry (queued at once, so trial 1) becomes the reference."""
    calls = iter(["fail", "baseline", "good", "bad"])

    def train(rows: Curve, report: Callable[..., None]) -> dict[str, float]:
        kind = next(calls)
        if kind == "fail":
            raise RuntimeError("out of memory")
        ppls = {"baseline": [20.0, 12.0, 10.0], "good": [20.0, 11.0, 9.0], "bad": [20.0, 19.0, 18.0]}[kind]
        return replay(ppl_rows(ppls, [1 * M, 2 * M, 3 * M]), report)

    study = run_hpo_curves([[]] * 4, kill_rule(baseline_trial=0, min_tokens=0), train=train, n_trials=3)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert study.trials[1].system_attrs["failed_trial"] == 0  # the retry of the baseline
    assert reason(study, 3)["reference"] == 12.0  # the retried baseline's ppl at 2M tokens


def test_a_kill_rule_without_its_baseline_says_so_on_each_trial() -> None:
    curves = [ppl_rows([20.0, 19.0], [1 * M, 2 * M])] * 2
    study = run_hpo_curves(curves, kill_rule(baseline_trial=7, min_tokens=0))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert [t.user_attrs["kill_rule_note"] for t in study.trials] == [
        "not judged by the kill rule: its baseline trial 7 has not run yet"] * 2
