"""Narrowing on hand-built studies: locked, narrowed and kept-wide parameters, log, int and
step bounds worked out by hand, multi-objective top-k, and the commented Stage-2 file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo.errors import HpoError
from hpo.policy.narrowing import narrow_study, spec_yaml, write_spec
from hpo.analysis.study_info import SPEC_ATTR
from hpo.specs.space import distributions
from hpo.specs.models import parse_spec
from hpo.run.session import load_spec

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "mom": {"type": "float", "low": 0.0, "high": 10.0},
    "drop": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.1},
    "width": {"type": "int", "low": 16, "high": 256, "step": 16},
    "heads": {"type": "int", "low": 1, "high": 1024, "log": True},
    "seed": {"type": "int", "low": 0, "high": 100},
    "orthog": {"type": "categorical", "choices": ["newton_schulz", "polar_express"]},
    "vr": {"type": "categorical", "choices": [True, False]},
    "opt": {"type": "categorical", "choices": ["a", "b", "c"]},
    "act": {"type": "categorical", "choices": ["relu", "gelu"]},
}
SPEC = {"study": "s1", "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
        "fixed": {"steps": 5}, "space": SPACE, "n_trials": 30}
# The top 5 (values 1..5) and two worse trials that must not matter.
TOP = [
    dict(lr=1e-3, mom=4.0, drop=0.3, width=64, heads=10, seed=0, orthog="newton_schulz", vr=True, opt="a", act="relu"),
    dict(lr=1e-2, mom=6.0, drop=0.5, width=112, heads=100, seed=100, orthog="newton_schulz", vr=True, opt="b",
         act="gelu"),
    dict(lr=3e-3, mom=5.0, drop=0.4, width=80, heads=48, seed=50, orthog="newton_schulz", vr=True, opt="a", act="relu"),
    dict(lr=2e-3, mom=5.0, drop=0.4, width=96, heads=40, seed=10, orthog="newton_schulz", vr=True, opt="b", act="gelu"),
    dict(lr=5e-3, mom=4.5, drop=0.3, width=64, heads=33, seed=90, orthog="newton_schulz", vr=True, opt="a", act="relu"),
]
WORSE = [dict(TOP[0], orthog="polar_express", vr=False, opt="c", lr=1e-4, width=256),
         dict(TOP[1], orthog="polar_express", vr=False, opt="c", mom=10.0, drop=1.0)]


def study_with(params: list[dict[str, Any]], values: list[Any], spec: dict[str, Any] = SPEC) -> optuna.Study:
    parsed = parse_spec(spec, "test")
    study = optuna.create_study(study_name=parsed.study, directions=parsed.directions)
    study.set_user_attr(SPEC_ATTR, spec)
    study.set_metric_names(list(parsed.metrics))
    for p, v in zip(params, values):
        study.add_trial(optuna.create_trial(params=p, distributions=distributions(parsed, p),
                                            values=v if isinstance(v, list) else [v]))
    return study


@pytest.fixture(scope="module")
def narrowed():
    # Trials are added worst-first, so the order of the top 5 comes from the values only.
    return narrow_study(study_with(WORSE + TOP[::-1], [9.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0]), top=5)


def test_top_trials_and_parent(narrowed) -> None:
    spec = narrowed.spec
    assert narrowed.trials == [6, 5, 4, 3, 2]
    assert spec.study == "s1_stage2"
    assert spec.parent == {"study": "s1", "trials": [6, 5, 4, 3, 2]}
    assert spec.objective == "objectives.synthetic:train" and spec.n_trials == 30


def test_agreeing_categoricals_and_bools_are_locked(narrowed) -> None:
    assert narrowed.spec.fixed == {"steps": 5, "orthog": "newton_schulz", "vr": True}
    actions = {d.name: d.action for d in narrowed.decisions}
    assert actions["orthog"] == actions["vr"] == "locked"


def test_categoricals_narrow_to_the_used_choices_or_stay_wide(narrowed) -> None:
    space = narrowed.spec.space
    assert space["opt"].choices == ["a", "b"]
    assert space["act"].choices == ["relu", "gelu"]


def test_numeric_ranges_by_hand(narrowed) -> None:
    space = narrowed.spec.space
    # mom: top 4..6, span 2, ±0.5 → 3.5..6.5
    assert (space["mom"].low, space["mom"].high) == (3.5, 6.5)
    # lr (log): top 1e-3..1e-2, ±0.25 decades → 10^-3.25..10^-1.75, rounded outward to 3 digits
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (0.000562, 0.0178, True)
    # drop (step 0.1): 0.3..0.5 ±0.05 → 0.25..0.55 → snapped outward to the grid 0.2..0.6
    assert (space["drop"].low, space["drop"].high, space["drop"].step) == (0.2, 0.6, 0.1)
    # width (int, step 16 from 16): 64..112 ±12 → 52..124 → 48..128
    assert (space["width"].low, space["width"].high, space["width"].step) == (48, 128, 16)
    # heads (int, log): 10..100, ±0.25 decades → 5.62..177.8 → 5..178
    assert (space["heads"].low, space["heads"].high, space["heads"].log) == (5, 178, True)


def test_a_wide_top_k_span_keeps_the_stage1_range(narrowed) -> None:
    assert (narrowed.spec.space["seed"].low, narrowed.spec.space["seed"].high) == (0, 100)
    why = {d.name: d.why for d in narrowed.decisions}
    assert why["seed"].startswith("kept wide: top 5 0..100 span 100%")


def test_agreeing_numbers_keep_a_minimum_width_and_clip_to_the_bounds() -> None:
    same = [dict(TOP[0], mom=5.0, drop=0.0, width=16) for _ in range(3)]
    n = narrow_study(study_with(same, [1.0, 2.0, 3.0]), top=3)
    space = n.spec.space
    assert (space["mom"].low, space["mom"].high) == (4.5, 5.5)  # 5% of the range each side
    assert (space["drop"].low, space["drop"].high) == (0.0, 0.1)  # clipped at 0, one step up
    assert (space["width"].low, space["width"].high) == (16, 32)
    assert "opt" not in space and n.spec.fixed["opt"] == "a"  # one value → locked


def test_stage_1_enqueued_configs_do_not_carry_into_stage_2() -> None:
    # the baseline's orthog is polar_express, which stage 2 locks to newton_schulz
    # (nor its one-factor neighbours, which Stage 1 ran already)
    spec = {**SPEC, "enqueue": [dict(TOP[0], orthog="polar_express")], "one_factor_levels": 3}
    n = narrow_study(study_with(TOP, [1.0, 2.0, 3.0, 4.0, 5.0], spec), top=5)
    assert n.spec.fixed["orthog"] == "newton_schulz" and n.spec.enqueue == []
    assert n.spec.one_factor_levels is None


def test_multi_objective_top_k_is_the_front() -> None:
    spec = {**SPEC, "metrics": {"val_loss": "minimize", "train_seconds": "minimize"}}
    values = [[1.0, 9.0], [9.0, 1.0], [5.0, 5.0], [6.0, 6.0], [9.5, 9.5]]  # 0,1,2 non-dominated
    params = [dict(TOP[i], orthog="polar_express" if i >= 3 else "newton_schulz") for i in range(5)]
    n = narrow_study(study_with(params, values, spec), top=3)
    assert sorted(n.trials) == [0, 1, 2]
    assert n.spec.fixed["orthog"] == "newton_schulz"
    assert list(n.spec.metrics) == ["val_loss", "train_seconds"]


def test_the_file_has_a_comment_per_parameter_and_round_trips(narrowed, tmp_path: Path) -> None:
    path = write_spec(narrowed, tmp_path / "search_spaces" / "s1_stage2.yaml")
    assert load_spec(path) == narrowed.spec
    text = spec_yaml(narrowed)
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if line.startswith("  ")}
    assert "# locked: all 5 top trials chose 'newton_schulz'" in lines["orthog"]
    assert "# locked: all 5 top trials chose True" in lines["vr"]
    assert "# narrowed from 0.0001..0.1: top 5 0.001..0.01 widened by 25% of their span in log space" in lines["lr"]
    assert "snapped to step 16" in lines["width"]
    assert "# narrowed: the top 5 used only 'a', 'b' (dropped 'c')" in lines["opt"]
    assert "# kept wide" in lines["seed"] and "# kept wide" in lines["act"]
    assert "steps" in lines and "#" not in lines["steps"]  # Stage-1 fixed values carry no comment


def test_too_few_complete_trials_or_no_spec_is_one_clear_error() -> None:
    with pytest.raises(HpoError, match="has 1 COMPLETE trial.*at least 2"):
        narrow_study(study_with(TOP[:1], [1.0]))
    with pytest.raises(HpoError, match="no hpo spec stored"):
        narrow_study(optuna.create_study())


# --- conditional parameters (when) ------------------------------------------------------------

WHEN_SPACE = {
    "opt": {"type": "categorical", "choices": ["muon", "adamw"]},
    "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "when": {"opt": "muon"}},
    "vr": {"type": "categorical", "choices": [True, False], "when": {"opt": "muon"}},
    "batch": {"type": "int", "low": 8, "high": 32, "step": 8},
}
WHEN_SPEC = {**SPEC, "space": WHEN_SPACE}


def muon(lr: float, vr: bool, batch: int) -> dict[str, Any]:
    return {"opt": "muon", "lr": lr, "vr": vr, "batch": batch}


def adamw(batch: int) -> dict[str, Any]:
    return {"opt": "adamw", "batch": batch}


def narrowed_when(params: list[dict[str, Any]]) -> Any:
    return narrow_study(study_with(params, list(range(1, len(params) + 1)), WHEN_SPEC))


def test_a_condition_on_a_locked_choice_that_holds_goes_away() -> None:
    n = narrowed_when([muon(0.01, True, 8), muon(0.02, True, 16), muon(0.01, True, 8), muon(0.01, True, 16),
                       muon(0.02, True, 8)])
    assert n.spec.fixed["opt"] == "muon" and n.spec.fixed["vr"] is True
    assert n.spec.space["lr"].when is None  # every Stage-2 config is muon


def test_parameters_of_a_locked_away_choice_are_dropped() -> None:
    n = narrowed_when([adamw(8), adamw(16), adamw(8), adamw(16), adamw(8)])
    assert n.spec.fixed["opt"] == "adamw"
    assert set(n.spec.space) == {"batch"} and "lr" not in n.spec.fixed and "vr" not in n.spec.fixed
    assert {d.name: d.action for d in n.decisions}["lr"] == "dropped"
    assert "# lr: dropped: searched only when opt is one of ['muon'], locked to 'adamw'" in spec_yaml(n)


def test_a_locked_conditional_parameter_stays_under_space_with_its_condition(tmp_path: Path) -> None:
    # opt stays wide; the 3 muon trials agree on vr: locked, but adamw configs must not get it.
    n = narrowed_when([muon(0.01, True, 8), adamw(16), muon(0.02, True, 8), adamw(8), muon(0.01, True, 16)])
    assert "vr" not in n.spec.fixed
    assert n.spec.space["vr"].choices == [True] and n.spec.space["vr"].when == {"opt": ["muon"]}
    assert n.spec.space["lr"].when == {"opt": ["muon"]}
    assert load_spec(write_spec(n, tmp_path / "s2.yaml"), check_objective=False) == n.spec
