"""W&B sweep files: translated field by field, run as they are, written out by `hpo import wandb`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from hpo.cli import main
from hpo.errors import SpecError
from hpo.specs.models import dump_spec
from hpo.run.session import load_spec
from hpo.specs.wandb_sweep import translate

SWEEP = {
    "program": "train.py",
    "method": "bayes",
    "name": "pathstar",
    "project": "pathstar_sweep",
    "metric": {"name": "val/loss", "goal": "minimize"},
    "parameters": {
        "graph_d": {"values": [10, 20, 30]},
        "n_layer": {"min": 2, "max": 6},
        "dropout": {"min": 0.0, "max": 0.3},
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
        "min_lr": {"distribution": "log_uniform", "min": -9.0, "max": -7.0},
        "weight_decay": {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 0.1},
        "batch_size": {"distribution": "q_uniform", "min": 16, "max": 70, "q": 16},
        "warmup_frac": {"distribution": "q_uniform", "min": 0.0, "max": 0.25, "q": 0.1},
        "n_head": {"distribution": "q_log_uniform_values", "min": 2, "max": 16},
        "label_smoothing": {"distribution": "normal", "mu": 0.1, "sigma": 0.02},
        "bias": {"value": False},
        "seed": {"distribution": "constant", "value": 7},
        "optimizer": {"parameters": {"momentum": {"values": [0.9, 0.95]}}},
    },
    "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 2},
    "run_cap": 40,
}


def _write(tmp_path: Path, data: dict, name: str = "sweep_config.yaml") -> Path:
    (tmp_path / "train.py").write_text("import wandb\n")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_every_field_translates(tmp_path: Path) -> None:
    t = translate(SWEEP, tmp_path / "sweep_config.yaml", here=tmp_path)
    spec = t.spec
    assert spec["study"] == "pathstar" and spec["n_trials"] == 40 and spec["sampler"] == {"name": "tpe"}
    assert spec["metrics"] == {"val/loss": "minimize"} and spec["curve"]["metric"] == "val/loss"
    assert spec["objective"] == {"command": ["${interpreter}", "train.py", "${args}"], "args": "--{name}={value}",
                                 "cwd": str(tmp_path.resolve()), "steps": "counted"}
    assert spec["pruners"] == [{"name": "successive_halving", "options": {"min_resource": 3, "reduction_factor": 2}}]
    assert spec["fixed"] == {"bias": False, "seed": 7}
    space = spec["space"]
    assert space["graph_d"] == {"type": "categorical", "choices": [10, 20, 30]}
    assert space["n_layer"] == {"type": "int", "low": 2, "high": 6}
    assert space["dropout"] == {"type": "float", "low": 0.0, "high": 0.3}
    assert space["learning_rate"] == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    assert space["min_lr"]["low"] == pytest.approx(math.exp(-9)) and space["min_lr"]["log"]
    assert space["weight_decay"] == {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    assert space["batch_size"] == {"type": "int", "low": 16, "high": 64, "step": 16}
    assert space["warmup_frac"] == {"type": "float", "low": 0.0, "high": pytest.approx(0.2), "step": 0.1}
    assert space["n_head"] == {"type": "int", "low": 2, "high": 16, "log": True}
    assert space["label_smoothing"] == {"type": "float", "low": pytest.approx(0.04), "high": pytest.approx(0.16)}
    assert space["optimizer.momentum"] == {"type": "categorical", "choices": [0.9, 0.95]}
    assert t.approximate == ["space.label_smoothing"] and "APPROXIMATE" in t.notes["space.label_smoothing"]


UNTRANSLATABLE = [
    ({"controller": {"type": "local"}}, "controller: not a W&B sweep field hpo can translate"),
    ({"metric": {"name": "val_loss", "target": 2.0}}, "metric.target: W&B stops the whole sweep there"),
    ({"parameters": {"lr": {"values": [1, 2], "probabilities": [0.5, 0.5]}}}, "parameters.lr.probabilities: "),
    ({"parameters": {"lr": {"distribution": "q_log_uniform_values", "min": 0.1, "max": 1.0, "q": 0.1}}},
     "parameters.lr.distribution: q_log_uniform_values: Optuna has no quantized log scale for floats"),
    ({"parameters": {"lr": {"distribution": "beta"}}}, "parameters.lr.distribution: 'beta' is not a W&B distribution"),
    ({"early_terminate": {"type": "hyperband", "min_iter": 3, "strict": True}}, "early_terminate.strict: "),
    ({"command": ["${env}", "${interpreter}", "${program}", "${args_no_boolean_flags}"]},
     "command: ${args_no_boolean_flags} has no hpo equivalent"),
    ({"method": "bayesian"}, "method: 'bayesian' is not grid, random or bayes"),
    ({"metric": None}, "metric: missing"),
]


@pytest.mark.parametrize(("change", "expected"), UNTRANSLATABLE, ids=[u[1][:30] for u in UNTRANSLATABLE])
def test_what_cannot_be_translated_is_one_line_naming_the_field(tmp_path: Path, change: dict, expected: str) -> None:
    path = _write(tmp_path, {**SWEEP, **change})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ") and expected in lines[0], lines
    assert "fix:" in lines[0]


def test_a_sweep_file_runs_as_given_and_import_writes_the_same_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, SWEEP)
    direct = load_spec(path)  # today's "required field is missing" for a W&B file is gone
    assert "APPROXIMATE" in capsys.readouterr().err
    assert main(["import", "wandb", str(path), "--out", "specs/pathstar.yaml"]) == 0
    text = (tmp_path / "specs" / "pathstar.yaml").read_text()
    assert "cwd: .." in text and "# parameters.learning_rate: log_uniform_values" in text
    assert "# project: ignored: nothing is sent to W&B" in text
    imported = load_spec(tmp_path / "specs" / "pathstar.yaml")
    assert dump_spec(imported) == dump_spec(direct)
    assert main(["import", "wandb", str(path), "--out", "specs/pathstar.yaml"]) == 1  # no silent overwrite
    assert "--force" in capsys.readouterr().err


def test_import_of_a_file_that_is_not_a_sweep_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, {"study": "x", "objective": "objectives.synthetic:train"})
    assert main(["import", "wandb", str(path)]) == 2
    assert "not a W&B sweep" in capsys.readouterr().err
