"""Each seed's example sweep (examples/seeds/), end to end at a tiny size, as its README runs it."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from hpo.cli import main
from hpo.storage.backend import open_storage

SEEDS = Path(__file__).resolve().parents[1] / "examples" / "seeds"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of examples/seeds (links resolved) with one example's directory as the cwd."""

    def enter(name: str) -> Path:
        shutil.copytree(SEEDS, tmp_path / "seeds", ignore=shutil.ignore_patterns("__pycache__"))
        monkeypatch.chdir(tmp_path / "seeds" / name)
        monkeypatch.delenv("HPO_STORAGE", raising=False)
        monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
        return tmp_path / "seeds" / name

    return enter


def _hpo(*args: str) -> None:
    assert main(list(args)) == 0


def _study(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage("sqlite:///studies.db"))


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    change(data)
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False))


def _script(*args: str) -> str:
    return subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True).stdout


def test_000_a_json_grid_with_summary_csv_and_best_checkpoint(example) -> None:
    here = example("000_json_grid")
    _edit(here / "sweep_configs" / "architecture_sweep.json", lambda d: d["fixed"].update(max_batches=50))
    _hpo("optimize", "--spec", "sweep_configs/architecture_sweep.json", "--n-trials", "2")
    assert [t.state for t in _study("ghost_architecture").trials] == [TrialState.COMPLETE] * 2
    _hpo("report", "--study", "ghost_architecture", "--format", "csv", "--out", "sweep_summary.csv")
    rows = list(csv.DictReader(open("sweep_summary.csv")))
    assert len(rows) == 2 and {"embed_dim", "num_layers", "learning_rate", "eval_loss"} <= set(rows[0])
    _hpo("best", "--study", "ghost_architecture", "--export", "best_model")
    assert "best_model.npz" in _script("export_best.py")
    assert {"config.yaml", "metrics.json", "best_model.npz", "training_log.json"} <= {
        p.name for p in (here / "best_model").iterdir()}


def test_001_named_experiments_in_order_with_time_vs_loss(example) -> None:
    here = example("001_named_sweep")
    # queued configs always run (--n-trials cannot cut them): keep the first three of the 22
    _edit(here / "quick_sweep.yaml", lambda d: d.update(enqueue=dict(list(d["enqueue"].items())[:3]), n_trials=3))
    _hpo("optimize", "--spec", "quick_sweep.yaml")
    trials = _study("quick_sweep").trials
    assert [t.user_attrs["experiment"] for t in trials] == ["reference", "lr_0.005", "lr_0.01"]
    assert all(t.state == TrialState.COMPLETE and len(t.intermediate_values) == 12 for t in trials)
    _hpo("plot", "--study", "quick_sweep", "--kind", "time-vs-loss", "--out", "figures/time_vs_loss.html")
    assert Path("figures/time_vs_loss.html").stat().st_size > 0


def test_002_a_wandb_sweep_file_with_hyperband_runs_its_program_unchanged(example,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    here = example("002_wandb_sweep")
    _edit(here / "sweep_config.yaml", lambda d: d["parameters"]["epochs"].update(value=4))
    _hpo("optimize", "--spec", "sweep_config.yaml", "--n-trials", "3")
    trials = _study("digits_sweep").trials
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert trials[0].state == TrialState.COMPLETE and sorted(trials[0].intermediate_values) == [1, 2, 3, 4]
    assert {"val_acc", "train/loss", "epoch"} <= set(trials[0].user_attrs)
    capsys.readouterr()
    _hpo("import", "wandb", "sweep_config_minimal.yaml", "--out", "-")
    assert "n_trials: 6  # the grid's size" in capsys.readouterr().out


def test_003_two_stage_time_to_target_from_stdout_lines(example) -> None:
    here = example("003_time_to_target")
    _edit(here / "time_to_target.yaml", lambda d: (d.update(trial_budget_seconds=0.5, target={"below": 2.6}),
                                                   d["objective"]["command"].__setitem__(3, "150")))
    _hpo("optimize", "--spec", "time_to_target.yaml", "--two-stage", "--n-trials", "3", "--top", "2", "--runs", "2")
    stage1, stage2 = _study("ttt_tiny"), _study("ttt_tiny_stage2")
    assert len(stage1.trials) == 3 and all(t.state == TrialState.COMPLETE for t in stage1.trials)
    for t in stage1.trials:  # time to target, or the censored value, on the script's own clock (ms -> s)
        assert t.value >= t.user_attrs["train_seconds"] > 0 and "reached_target" in t.user_attrs
    assert len(stage2.trials) >= 4 and Path("search_spaces/ttt_tiny_stage2.yaml").is_file()


def test_004_kill_rule_against_the_baseline_then_finalists_over_three_seeds(example) -> None:
    here = example("004_kill_rule")
    _edit(here / "phase1_sweep.yaml", lambda d: (d["fixed"].update(total_tokens=6000), d.update(n_trials=3),
                                                 d.update(enqueue=dict(list(d["enqueue"].items())[:3])),
                                                 d["pruners"][0]["options"].update(min_tokens=2000)))
    _hpo("optimize", "--spec", "phase1_sweep.yaml")
    trials = _study("phase1").trials
    assert [t.user_attrs["experiment"] for t in trials] == ["phase1_emb35", "phase1_emb25", "phase1_emb45"]
    _hpo("report", "--study", "phase1", "--axes", "embedding_ratio,glu_expansion", "--format", "json",
         "--out", "phase1_report.json")
    assert "x seeds 1-3" in _script("finalists.py", "phase1_report.json")
    _hpo("optimize", "--spec", "phase2_finalists.yaml")
    finalists = _study("phase2_finalists").trials
    assert sorted(t.params["seed"] for t in finalists) == [1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in finalists)
