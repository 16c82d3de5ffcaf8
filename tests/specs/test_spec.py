"""Spec validation: every mistake is one line naming file, field and fix; exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import run_hpo
from hpo.cli import main
from hpo.errors import SpecError
from hpo.run.session import load_spec

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
    # issue 17: each of these was accepted silently, failed after trials, or ended in a traceback
    ("study: t\nobjective: objectives.synthetic:train\nmetrics: {val_loss: minimize, val_loss: maximize}\n",
     "line 3: not valid YAML: key 'val_loss' is given twice (first on line 3) (fix: keep one)"),
    (_variant(space__width={"type": "int", "low": 0, "high": 5, "step": 10}),
     "space.width: step 10 is larger than the range 0..5"),
    (_variant(space__width={"type": "int", "low": 16, "high": 130, "step": 16}),
     "space.width: high 130 is not low 16 plus a multiple of step 16 (fix: high: 128"),
    (_variant(space__act__when={"act": "relu"}), "space.act.when: names act itself"),
    (_variant(space__act__choices=["relu", "relu"]), "space.act.choices: 'relu' is listed twice"),
    (_variant(space__act__choices=[1.0, float("nan")]), "space.act.choices.1: nan is not a finite number"),
    (_variant(pruners=[{"name": "kill_rule", "options": {"threshold": "high"}}]),
     "pruners[0].options.threshold: 'high' is not a number (fix: give a number)"),
    (_variant(pruners=[{"name": "hyperband", "options": {"min_resource": -3}}]),
     "pruners[0].options.min_resource: -3 is negative (fix: give a number >= 0)"),
    (_variant(sampler={"name": "cmaes", "options": {"sigma0": -1}}), "sampler.options.sigma0: -1 is negative"),
    (_variant(sampler={"name": "tpe", "options": {"n_startup_trials": "ten"}}),
     "sampler.options.n_startup_trials: 'ten' is not an integer"),
    (_variant(pruners=[{"name": "patient", "options": {"patience": 2, "wrapped": {"name": "nosuch"}}}]),
     "pruners[0].options.wrapped: {'name': 'nosuch'} is not a pruner"),
    (_variant(pruners=[{"name": "patient", "options": {"wrapped": {"name": "median", "options": {"x": 1}}}}]),
     "pruners[0].options.wrapped.options.x: unknown option"),
    (_variant(trial_budget_seconds=float("inf")), "trial_budget_seconds: inf is not a finite number"),
    (_variant(objective="os:system"), "objective: 'os:system' is in Python's standard library"),
    (_variant(objective="builtins:eval"), "objective: 'builtins:eval' is in Python's standard library"),
    (_variant(space__lr__step=0.001), "space.lr: log and step cannot be combined for a float"),
    (_variant(space__lr={"low": 0.1, "high": 0.2}), "space.lr: type is missing (fix: add type: float, int or "
                                                    "categorical)"),
    (_variant(n_trials="ten"), "n_trials: 'ten' is not an integer (fix:"),
    ("study: t\nfixed: {a: " + "[" * 20000 + "]" * 20000 + "}\n", "line 2: nested more than 50 levels deep"),
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


def test_alias_bomb_is_refused_before_anything_is_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    text = "study: t\nobjective: objectives.synthetic:train\nmetrics: {val_loss: minimize}\nfixed:\n  a: &a [x,x,x,x,x,x,x,x,x]\n"
    for prev, name in zip("abcdefg", "bcdefgh"):
        text += f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    assert len(text) < 600
    monkeypatch.chdir(tmp_path)
    assert main(["optimize", "--spec", str(_write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fixed: expands to 54,481,005 values through YAML aliases (limit 100,000)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


@pytest.mark.parametrize(("data", "expected"), [
    ("study: t\n".encode("utf-16"), "(file): is UTF-16 text (fix: save it as UTF-8)"),
    ("study: t\n# caf\xe9\n".encode("latin-1"), "line 2: byte 0xe9 is not UTF-8 text"),
])
def test_files_that_are_not_utf8(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    with pytest.raises(SpecError, match=re.escape(expected)):
        load_spec(path)


def test_the_objective_signature_is_checked_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "one_arg.py").write_text("def train(config):\n    return {}\n\nnot_a_function = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SpecError, match=re.escape("objective: train(config) does not accept (config, report) "
                                                  "(fix: def train(config, report): ...)")):
        load_spec(_write(tmp_path, _variant(objective="one_arg:train")))
    with pytest.raises(SpecError, match="has no function 'not_a_function'"):
        load_spec(_write(tmp_path, _variant(objective="one_arg:not_a_function")))


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
