"""Reaping (:mod:`hpo.run.reaping`): a trial's worker, on this host or not, alive or gone."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from hpo._optuna import WORKER_ATTR
from hpo.run.reaping import dead_here, host_name, is_heartbeat_enabled
from hpo.storage.backend import open_storage


def _running(study: optuna.Study, worker: dict[str, object]) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)
    return study._storage.get_trial(trial._trial_id)


def test_host_name_is_hpo_host_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_HOST", "box-7")
    assert host_name() == "box-7"


def test_a_trial_is_dead_here_only_when_its_process_on_this_host_is_gone() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    study = optuna.create_study()
    here = host_name()
    assert dead_here(_running(study, {"host": here, "pid": gone.pid}))
    assert not dead_here(_running(study, {"host": here, "pid": os.getpid()}))
    assert not dead_here(_running(study, {"host": here + "-elsewhere", "pid": gone.pid}))
    assert [t.state for t in study.trials] == [TrialState.RUNNING] * 3


def test_heartbeat_only_on_an_rdb_opened_with_one(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert is_heartbeat_enabled(open_storage(url, heartbeat_interval=10, grace_period=40))
    assert not is_heartbeat_enabled(open_storage(url))
    assert not is_heartbeat_enabled(optuna.storages.InMemoryStorage())
