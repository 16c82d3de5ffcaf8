"""Retries of trials whose worker died or was interrupted: what the retry carries, and its budget."""

from __future__ import annotations

from pathlib import Path

import optuna

from hpo.storage.artifacts import Checkpoints, open_artifact_store
from hpo.run.retries import RetryFromCheckpoint
from hpo.storage.backend import open_storage


def _setup(tmp_path: Path) -> tuple[optuna.Study, optuna.storages.BaseStorage, Path]:
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    return optuna.create_study(study_name="ckpt", storage=storage), storage, tmp_path / "store"


def test_retry_starts_from_the_parent_checkpoint_and_keeps_it(tmp_path: Path) -> None:
    study, storage, store_dir = _setup(tmp_path)
    store = open_artifact_store(store_dir)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("fail_reason", "worker died")
    parent_id = Checkpoints(store, storage, trial._trial_id).save({"step": 4})
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    RetryFromCheckpoint(max_retry=1)(study, storage.get_trial(trial._trial_id))
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1
    retry = waiting[0]
    assert retry.params == trial.params and "fail_reason" not in retry.user_attrs
    assert retry.system_attrs["failed_trial"] == trial.number and retry.system_attrs["retry_history"] == [0]
    retried = study.ask()  # a worker picks the waiting trial up
    assert retried.number == retry.number
    ckpt = Checkpoints(store, storage, retried._trial_id)
    assert ckpt.load()["step"] == 4
    ckpt.save({"step": 8})
    assert (store_dir / parent_id).exists(), "a retry never deletes its parent's checkpoint"
    assert ckpt.load()["step"] == 8


def test_retry_budget_is_respected(tmp_path: Path) -> None:
    study, storage, _ = _setup(tmp_path)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    retry = RetryFromCheckpoint(max_retry=1)
    retry(study, storage.get_trial(trial._trial_id))
    second = study.ask()
    study.tell(second, state=optuna.trial.TrialState.FAIL)
    retry(study, storage.get_trial(second._trial_id))  # second failure of the same chain: not again
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 0
    assert storage.get_trial(second._trial_id).system_attrs["retry_history"] == [0]


def test_retry_of_an_enqueued_trial_interrupted_before_it_suggested_keeps_its_config(tmp_path: Path) -> None:
    """A seed re-run (or a design point) dies between ``ask`` and its suggestions: its retry must
    still run the queued config, not one the sampler proposes."""
    study, storage, _ = _setup(tmp_path)
    study.enqueue_trial({"x": 0.25}, user_attrs={"rerun_of": 3, "seed": 1})
    trial = study.ask()  # popped from the queue, interrupted before suggest_float
    assert trial.params == {}
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    RetryFromCheckpoint(max_retry=1)(study, storage.get_trial(trial._trial_id))
    retried = study.ask()
    assert retried.suggest_float("x", 0, 1) == 0.25
    assert retried.user_attrs == {"rerun_of": 3, "seed": 1}
