"""Re-queueing trials whose worker died or was interrupted, with their checkpoint."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo._optuna import (CHECKPOINT_ATTR, EXPERIMENT_ATTR, FIXED_PARAMS_ATTR, GRID_ATTRS, RERUN_ATTR,
                         RETRY_HISTORY_ATTR, SEED_ATTR, retry_attrs)

CARRIED_USER_ATTRS = (RERUN_ATTR, SEED_ATTR, EXPERIMENT_ATTR)  # what the retry is: a seed re-run, a named experiment
CARRIED_SYSTEM_ATTRS = (CHECKPOINT_ATTR, FIXED_PARAMS_ATTR, *GRID_ATTRS)  # where it starts, which config it holds


def is_rerun(trial: FrozenTrial | optuna.Trial) -> bool:
    """Whether the trial is a seed re-run of a finalist (its seed differs from the study's)."""
    return RERUN_ATTR in trial.user_attrs


class RetryFromCheckpoint:
    """Like ``optuna.storages.RetryFailedTrialCallback``, but the retry carries only what a
    fresh run needs: the same parameters, the retry history and the checkpoint pointer (not
    the dead trial's curve, worker or failure reason), an enqueued trial's config (interrupted
    before it suggested its parameters, its ``params`` are empty), a seed re-run's seed, and a grid
    trial's grid point (else the grid sampler would mark another point visited with these
    parameters and never run it). Used as the heartbeat's
    ``heartbeat_stale_trial_callback`` and for trials interrupted by a signal or a dead local worker.
    """

    def __init__(self, max_retry: int = 3) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        attrs = retry_attrs(trial)
        if len(attrs[RETRY_HISTORY_ATTR]) > self.max_retry:
            return
        for key in CARRIED_SYSTEM_ATTRS:
            if key in trial.system_attrs:
                attrs[key] = trial.system_attrs[key]
        user = {k: trial.user_attrs[k] for k in CARRIED_USER_ATTRS if k in trial.user_attrs}
        study.add_trial(create_trial(state=TrialState.WAITING, params=trial.params, user_attrs=user,
                                     distributions=trial.distributions, system_attrs=attrs))
