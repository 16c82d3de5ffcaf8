"""Reaping: trials whose worker is gone are failed and queued again.

A RUNNING trial records its worker (:data:`WORKER_ATTR`: host and pid). On this host a
trial whose process is gone is failed at once (:func:`fail_dead_local_trials`); elsewhere
Optuna's heartbeat tells a dead worker from a slow one (:func:`fail_stale_trials`, with
:func:`stale_trial_callback` saying why and queueing the retry).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Callable

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from hpo import _optuna
from hpo._optuna import FAIL_ATTR, WORKER_ATTR
from hpo.run.retries import RetryFromCheckpoint
from hpo.storage.backend import note_on_finished_trial

if TYPE_CHECKING:
    from hpo.run.session import Session


def host_name() -> str:
    """This machine's name for trial ownership (``$HPO_HOST`` overrides, e.g. in containers)."""
    return os.environ.get("HPO_HOST") or socket.gethostname()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_here(t: FrozenTrial) -> bool:
    """Whether ``t``'s worker ran on this host and its process is gone."""
    worker = t.system_attrs.get(WORKER_ATTR) or {}
    return worker.get("host") == host_name() and not _alive(int(worker.get("pid", -1)))


def stale_trial_callback(retry: RetryFromCheckpoint) -> Callable[[optuna.Study, FrozenTrial], None]:
    """The heartbeat callback: say why the trial failed, then re-queue it.

    Args:
        retry: the retry policy that queues the failed trial again.
    """

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        note_on_finished_trial(_optuna.storage_of(study), _optuna.trial_id(trial), FAIL_ATTR,
                               "no heartbeat within the grace period: its worker is presumed dead")
        retry(study, trial)

    return on_stale


def fail_dead_local_trials(session: Session) -> list[int]:
    """RUNNING trials whose worker process on this host is gone are marked FAIL now.

    Args:
        session: the open session; its retry policy queues each failed trial again.
    """
    failed = []
    for t in session.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not dead_here(t):
            continue
        pid = t.system_attrs[WORKER_ATTR]["pid"]
        session.storage.set_trial_user_attr(_optuna.trial_id(t), FAIL_ATTR, f"worker process {pid} died")
        session.storage.set_trial_state_values(_optuna.trial_id(t), TrialState.FAIL)
        session.retry(session.study, session.storage.get_trial(_optuna.trial_id(t)))
        failed.append(t.number)
    return failed


def is_heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether the storage beats for running trials (an RDB opened with a heartbeat interval)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return callable(interval) and interval() is not None


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Optuna's own reaping of trials without a heartbeat; the numbers it failed."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with _optuna.experimental():
        optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(before - after - {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                                               TrialState.PRUNED))})


def reap(session: Session) -> None:
    """Fail trials whose worker is gone (on this host: its process; elsewhere: no heartbeat
    within the grace period) and queue their retries, so they neither hold a place in the
    total nor stay RUNNING for ever.

    Args:
        session: the open session, with its progress lines set (:func:`hpo.run.loop.run`).
    """
    dead = fail_dead_local_trials(session)
    if dead:
        session.progress.say(f"marked FAIL: trials {dead} (their worker process is gone)")
    if is_heartbeat_enabled(_optuna.storage_of(session.study)):
        stale = fail_stale_trials(session.study)
        if stale:
            session.progress.say(f"marked FAIL: trials {stale} (no heartbeat within the grace period: their "
                                 "worker is presumed dead)")
