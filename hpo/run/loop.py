"""The trial loop: run trials until the study holds its total, then say why it stopped.

Each worker runs its own loop over the shared study: under the study lock it counts the
trials (:func:`counted_trials`) and starts one only while the study is not full
(:func:`_run_one`); when it looks full while other workers' trials still run, it waits for
them or runs the retries of those whose worker died. It stops on a mistake every trial
would repeat, and after :data:`MAX_FAILURES_IN_A_ROW` failed trials.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import _optuna
from hpo._optuna import FAIL_ATTR, FAIL_TRACEBACK_ATTR, WORKER_ATTR
from hpo.errors import HpoError, SpecError
from hpo.run.progress import Progress
from hpo.policy.pruners import baseline_trials
from hpo.run.reaping import is_heartbeat_enabled, reap
from hpo.run.retries import is_rerun
from hpo.policy.samplers import exhausted
from hpo.run.session import Session, open_session
from hpo.specs.models import StudySpec
from hpo.run.trial import make_objective

WAIT_POLL_SECONDS = 2.0
MAX_FAILURES_IN_A_ROW = 5
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def counted_trials(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> int:
    """Trials that count toward ``--n-trials``: all but failed ones (a failure is replaced) and
    seed re-runs of finalists (``hpo rerun``: extra to the search).

    Args:
        study: the study.
        trials: its trials, if already read.
    """
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=COUNTED)
    return sum(t.state in COUNTED and not is_rerun(t) for t in trials)


def run(
    session: Session,
    n_trials: int | None = None,
    timeout: float | None = None,
    out: TextIO = sys.stderr,
) -> optuna.Study:
    """Run trials until the study holds ``n_trials`` (a total, so a re-run resumes).

    Args:
        session: the open session (:func:`open_session`).
        n_trials: the study's total (default: the spec's ``n_trials``).
        timeout: stop starting new trials after this many seconds.
        out: where the progress lines go.
    """
    study, total = session.study, n_trials or session.spec.n_trials
    session.total = total
    session.progress = Progress(study, total, out)
    reap(session)
    objective = make_objective(session, out)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            session.progress.say(f"timeout of {timeout:g} s reached")
            break
        if not _run_one(session, objective):
            if _wait_for_others(session):
                continue  # a trial of a dead worker came back as a retry: run it
            break
        frozen = session.storage.get_trial(session.current)  # type: ignore[arg-type]
        session.ran.append(frozen.number)
        session.progress.finished(frozen)
        if session.mistake is not None:
            raise SpecError(f"{session.mistake}; trial {frozen.number} failed with it and the study "
                            "stops here (it keeps what it has)")
        if frozen.state == TrialState.FAIL and FAIL_TRACEBACK_ATTR in frozen.user_attrs:
            session.progress.say(f"  its traceback: hpo best --study {study.study_name} --trial {frozen.number} "
                                 f"(user attribute {FAIL_TRACEBACK_ATTR})")
        _retry_baseline(session, frozen)
        _count_failure(session, frozen)
    if session.exhausted:
        session.progress.say(f"the {session.spec.sampler.name} sampler has run every config of the space: "
                             f"the study is complete with {counted_trials(study)} trials")
    return study


def _wait_for_others(session: Session) -> bool:
    """The study looks full, but other workers' trials still run: wait until they finish, or
    come back as retries because their worker died (then True: run them). A RUNNING trial
    counts toward the total only while it can still finish."""
    said = False
    while True:
        reap(session)
        if session.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return True
        running = [t.number for t in session.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        if not running or not is_heartbeat_enabled(_optuna.storage_of(session.study)):
            return False  # nothing to wait for, or no heartbeat to tell a dead trial from a slow one
        if not said:
            session.progress.say(f"the study is full: waiting for trials {running} of other workers")
            said = True
        time.sleep(WAIT_POLL_SECONDS)


def _retry_baseline(session: Session, frozen: FrozenTrial) -> None:
    """A failed kill-rule baseline (``baseline_trial``, or a retry of it) is queued again:
    without it the kill rule judges no trial."""
    if frozen.state != TrialState.FAIL:
        return
    if {frozen.number, _optuna.retried_trial_number(frozen)} & set(baseline_trials(session.spec.pruners)):
        session.retry(session.study, frozen)


def _run_one(session: Session, objective: Callable[[optuna.Trial], list[float]]) -> bool:
    """Start one trial if the study is not full; the lock makes "count, then create" atomic."""
    if session.lock is not None:
        session.lock.acquire()
    try:
        trials = session.study.get_trials(deepcopy=False)  # one read under the lock
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if counted_trials(session.study, trials) >= session.total and not waiting:
            return False  # queued trials (retries, a design) already count: run them first
        if not waiting and exhausted(session.study.sampler, session.study):
            session.exhausted = True  # a next trial would repeat a config
            return False
        session.current = None
        newest = max((t.number for t in trials), default=-1)
        try:
            session.study.optimize(objective, n_trials=1, catch=(Exception,))
        except KeyboardInterrupt:
            if session.current is not None:  # FAIL already; queue it to resume from its checkpoint
                session.retry(session.study, session.storage.get_trial(session.current))
            raise
        except Exception as e:  # noqa: BLE001 - raised before the objective ran: the sampler
            _fail_unstarted(session, newest, f"sampler: {type(e).__name__}: {e}")
            raise HpoError(f"the {session.spec.sampler.name} sampler failed: {type(e).__name__}: {e} "
                           "(fix: check sampler.options and the search space)") from None
        if session.current is None:
            raise HpoError("no trial could start (fix: check the sampler and the search space)")
        return True
    finally:
        if session.lock is not None:
            session.lock.release()


def _fail_unstarted(session: Session, newest: int, reason: str) -> None:
    """The trial Optuna created before its sampler raised stays RUNNING: fail it with the reason.
    Under the study lock no other worker creates trials, so it is the newest without a worker."""
    for t in session.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number > newest and WORKER_ATTR not in t.system_attrs:
            session.storage.set_trial_user_attr(_optuna.trial_id(t), FAIL_ATTR, reason)
            session.storage.set_trial_state_values(_optuna.trial_id(t), TrialState.FAIL)


def _count_failure(session: Session, frozen: optuna.trial.FrozenTrial) -> None:
    if frozen.state != TrialState.FAIL:
        session.failures_in_a_row = 0
        return
    session.failures_in_a_row += 1
    if session.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
        reason = frozen.user_attrs.get(FAIL_ATTR, "see the log")
        raise HpoError(
            f"{MAX_FAILURES_IN_A_ROW} trials in a row failed; the last: {reason} "
            "(fix: run the objective once by hand; the study keeps what it has)"
        )


def optimize(
    spec: StudySpec,
    storage_url: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    out: TextIO = sys.stderr,
    **session_kwargs: Any,
) -> optuna.Study:
    """Open a session on ``spec`` and run it: the Python entry point of ``hpo optimize``.

    Args:
        spec: the study spec (:func:`hpo.load_spec`).
        storage_url: the storage (default: ``$HPO_STORAGE`` or ``sqlite:///studies.db``).
        n_trials: the study's total (default: the spec's ``n_trials``).
        timeout: stop starting new trials after this many seconds.
        out: where the progress lines go.
        **session_kwargs: :func:`hpo.run.session.open_session`'s options (heartbeat, grace, ...).
    """
    return run(open_session(spec, storage_url, **session_kwargs), n_trials=n_trials, timeout=timeout, out=out)
