"""``hpo rerun``: finalists over more seeds, queued once, resumable, ranked by their median."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import hpo_env, run_hpo
from hpo.cli import main
from hpo.storage.backend import open_storage

SPEC = {
    "study": "fin", "objective": "objectives.synthetic:train", "metrics": {"time_to_target": "minimize"},
    "target": {"metric": "val_loss", "below": 3.3}, "trial_budget_seconds": 0.3, "deterministic": True,
    "n_trials": 5, "sampler": {"name": "random", "options": {"seed": 1}},
    "fixed": {"steps": 40, "seed": 0, "noise": 0.05, "sleep_per_step": 0.1},
    "space": {"lr": {"type": "categorical", "choices": [0.003, 0.01, 0.03]},
              "width": {"type": "categorical", "choices": [64, 128]}},
}


def _trials(workdir: Path) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(f"sqlite:///{workdir / 'studies.db'}")
    return optuna.load_study(study_name="fin", storage=storage).get_trials()


def test_rerun_queues_each_finalist_seed_once_and_resumes_after_an_interrupt(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "search_spaces" / "fin.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    assert main(["optimize", "--study", "fin"]) == 0
    searched = len(_trials(workdir))
    capsys.readouterr()

    assert main(["rerun", "--study", "fin", "--top", "2", "--seeds", "2", "--dry-run"]) == 0
    dry = capsys.readouterr().err
    assert "4 seed re-run(s) to run" in dry and "seed 1, 2 (2 to run: 1, 2)" in dry
    assert len(_trials(workdir)) == searched, "a dry run queues nothing"

    # interrupt the first rerun process while it trains its second re-run (each step sleeps 0.1 s:
    # a re-run takes 0.6-1.5 s, longer than a poll of the storage)
    proc = subprocess.Popen([sys.executable, "-m", "hpo", "rerun", "--study", "fin", "--top", "2", "--seeds", "2"],
                            cwd=workdir, env=hpo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and {TrialState.COMPLETE, TrialState.RUNNING} - {
            t.state for t in _trials(workdir) if "rerun_of" in t.user_attrs}:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err

    again = run_hpo("rerun", "--study", "fin", "--top", "2", "--seeds", "2", cwd=workdir)
    assert again.returncode == 0, again.stderr
    trials = _trials(workdir)
    reruns = [t for t in trials if "rerun_of" in t.user_attrs and t.state == TrialState.COMPLETE]
    pairs = sorted((t.user_attrs["rerun_of"], t.user_attrs["seed"]) for t in reruns)
    assert len(pairs) == 4 and len(set(pairs)) == 4, pairs  # every (finalist, seed) once
    by_number = {t.number: t for t in trials}
    for t in reruns:  # the finalist's config with another training seed: another curve
        original = by_number[t.user_attrs["rerun_of"]]
        assert t.params == original.params and t.intermediate_values != original.intermediate_values
    assert "configs over seeds" in again.stdout and "3 seeds" in again.stdout
    assert len(_trials(workdir)) == len(trials)
    capsys.readouterr()
    assert main(["rerun", "--study", "fin", "--top", "2", "--seeds", "2"]) == 0
    assert "0 seed re-run(s) to run" in capsys.readouterr().err
    assert len(_trials(workdir)) == len(trials), "a finished rerun queues nothing more"
    # the search's --n-trials total does not count seed re-runs
    assert main(["optimize", "--study", "fin", "--n-trials", "6"]) == 0
    assert len(_trials(workdir)) == len(trials) + 1
