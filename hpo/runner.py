"""Running a study: create or resume it, run trials to the requested total, summarise."""

from __future__ import annotations

import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from optuna.artifacts import FileSystemArtifactStore

from hpo.artifacts import Checkpoints, open_artifact_store
from hpo.design import one_factor
from hpo.errors import HpoError, SpecError
from hpo.locks import StudyLock
from hpo.protocol import StopTrial
from hpo.pruners import build_pruner
from hpo.reporter import TrialReporter
from hpo.retries import RetryFromCheckpoint
from hpo.samplers import build_sampler
from hpo.space import suggest_config
from hpo.spec import EXPERIMENT_ATTR, StudySpec, dump_spec, same_params
from hpo.storage import CurveWriter, note_on_finished_trial, open_storage, redact, resolve_url
from hpo.view import CurveView, view_study

SPEC_ATTR = "hpo:spec"
WORKER_ATTR = "hpo:worker"
FAIL_ATTR = "fail_reason"
STOP_ATTR = "stop_reason"
MAX_FAILURES_IN_A_ROW = 5
DEFAULT_HEARTBEAT = 10  # seconds; a trial silent for 4x this is declared dead
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


@dataclass
class Session:
    """Everything one worker needs to run trials of one study."""

    spec: StudySpec
    study: optuna.Study
    storage: BaseStorage
    train: Callable[..., dict[str, float]]
    pruner: optuna.pruners.BasePruner
    artifacts: FileSystemArtifactStore | None = None
    lock: StudyLock | None = None
    retry: RetryFromCheckpoint = field(default_factory=RetryFromCheckpoint)
    total: int = 0
    current: int | None = None
    failures_in_a_row: int = 0
    ran: list[int] = field(default_factory=list)


def load_study(spec: StudySpec, storage: BaseStorage) -> optuna.Study:
    """Create the study or resume it; refuse a study whose objectives differ from the spec."""
    study = optuna.create_study(
        study_name=spec.study,
        storage=storage,
        directions=spec.directions,
        sampler=build_sampler(spec),
        load_if_exists=True,
    )
    have = [d.name.lower() for d in study.directions]
    if have != spec.directions:
        raise SpecError(
            f"study '{spec.study}' exists with directions {have}, the spec says {spec.directions} "
            "(fix: give the spec a new study name)"
        )
    names = study.metric_names
    if names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(spec.metrics))
    elif list(names) != list(spec.metrics):
        raise SpecError(
            f"study '{spec.study}' exists with metrics {names}, the spec says {list(spec.metrics)} "
            "(fix: give the spec a new study name)"
        )
    study.set_user_attr(SPEC_ATTR, dump_spec(spec))
    return study


def start_configs(spec: StudySpec) -> list[dict[str, Any]]:
    """The spec's ``enqueue`` configs, then (``one_factor_levels``) the baseline ``enqueue[0]``
    with one parameter at a time moved to each of its other levels (:func:`hpo.design.one_factor`)."""
    if not spec.one_factor_levels:
        return list(spec.enqueue)
    return [*spec.enqueue, *one_factor(spec.space, spec.enqueue[0], spec.one_factor_levels)[1:]]


def unheld(configs: list[dict[str, Any]], trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """``configs`` that none of ``trials`` holds yet, each once. A trial holds the params it
    was queued with (``fixed_params``; a partial config leaves the rest to the sampler), else
    its params, in any state: what Optuna's ``enqueue_trial(skip_if_exists=True)`` skips."""
    held = [t.system_attrs.get("fixed_params", t.params) for t in trials]
    out: list[dict[str, Any]] = []
    for config in configs:
        if not any(same_params(config, h) for h in held):
            out.append(config)
            held.append(config)
    return out


def enqueue_start(study: optuna.Study, spec: StudySpec, lock: StudyLock | None = None) -> None:
    """Queue the spec's start configs (:func:`start_configs`; e.g. a baseline for ``kill_rule``'s
    ``baseline_trial: 0``) so they run first, once per study: a config some trial already holds
    (:func:`unheld`) is not queued again, and the study lock stops two workers that start
    together from both queueing it."""
    configs = start_configs(spec)
    if not configs:
        return
    if lock is not None:
        lock.acquire()
    try:
        for params in unheld(configs, study.get_trials(deepcopy=False)):
            name = spec.experiment_name(params)
            study.enqueue_trial(params, user_attrs={EXPERIMENT_ATTR: name} if name else None)
    finally:
        if lock is not None:
            lock.release()


def open_session(
    spec: StudySpec,
    storage_url: str | None = None,
    *,
    heartbeat: int = DEFAULT_HEARTBEAT,
    grace: int | None = None,
    max_retry: int = 3,
    artifacts: str | None = None,
) -> Session:
    """Open the storage (with heartbeats on an RDB), the study, the objective and pruners."""
    retry = RetryFromCheckpoint(max_retry)
    kwargs: dict[str, Any] = {}
    if heartbeat > 0 and not resolve_url(storage_url).startswith("journal:"):
        kwargs = dict(heartbeat_interval=heartbeat, grace_period=grace or 4 * heartbeat,
                      heartbeat_stale_trial_callback=_on_stale(retry))
    storage = open_storage(storage_url, **kwargs)
    try:
        pruner = build_pruner(spec.pruners)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{spec.study}: pruners.options: {e} (fix: check the pruner's options)") from None
    study = load_study(spec, storage)
    lock = StudyLock(storage_url, spec.study, getattr(storage, "engine", None))
    enqueue_start(study, spec, lock)
    return Session(spec=spec, study=study, storage=storage, train=spec.load_objective(), pruner=pruner,
                   artifacts=open_artifact_store(artifacts), lock=lock, retry=retry, total=spec.n_trials)


def _on_stale(retry: RetryFromCheckpoint) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Heartbeat callback: say why the trial failed, then re-queue it."""

    def on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        note_on_finished_trial(study._storage, trial._trial_id, FAIL_ATTR,
                               "no heartbeat within the grace period: its worker is presumed dead")
        retry(study, trial)

    return on_stale


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward ``--n-trials``: all but failed ones (a failure is replaced)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def fail_dead_local_trials(session: Session) -> list[int]:
    """RUNNING trials whose worker process on this host is gone are marked FAIL now."""
    host, failed = host_name(), []
    for t in session.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.system_attrs.get(WORKER_ATTR) or {}
        if worker.get("host") != host or _alive(int(worker.get("pid", -1))):
            continue
        session.storage.set_trial_user_attr(t._trial_id, FAIL_ATTR, f"worker process {worker['pid']} died")
        session.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        session.retry(session.study, session.storage.get_trial(t._trial_id))
        failed.append(t.number)
    return failed


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


def new_reporter(session: Session, trial: optuna.Trial) -> TrialReporter:
    """The reporter for one running trial, with its pruners' single-objective view."""
    spec, storage = session.spec, session.storage
    # Optuna's cached storage re-reads only unfinished and new trials on each refresh.
    view = CurveView(session.study._storage, session.study._study_id, spec.curve.direction,
                     objective_is_curve=list(spec.metrics) == [spec.curve.metric])
    checkpoints = None if session.artifacts is None else Checkpoints(session.artifacts, storage, trial._trial_id)
    return TrialReporter(spec, CurveWriter(storage, trial._trial_id), view,
                         view_study(view, session.study, session.pruner), storage.get_trial(trial._trial_id),
                         checkpoints)


def make_objective(session: Session) -> Callable[[optuna.Trial], list[float]]:
    spec = session.spec

    def objective(trial: optuna.Trial) -> list[float]:
        storage, tid = session.storage, trial._trial_id
        session.current = tid
        if session.lock is not None:
            session.lock.release()  # the trial exists: other workers may count it now
        storage.set_trial_system_attr(tid, WORKER_ATTR, {"host": host_name(), "pid": os.getpid()})
        config = suggest_config(trial, spec)
        reporter = new_reporter(session, trial)
        start = time.perf_counter()
        stop: StopTrial | None = None
        try:
            result = dict(session.train(config, reporter) or {})
        except StopTrial as s:
            stop, result = s, {}
        except KeyboardInterrupt:
            trial.set_user_attr(FAIL_ATTR, "interrupted (Ctrl-C or SIGTERM); re-run the same command to continue")
            raise
        except Exception as e:
            trial.set_user_attr(FAIL_ATTR, f"{type(e).__name__}: {e}")
            raise
        finally:
            reporter.close()
        wall = time.perf_counter() - start
        metrics = {**reporter.last, **result, **reporter.target_attrs()}
        metrics.setdefault("train_seconds", reporter.clock(reporter.last) if reporter.last else wall)
        metrics["wall_seconds"] = wall
        if stop is not None:
            trial.set_user_attr(STOP_ATTR, stop.reason)
        for k, v in metrics.items():
            if k not in spec.metrics:
                trial.set_user_attr(k, v)
        if stop is not None and stop.pruned:
            raise optuna.TrialPruned(stop.reason)
        missing = [m for m in spec.metrics if m not in metrics]
        if missing:
            reason = f"the objective reported no {missing} (fix: return or report them)"
            trial.set_user_attr(FAIL_ATTR, reason)
            raise HpoError(reason)
        return [float(metrics[m]) for m in spec.metrics]

    return objective


class Progress:
    """A progress bar with the best value on a terminal; one line per trial otherwise."""

    def __init__(self, total: int, done: int, out: TextIO) -> None:
        self.total, self.out = total, out
        self.bar = None
        if out.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, file=out, unit="trial", dynamic_ncols=True)

    def update(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, done: int) -> None:
        best = best_text(study)
        if self.bar is not None:
            self.bar.n = min(done, self.total)
            self.bar.set_postfix_str(best)
            self.bar.refresh()
            return
        values = "" if trial.values is None else " " + ",".join(f"{v:.5g}" for v in trial.values)
        why = trial.user_attrs.get(FAIL_ATTR) or trial.user_attrs.get(STOP_ATTR)
        note = f" ({why})" if why else ""
        print(f"[{done}/{self.total}] trial {trial.number} {trial.state.name}{values}{note}  {best}",
              file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def best_text(study: optuna.Study) -> str:
    try:
        if len(study.directions) > 1:
            return f"pareto front: {len(study.best_trials)} trials"
        b = study.best_trial
        return f"best: {b.value:.5g} (trial {b.number})"
    except ValueError:
        return "best: -"


def run(
    session: Session,
    n_trials: int | None = None,
    timeout: float | None = None,
    out: TextIO = sys.stderr,
) -> optuna.Study:
    """Run trials until the study holds ``n_trials`` (a total, so a re-run resumes)."""
    study, total = session.study, n_trials or session.spec.n_trials
    session.total = total
    dead = fail_dead_local_trials(session)
    if dead:
        print(f"marked FAIL: trials {dead} (their worker process is gone)", file=out)
    objective = make_objective(session)
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = Progress(total, min(counted_trials(study), total), out)
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                print(f"timeout of {timeout:g} s reached", file=out)
                break
            if not _run_one(session, objective):
                break
            frozen = session.storage.get_trial(session.current)  # type: ignore[arg-type]
            session.ran.append(frozen.number)
            _count_failure(session, frozen)
            progress.update(study, frozen, counted_trials(study))
    finally:
        progress.close()
    return study


def _run_one(session: Session, objective: Callable[[optuna.Trial], list[float]]) -> bool:
    """Start one trial if the study is not full; the lock makes "count, then create" atomic."""
    if session.lock is not None:
        session.lock.acquire()
    try:
        waiting = session.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if counted_trials(session.study) >= session.total and not waiting:
            return False  # queued trials (retries, a design) already count: run them first
        session.current = None
        try:
            session.study.optimize(objective, n_trials=1, catch=(Exception,))
        except KeyboardInterrupt:
            if session.current is not None:  # FAIL already; queue it to resume from its checkpoint
                session.retry(session.study, session.storage.get_trial(session.current))
            raise
        if session.current is None:
            raise HpoError("no trial could start (fix: check the sampler and the search space)")
        return True
    finally:
        if session.lock is not None:
            session.lock.release()


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
    """The Python entry point of ``hpo optimize``."""
    return run(open_session(spec, storage_url, **session_kwargs), n_trials=n_trials, timeout=timeout, out=out)


def describe_storage(url: str | None) -> str:
    return redact(resolve_url(url))
