"""Spec validation: every mistake is one line naming file, field and fix; exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import run_hpo
from hpo.errors import SpecError
from hpo.spec import load_spec

GOOD = {
    "study": "toy",
    "objective": "objectives.synthetic:train",
    "metrics": {"val_loss": "minimize"},
    "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
              "width": {"type": "int", "low": 16, "high": 128, "step": 16},
              "act": {"type": "categorical", "choices": ["relu", "gelu"]}},
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


def test_good_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, GOOD))
    assert spec.directions == ["minimize"] and not spec.multi_objective
    assert list(spec.space) == ["lr", "width", "act"]


def _variant(**changes: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD, sort_keys=False))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = data
        for key in path:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return data


BAD = [
    (_variant(colour="red"), "colour: unknown key"),
    (_variant(space__lr__low=0.5), "space.lr: low (0.5) > high (0.1) (fix: swap them)"),
    (_variant(space__lr__low=0.0), "space.lr: log: true needs low > 0"),
    (_variant(space__act__choices=[]), "space.act.choices: choices is empty"),
    (_variant(sampler={"name": "bayes"}), "sampler: unknown sampler 'bayes'"),
    (_variant(pruners=[{"name": "asha"}]), "pruners: unknown pruner 'asha'"),
    (_variant(objective="objectives.nothere:train"), "objective: cannot import module 'objectives.nothere'"),
    (_variant(objective="objectives.synthetic:nope"), "objective: module 'objectives.synthetic' has no function 'nope'"),
    (_variant(metrics={"val_loss": "minimise"}), "metrics.val_loss"),
    (_variant(space__width__tpye="int"), "space.width.tpye: unknown key"),
    (_variant(study=None), "study: required field is missing"),
    (_variant(metrics={"time_to_target": "minimize"}), "needs a target"),
    ("study: [unclosed", "not valid YAML"),
    (_variant(enqueue=[{"depth": 3}]), "enqueue[0].depth: not a searched parameter"),
    (_variant(enqueue=[{}, {"lr": 5.0}]), "enqueue[1].lr: 5.0 is outside"),
    (_variant(enqueue=[{"lr": "1e-3"}]), "enqueue[0].lr: '1e-3' is not a number"),
    (_variant(enqueue=[{"act": "tanh"}]), "enqueue[0].act: 'tanh' is not one of ['relu', 'gelu']"),
    (_variant(enqueue=[{"width": 32.0}]), "enqueue[0].width: 32.0 is not an integer"),
    (_variant(one_factor_levels=4), "one_factor_levels varies the baseline enqueue[0], and enqueue is empty"),
    (_variant(enqueue=[{"lr": 0.01}], one_factor_levels=1), "one_factor_levels"),
    (_variant(space={"act": GOOD["space"]["act"], "lr": {**GOOD["space"]["lr"], "when": {"act": "tanh"}}}),
     "space.lr.when.act: ['tanh'] not among its choices ['relu', 'gelu']"),
    (_variant(space={"act": GOOD["space"]["act"], "lr": {**GOOD["space"]["lr"], "when": {"act": "relu"}}},
              enqueue=[{"act": "gelu", "lr": 0.01}]), "enqueue[0].lr: not searched when act is 'gelu'"),
    (_variant(space__act__when={"width": 16}), "space.act.when: 'width' is not a categorical parameter listed "
                                               "before act"),
    (_variant(space__lr__when={"act": "relu"}), "space.lr.when: 'act' is not a categorical parameter listed "
                                                "before lr"),
]


@pytest.mark.parametrize(("data", "expected"), BAD, ids=[b[1][:30] for b in BAD])
def test_bad_spec_is_one_line(tmp_path: Path, data: object, expected: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    assert expected in message
    assert "\n" not in message


def test_cli_bad_spec_exits_2_without_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, _variant(space__lr__low=0.5))
    proc = run_hpo("optimize", "--spec", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "space.lr" in lines[0] and "fix:" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "studies.db").exists(), "a bad spec must not create a study"


def test_cli_missing_study_file(tmp_path: Path) -> None:
    proc = run_hpo("optimize", "--study", "nosuch", cwd=tmp_path)
    assert proc.returncode == 2
    assert "search_spaces/nosuch.yaml: file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_pruner_options_are_a_spec_error(tmp_path: Path) -> None:
    path = _write(tmp_path, _variant(pruners=[{"name": "median", "options": {"n_startup": 3}}]))
    proc = run_hpo("optimize", "--spec", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "pruners" in proc.stderr and "n_startup" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_locating_the_objective_finds_a_missing_module_without_importing_it(tmp_path: Path) -> None:
    import sys

    sys.modules.pop("objectives.synthetic", None)
    load_spec(_write(tmp_path, GOOD), import_objective=False)
    assert "objectives.synthetic" not in sys.modules  # a parent of workers must not import torch
    with pytest.raises(SpecError, match=r"cannot find module 'objectives\.nothere'") as err:
        load_spec(_write(tmp_path, _variant(objective="objectives.nothere:train")), import_objective=False)
    assert "\n" not in str(err.value)
