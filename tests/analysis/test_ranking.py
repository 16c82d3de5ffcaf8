"""One ranking everywhere: a missed target never ranks above a trial that reached it."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from hpo.analysis.pareto import pareto_front
from hpo.analysis.ranking import rank, unranked

X = FloatDistribution(0.0, 1.0)


def _trials(rows: list[tuple[Any, dict[str, Any]]], state: TrialState = TrialState.COMPLETE) -> list[Any]:
    return [optuna.create_trial(state=state, values=None if v is None else (v if isinstance(v, list) else [v]),
                                params={"x": i / 10}, distributions={"x": X}, user_attrs=attrs)
            for i, (v, attrs) in enumerate(rows)]


def _numbered(trials: list[Any]) -> list[Any]:
    for i, t in enumerate(trials):
        t.number = i
    return trials


def test_single_objective_respects_the_direction() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trials(_trials([(1.0, {}), (3.0, {}), (2.0, {})]))
    assert [t.number for t in rank(study.trials, study.directions)[0]] == [1, 2, 0]
    assert [t.number for t in pareto_front(study.trials, study.directions)] == [1]


def test_a_censored_trial_never_ranks_above_one_that_reached_the_target() -> None:
    # Trial 1 missed the target but has the smallest value (e.g. a miss censored by an older rule);
    # trial 3 reached it slowly. Missed trials come after every trial that reached it.
    trials = _numbered(_trials([(30.0, {"reached_target": True}), (5.0, {"reached_target": False}),
                                (10.0, {"reached_target": True}), (70.0, {"reached_target": True}),
                                (90.0, {"reached_target": False})]))
    order, fronts = rank(trials, ["minimize"])
    assert [t.number for t in order] == [2, 0, 3, 1, 4]
    assert fronts == {2: 1, 0: 1, 3: 1, 1: 2, 4: 2}


def test_copies_and_seed_reruns_are_not_ranked_on_their_own() -> None:
    trials = _numbered(_trials([(3.0, {}), (1.0, {"copy_of": 0}), (2.0, {"rerun_of": 0, "seed": 1}), (4.0, {})]))
    order, _ = rank(trials, ["minimize"])
    assert [t.number for t in order] == [0, 3]
    assert [t.number for t in unranked(trials)] == [1, 2]


def test_multi_objective_fronts_are_numbered_through_both_groups() -> None:
    # reached: (1,3) and (3,1) form the front, (2,4) is dominated; missed: (0,0) would dominate all.
    trials = _numbered(_trials([([1.0, 3.0], {"reached_target": True}), ([3.0, 1.0], {"reached_target": True}),
                                ([2.0, 4.0], {"reached_target": True}), ([0.0, 0.0], {"reached_target": False})]))
    order, fronts = rank(trials, ["minimize", "minimize"])
    assert {t.number for t in order[:2]} == {0, 1} and [t.number for t in order[2:]] == [2, 3]
    assert fronts == {0: 1, 1: 1, 2: 2, 3: 3}
    assert [t.number for t in pareto_front(trials, ["minimize", "minimize"])] == [0, 1]


def test_a_config_rerun_over_seeds_ranks_by_its_median_everywhere() -> None:
    """After `hpo rerun`, best/narrow/finalists and the report's configs over seeds agree: a
    lucky first seed (1.0, then 3.0 and 3.1) no longer outranks a steady config (1.2, 1.2, 1.25)."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from hpo.analysis.ranking import rank
    from hpo.analysis.report import configs_over_seeds
    from hpo.run.finalists import finalists

    dist = {"lr": FloatDistribution(0, 1)}
    trials = [create_trial(value=v, params={"lr": lr}, distributions=dist, user_attrs=attrs)
              for v, lr, attrs in [(1.0, 0.1, {}), (1.2, 0.2, {}), (3.0, 0.1, {"rerun_of": 0, "seed": 1}),
                                   (3.1, 0.1, {"rerun_of": 0, "seed": 2}), (1.2, 0.2, {"rerun_of": 1, "seed": 1}),
                                   (1.25, 0.2, {"rerun_of": 1, "seed": 2})]]
    for number, t in enumerate(trials):
        t.number = number
    order, _ = rank(trials, ["minimize"])
    assert [t.number for t in order] == [1, 0]
    assert [t.number for t in finalists(trials, ["minimize"], 1)] == [1]
    assert [r["config_of"] for r in configs_over_seeds(trials, 0, "minimize")] == [1, 0]
    lone = trials[:2]  # before the re-runs: each trial by its own value
    assert [t.number for t in rank(lone, ["minimize"])[0]] == [0, 1]
