"""Grids (seed 000's JSON parameter lists) and named experiments (seeds 001 and 004) in specs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from hpo.errors import SpecError
from hpo.analysis.report import build_report
from hpo.run.loop import optimize
from hpo.specs.models import CategoricalParam, dump_spec, parse_spec
from hpo.run.session import load_spec

BASE = {"study": "g", "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
        "fixed": {"steps": 3}}


def test_a_json_grid_is_categorical_parameters_on_the_grid_sampler(tmp_path: Path) -> None:
    path = tmp_path / "architecture_sweep.json"
    path.write_text(json.dumps({**BASE, "grid": {"width": [32, 64], "lr": [0.01, 0.05]}}))
    spec = load_spec(path)
    assert spec.sampler.name == "grid" and spec.n_trials == 4
    assert spec.space["lr"] == CategoricalParam(type="categorical", choices=[0.01, 0.05])
    assert "grid" not in dump_spec(spec) and dump_spec(parse_spec(dump_spec(spec), "again")) == dump_spec(spec)
    study = optimize(spec, f"sqlite:///{tmp_path / 'db'}", out=open(os.devnull, "w"))
    assert sorted((t.params["width"], t.params["lr"]) for t in study.trials) == [
        (w, lr) for w in (32, 64) for lr in (0.01, 0.05)]


@pytest.mark.parametrize(("change", "expected"), [
    ({"grid": {"lr": []}}, "grid.lr: is empty (fix: give at least 1)"),
    ({"grid": {"lr": [0.1]}, "sampler": {"name": "tpe"}}, "grid: needs the grid sampler, sampler is tpe"),
    ({"grid": {"lr": [0.1]}, "space": {"lr": {"type": "float", "low": 0.1, "high": 1.0}}},
     "grid.lr: also under space"),
    ({"space": {"lr": {"type": "float", "low": 0.1, "high": 1.0}}, "enqueue": [{"a": {"lr": 0.2}}, {"a": {"lr": 0.3}}]},
     "enqueue[1]: the name 'a' is used twice"),
])
def test_bad_grids_and_names_are_one_line(change: dict, expected: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, **change}, "s.yaml")
    assert str(err.value).startswith("s.yaml: ") and expected in str(err.value) and "\n" not in str(err.value)


def test_named_experiments_run_first_and_the_report_names_them(tmp_path: Path) -> None:
    text = """
study: named
objective: objectives.synthetic:train
metrics: {val_loss: minimize}
n_trials: 4
fixed: {steps: 3}
space:
  lr: {type: float, low: 0.001, high: 0.1, log: true}
  width: {type: int, low: 16, high: 64, step: 16}
enqueue:
  reference: &ref {lr: 0.01, width: 32}
  lr_high: {<<: *ref, lr: 0.05}
  wide: {<<: *ref, width: 64}
"""
    path = tmp_path / "named.yaml"
    path.write_text(text)
    spec = load_spec(path)
    assert spec.enqueue == [{"lr": 0.01, "width": 32}, {"lr": 0.05, "width": 32}, {"lr": 0.01, "width": 64}]
    assert parse_spec(yaml.safe_load(yaml.safe_dump(dump_spec(spec))), "again").experiment_name(
        {"width": 64, "lr": 0.01}) == "wide"  # the names survive the spec stored with the study
    study = optimize(spec, f"sqlite:///{tmp_path / 'db'}", out=open(os.devnull, "w"))
    assert [t.user_attrs.get("experiment") for t in study.trials] == ["reference", "lr_high", "wide", None]
    rows = build_report(study).trials
    assert {r["number"]: r.get("experiment") for r in rows} == {0: "reference", 1: "lr_high", 2: "wide", 3: None}
