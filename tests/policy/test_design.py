"""The Stage-2 design: levels per parameter, size near --runs, every level covered evenly."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from hpo.policy.design import build_design, one_factor, param_levels
from hpo.specs.models import CategoricalParam, FloatParam, IntParam

LR = FloatParam(type="float", low=0.008, high=0.013, log=True)
MOM = FloatParam(type="float", low=0.93, high=0.97)
LAZY = IntParam(type="int", low=8, high=12)
BATCH = IntParam(type="int", low=48, high=80, step=8)
DROP = FloatParam(type="float", low=0.0, high=0.5, step=0.1)
VR = CategoricalParam(type="categorical", choices=[True, False])
# The seed's Stage-2 example: lr, momentum, lazy_freq and batch size (a 750-point full grid there).
SEED_SPACE = {"lr": LR, "momentum": MOM, "lazy_freq": LAZY, "batch_size": BATCH}


def counts(points: list[dict[str, Any]], name: str) -> Counter:
    return Counter(p[name] for p in points)


def assert_balanced(design: Any) -> None:
    """Every level of every factor is used, the rarest at least half as often as the commonest."""
    for name, levels in design.levels.items():
        seen = counts(design.points, name)
        assert set(seen) == set(levels), name
        assert min(seen.values()) >= max(seen.values()) / 2, (name, seen)


def test_levels_log_int_step_and_categorical() -> None:
    assert param_levels(FloatParam(type="float", low=1e-4, high=1e-1, log=True), 4) == [1e-4, 1e-3, 1e-2, 1e-1]
    assert param_levels(MOM, 5) == [0.93, 0.94, 0.95, 0.96, 0.97]
    assert param_levels(LAZY, 6) == [8, 9, 10, 11, 12]  # 6 asked, rounded and deduplicated
    assert param_levels(BATCH, 3) == [48, 64, 80]
    assert param_levels(BATCH, 6) == [48, 56, 64, 72, 80]  # on the step grid
    assert param_levels(DROP, 4) == [0.0, 0.2, 0.3, 0.5]
    assert param_levels(IntParam(type="int", low=1, high=1000, log=True), 4) == [1, 10, 100, 1000]
    assert param_levels(VR, 5) == [True, False]


@pytest.mark.parametrize("runs", [20, 36, 60])
def test_seed_example_has_about_runs_points_balanced(runs: int) -> None:
    design = build_design(SEED_SPACE, runs)
    assert abs(len(design.points) - runs) <= 0.25 * runs
    assert "gsd" in design.method
    assert len(design.points) < design.full_size
    assert_balanced(design)
    assert len({tuple(sorted(p.items())) for p in design.points}) == len(design.points)  # no duplicates


def test_mixed_space_with_categoricals_is_balanced_and_in_bounds() -> None:
    design = build_design({"lr": LR, "drop": DROP, "vr": VR, "batch_size": BATCH}, 24)
    assert abs(len(design.points) - 24) <= 6
    assert_balanced(design)
    for p in design.points:
        assert LR.low <= p["lr"] <= LR.high and p["batch_size"] % 8 == 0 and p["vr"] in (True, False)
        assert round(p["drop"] * 10, 9) == int(round(p["drop"] * 10))


def test_points_leave_out_what_their_own_values_switch_off() -> None:
    # the full factorial of opt x lr (2 x 6) has 6 adamw points that differ only in lr: one is left
    opt = CategoricalParam(type="categorical", choices=["muon", "adamw"])
    lr = LR.model_copy(update={"when": {"opt": ["muon"]}})
    design = build_design({"opt": opt, "lr": lr}, 36)
    assert sorted(p["opt"] for p in design.points) == ["adamw"] + ["muon"] * 6
    assert all(("lr" in p) == (p["opt"] == "muon") for p in design.points)


def test_small_spaces_take_the_full_factorial() -> None:
    design = build_design({"lr": LR, "momentum": MOM}, 36)
    assert design.method == "full factorial" and len(design.points) == 36  # 6 x 6
    one = build_design({"lazy_freq": LAZY}, 36)
    assert sorted(p["lazy_freq"] for p in one.points) == [8, 9, 10, 11, 12]


def test_many_factors_fall_back_to_a_latin_hypercube_of_exactly_runs() -> None:
    space = {f"x{i}": FloatParam(type="float", low=1.0, high=2.0) for i in range(7)} | {"vr": VR}
    design = build_design(space, 36)
    assert "Latin hypercube" in design.method and len(design.points) == 36
    for name in space:
        seen = counts(design.points, name)
        assert len(seen) == len(design.levels[name]) and max(seen.values()) - min(seen.values()) <= 1


def test_deterministic_and_empty_cases() -> None:
    assert build_design(SEED_SPACE, 36).points == build_design(SEED_SPACE, 36).points
    assert build_design({}, 36).points == []
    fixed = build_design(SEED_SPACE, 36, levels=3)
    assert all(len(v) == 3 for v in fixed.levels.values())


def test_one_factor_moves_one_parameter_at_a_time_around_the_baseline() -> None:
    # seed 003's groups A-F: the baseline, then each factor alone over its levels
    opt = CategoricalParam(type="categorical", choices=["muon", "adamw"])
    lr = FloatParam(type="float", low=1e-3, high=1e-1, log=True, when={"opt": ["muon"]})
    space = {"opt": opt, "lr": lr, "batch_size": IntParam(type="int", low=8, high=32, step=8), "momentum": MOM}
    base = {"opt": "muon", "lr": 0.01, "batch_size": 16}  # momentum left to the sampler
    points = one_factor(space, base, 3)
    assert points[0] == base
    assert points[1:] == [
        {"opt": "adamw", "batch_size": 16},  # adamw switches lr off (its when)
        {"opt": "muon", "lr": 0.001, "batch_size": 16},
        {"opt": "muon", "lr": 0.1, "batch_size": 16},  # 0.01 is the baseline's own level
        {"opt": "muon", "lr": 0.01, "batch_size": 8},  # 3 levels on the step grid: 8, 24, 32
        {"opt": "muon", "lr": 0.01, "batch_size": 24},
        {"opt": "muon", "lr": 0.01, "batch_size": 32},
    ]
    assert all("momentum" not in p for p in points)
