"""``hpo best --export``: config, metrics and checkpoint of the best trial, against known trials."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from made_studies import KNOWN_SPEC, add_best_with_checkpoint, known_mo_study, known_study, run_synthetic

from hpo.cli import main
from hpo.errors import HpoError
from hpo.analysis.export import export_trial, pick_trial
from hpo.specs.models import parse_spec


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def test_export_writes_config_metrics_and_checkpoint(url: str, tmp_path: Path) -> None:
    study = known_study(url)
    data = add_best_with_checkpoint(study, tmp_path / "artifacts", tmp_path)
    best = pick_trial(study)
    assert best.number == 5
    written = export_trial(study, best, tmp_path / "best", tmp_path / "artifacts")
    config = yaml.safe_load(written["config"].read_text())
    assert config == {"steps": 30, "seq_len": 64, "lr": best.params["lr"], "width": best.params["width"]}
    assert "trial 5 of study known (COMPLETE: val_loss=2)" in written["config"].read_text()
    # The config is a valid fixed: section of the study's spec once the searched params leave space.
    parse_spec({**KNOWN_SPEC, "fixed": config, "space": {}}, "exported")
    meta = json.loads(written["metrics"].read_text())
    assert meta["trial"] == 5 and meta["values"] == {"val_loss": 2.0} and meta["state"] == "COMPLETE"
    assert meta["metrics"] == {"train_seconds": 12.0} and meta["params"] == best.params
    assert meta["checkpoint"]["step"] == 30 and meta["checkpoint_file"] == "ckpt_step30.pt"
    assert written["checkpoint"] == tmp_path / "best" / "ckpt_step30.pt"
    assert written["checkpoint"].read_bytes() == data


def test_no_checkpoint_no_file_and_other_trials_by_number(url: str, tmp_path: Path) -> None:
    study = known_study(url)
    written = export_trial(study, pick_trial(study, number=2), tmp_path / "t2")
    assert set(written) == {"config", "metrics"} and sorted(p.name for p in (tmp_path / "t2").iterdir()) == [
        "config.yaml", "metrics.json"]
    meta = json.loads(written["metrics"].read_text())
    assert meta["state"] == "PRUNED" and meta["checkpoint"] is None and meta["metrics"]["prune_reason"]["step"] == 2
    with pytest.raises(HpoError, match=r"--trial 9: study 'known' has trials 0\.\.4"):
        pick_trial(study, number=9)
    # the best is the best trial that reached the target (trial 1 has a lower val_loss but missed it)
    meta = json.loads(export_trial(study, pick_trial(study), tmp_path / "t4")["metrics"].read_text())
    assert meta["trial"] == 4 and meta["values"] == {"val_loss": 2.8}
    assert meta["metrics"] == {"train_seconds": 30.0, "tokens": 3000, "reached_target": True,
                               "time_to_target": 30.0, "val_ppl": 16.4}
    assert meta["outcome"] == "reached the target in 30.0 s of its clock"
    assert meta["config"] == {"steps": 30, "seq_len": 64, "lr": 0.005, "width": 64}
    missed = json.loads(export_trial(study, pick_trial(study, number=1), tmp_path / "t1")["metrics"].read_text())
    assert missed["outcome"].startswith("censored: did not reach the target within 20.0 s of its clock, "
                                        "closest 2.5; its time_to_target 40.0 is a ranking value")


def test_multi_objective_best_is_the_front_trial_best_in_the_metric(url: str) -> None:
    study = known_mo_study(url)
    assert pick_trial(study).number == 2  # val_loss 1.0
    assert pick_trial(study, metric="train_seconds").number == 1  # train_seconds 1.0
    with pytest.raises(HpoError, match="--metric loss: not an objective"):
        pick_trial(study, metric="loss")


def test_missing_checkpoint_file_is_one_line(url: str, tmp_path: Path) -> None:
    study = known_study(url)
    add_best_with_checkpoint(study, tmp_path / "artifacts", tmp_path)
    with pytest.raises(HpoError, match=r"checkpoint artifact .* cannot be read from the artifact store "
                                        r".*elsewhere: .* \(fix: --artifacts DIR"):
        export_trial(study, pick_trial(study), tmp_path / "out", tmp_path / "elsewhere")


def test_cli_best(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                  monkeypatch: pytest.MonkeyPatch) -> None:
    study = known_study(url)
    data = add_best_with_checkpoint(study, tmp_path / "store", tmp_path)
    monkeypatch.setenv("HPO_ARTIFACTS", str(tmp_path / "store"))
    assert main(["best", "--study", "known", "--storage", url, "--export", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "ckpt_step30.pt").read_bytes() == data
    assert main(["best", "--study", "known", "--storage", url]) == 0
    assert json.loads(capsys.readouterr().out)["trial"] == 5
    empty = optuna.create_study(study_name="empty", storage=url)
    assert main(["best", "--study", empty.study_name, "--storage", url]) == 1
    assert "has no COMPLETE trial yet" in capsys.readouterr().err


def test_export_of_a_checkpoint_saved_by_a_real_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = run_synthetic(url, "ckpt", n_trials=3, objective="made_studies:train_with_checkpoints", pruners=[])
    best = study.best_trial
    assert main(["best", "--study", "ckpt", "--storage", url, "--export", str(tmp_path / "out"),
                 "--artifacts", str(tmp_path / "artifacts")]) == 0
    state = torch.load(tmp_path / "out" / "checkpoint-step8.pt", weights_only=True)
    assert state == {"step": 8, "weights": [best.params["lr"]] * 4}
    meta = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert meta["checkpoint"]["step"] == 8 and meta["checkpoint_file"] == "checkpoint-step8.pt"
    assert meta["last_report"]["step"] == 8 and meta["last_report"]["val_loss"] == best.value
