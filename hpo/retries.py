"""Re-queueing trials whose worker died or was interrupted, with their checkpoint."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo.artifacts import CHECKPOINT_ATTR


class RetryFromCheckpoint:
    """Like ``optuna.storages.RetryFailedTrialCallback``, but the retry carries only what a
    fresh run needs: the same parameters, the retry history and the checkpoint pointer (not
    the dead trial's curve, worker or failure reason). Used as the heartbeat's
    ``heartbeat_stale_trial_callback`` and for trials interrupted by a signal or a dead local worker.
    """

    def __init__(self, max_retry: int = 3) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            return
        attrs = {"failed_trial": trial.system_attrs.get("failed_trial", trial.number), "retry_history": history}
        if CHECKPOINT_ATTR in trial.system_attrs:
            attrs[CHECKPOINT_ATTR] = trial.system_attrs[CHECKPOINT_ATTR]
        study.add_trial(create_trial(state=TrialState.WAITING, params=trial.params,
                                     distributions=trial.distributions, system_attrs=attrs))
