"""Running a study: create or resume it, run trials to the requested total, summarise."""

from __future__ import annotations

import math
import os
import socket
import sys
import time
import traceback
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
from hpo.pruners import baseline_trials, build_pruner, required_metrics
from hpo.reporter import TrialReporter
from hpo._optuna import (CLOCK_ATTR, COPY_ATTR, FAIL_ATTR, FAIL_TRACEBACK_ATTR, OUTCOME_ATTR, REACHED_ATTR, SEED_ATTR,
                       STOP_ATTR, TARGET_ATTRS, WORKER_ATTR)
from hpo.display import outcome_sentence
from hpo.progress import Progress
from hpo.watchdog import TrialHung, Watchdog
from hpo.retries import RetryFromCheckpoint, is_rerun
from hpo.samplers import EXHAUSTIBLE, build_sampler, exhausted
from hpo.space import suggest_config
from hpo.spec import EXPERIMENT_ATTR, StudySpec, same_params
from hpo.study_info import SPEC_ATTR, store_spec  # noqa: F401 - SPEC_ATTR: where callers found it
from hpo.storage import CurveWriter, note_on_finished_trial, open_storage, redact, resolve_url, set_user_attrs
from hpo.view import CurveView, view_study

HOLDER_POLL_SECONDS = 2.0
WAIT_POLL_SECONDS = 2.0
DEFAULT_WATCHDOG = 4.0  # x the trial budget: wall seconds without a report before a trial is ended
TRACEBACK_LINES = 40
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
    source: str = "spec"  # the spec file, for error lines
    mistake: str | None = None  # a spec or objective mistake a trial showed: the study stops
    exhausted: bool = False  # a grid or brute-force sampler has run every config
    watchdog: float = DEFAULT_WATCHDOG  # x the budget; 0: off
    progress: Progress | None = None

    @property
    def dedup(self) -> bool:
        """Never train a config twice: a deterministic objective, or a grid of configs."""
        return self.spec.deterministic or self.spec.sampler.name in EXHAUSTIBLE


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
    store_spec(study, spec)
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
    source: str = "spec",
    watchdog: float = DEFAULT_WATCHDOG,
) -> Session:
    """Open the storage (with heartbeats on an RDB), the study, the objective and pruners.

    Args:
        spec: the study spec.
        storage_url: the storage (default: ``$HPO_STORAGE`` or ``sqlite:///studies.db``).
        heartbeat: heartbeat interval in seconds on an RDB storage (0: off).
        grace: seconds without a heartbeat before a trial is presumed dead (default 4x).
        max_retry: how often a dead or interrupted trial is queued again.
        artifacts: the checkpoint store's directory.
        source: the spec file, named in error lines.
        watchdog: end a trial silent for this many times the budget (wall seconds; 0: off).
    """
    retry = RetryFromCheckpoint(max_retry)
    kwargs: dict[str, Any] = {}
    if heartbeat > 0 and not resolve_url(storage_url).startswith("journal:"):
        kwargs = dict(heartbeat_interval=heartbeat, grace_period=grace or 4 * heartbeat,
                      heartbeat_stale_trial_callback=_on_stale(retry))
    storage = open_storage(storage_url, **kwargs)
    pruner = build_pruner(spec.pruners, source, clock=spec.clock)
    study = load_study(spec, storage)
    lock = StudyLock(storage_url, spec.study, getattr(storage, "engine", None))
    enqueue_start(study, spec, lock)
    return Session(spec=spec, study=study, storage=storage, train=spec.load_objective(), pruner=pruner,
                   artifacts=open_artifact_store(artifacts), lock=lock, retry=retry, total=spec.n_trials,
                   source=source, watchdog=watchdog)


def _on_stale(retry: RetryFromCheckpoint) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Heartbeat callback: say why the trial failed, then re-queue it."""

    def on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        note_on_finished_trial(study._storage, trial._trial_id, FAIL_ATTR,
                               "no heartbeat within the grace period: its worker is presumed dead")
        retry(study, trial)

    return on_stale


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward ``--n-trials``: all but failed ones (a failure is replaced) and
    seed re-runs of finalists (``hpo rerun``: extra to the search)."""
    return sum(not is_rerun(t) for t in study.get_trials(deepcopy=False, states=COUNTED))


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


def new_reporter(session: Session, trial: optuna.Trial, config: dict[str, Any], judge: bool = True) -> TrialReporter:
    """The reporter for one running trial, with its pruners' single-objective view."""
    spec, storage = session.spec, session.storage
    # Optuna's cached storage re-reads only unfinished and new trials on each refresh.
    view = CurveView(session.study._storage, session.study._study_id, spec.curve.direction,
                     objective_is_curve=list(spec.metrics) == [spec.curve.metric])
    checkpoints = None if session.artifacts is None else Checkpoints(session.artifacts, storage, trial._trial_id)
    return TrialReporter(spec, CurveWriter(storage, trial._trial_id), view,
                         view_study(view, session.study, session.pruner), storage.get_trial(trial._trial_id),
                         checkpoints, length=run_length(session, config), judge=judge)


def run_length(session: Session, config: dict[str, Any]) -> int | None:
    """A run's last step: the config's ``curve.length_key`` (e.g. ``max_steps``), if it holds an int."""
    value = config.get(session.spec.curve.length_key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def holder(session: Session, trial: optuna.Trial, out: TextIO) -> FrozenTrial | None:
    """The first finished trial (COMPLETE or PRUNED, not a seed re-run) with ``trial``'s params.

    While only a RUNNING trial holds them (another worker trains that config now), wait for
    it to finish; a holder whose worker on this host is gone does not count.
    """
    said = False
    while True:
        same = [t for t in session.study.get_trials(deepcopy=False)
                if t.number != trial.number and not is_rerun(t) and same_params(t.params, trial.params)]
        done = [t for t in same if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        if done:
            return min(done, key=lambda t: t.number)
        running = [t for t in same if t.state == TrialState.RUNNING and not _dead_here(t)]
        if not running:
            return None
        if not said:
            print(f"trial {trial.number} waits for trial {running[0].number}, which trains the same config "
                  "(deterministic objective: it is not trained twice)", file=out, flush=True)
            said = True
        time.sleep(HOLDER_POLL_SECONDS)


def _dead_here(t: FrozenTrial) -> bool:
    worker = t.system_attrs.get(WORKER_ATTR) or {}
    return worker.get("host") == host_name() and not _alive(int(worker.get("pid", -1)))


def copy_result(session: Session, trial: optuna.Trial, source: FrozenTrial) -> list[float]:
    """End ``trial`` with ``source``'s outcome, marked as its copy (nothing is trained)."""
    trial.set_user_attr(COPY_ATTR, source.number)
    for key in (CLOCK_ATTR, OUTCOME_ATTR, *TARGET_ATTRS):
        if key in source.user_attrs:
            trial.set_user_attr(key, source.user_attrs[key])
    note = (f"copy of trial {source.number}: the objective is deterministic (or the sampler a grid), "
            "so this config is not trained again")
    trial.set_user_attr(STOP_ATTR, note)
    if source.state == TrialState.PRUNED or source.values is None:
        if source.last_step is not None:
            session.storage.set_trial_intermediate_value(
                trial._trial_id, source.last_step, source.intermediate_values[source.last_step])
        raise optuna.TrialPruned(note)
    return list(source.values)


def missing_metrics(spec: StudySpec, reported: set[str]) -> list[tuple[str, str]]:
    """(spec field, metric) that the spec reads from reports and none of them carried."""
    needed = list(required_metrics(spec.pruners))
    if spec.target is not None:
        needed.append(("target.metric", spec.target.metric))
    return [(f, m) for f, m in needed if m not in reported]


def make_objective(session: Session, out: TextIO = sys.stderr) -> Callable[[optuna.Trial], list[float]]:
    """The function ``study.optimize`` calls: config, training, outcome and reasons of one trial."""
    spec = session.spec

    def mistake(trial: optuna.Trial, reason: str) -> HpoError:
        """A mistake every trial would repeat: the trial fails with it and the study stops."""
        session.mistake = reason
        trial.set_user_attr(FAIL_ATTR, reason)
        return HpoError(reason)

    def failed(trial: optuna.Trial, reason: str, error: BaseException | None = None) -> HpoError:
        """The trial fails with ``reason`` (and the last frames of ``error``'s traceback)."""
        trial.set_user_attr(FAIL_ATTR, reason)
        if error is not None:
            lines = "".join(traceback.format_exception(error)).splitlines()
            trial.set_user_attr(FAIL_TRACEBACK_ATTR, "\n".join(lines[-TRACEBACK_LINES:]))
        return HpoError(reason)

    def objective(trial: optuna.Trial) -> list[float]:
        storage, tid = session.storage, trial._trial_id
        session.current = tid
        if session.lock is not None:
            session.lock.release()  # the trial exists: other workers may count it now
        storage.set_trial_system_attr(tid, WORKER_ATTR, {"host": host_name(), "pid": os.getpid()})
        try:
            config = suggest_config(trial, spec)
        except Exception as e:  # noqa: BLE001 - an independent sampler's failure, said on the trial
            raise failed(trial, f"sampler: {type(e).__name__}: {e}", e) from None
        rerun = is_rerun(trial)
        if rerun:
            config[spec.seed_key] = trial.user_attrs[SEED_ATTR]
        elif session.dedup:
            source = holder(session, trial, out)
            if source is not None:
                return copy_result(session, trial, source)
        if session.progress is not None:
            session.progress.started(trial, config)
        budget = spec.trial_budget_seconds
        watchdog = Watchdog(session.watchdog * budget if budget and session.watchdog else None,
                            f"{session.watchdog:g} x the {budget:g} s budget" if budget else "")
        reporter = new_reporter(session, trial, config, judge=not rerun)
        reporter.on_report = watchdog.kick
        if reporter.timed:
            trial.set_user_attr(CLOCK_ATTR, spec.clock)
        start = time.perf_counter()
        stop: StopTrial | None = None
        try:
            with watchdog:
                result = session.train(config, reporter)
        except StopTrial as s:
            stop, result = s, {}
        except KeyboardInterrupt:
            trial.set_user_attr(FAIL_ATTR, "interrupted (Ctrl-C or SIGTERM); re-run the same command to continue")
            raise
        except TrialHung as e:
            raise failed(trial, str(e)) from None
        except SystemExit as e:
            raise failed(trial, f"the objective called sys.exit({e.code!r}) (fix: return from train() instead; "
                                "hpo ends the trial)", e) from None
        except Exception as e:  # noqa: BLE001 - the training failed: said on the trial, the study goes on
            if reporter.stopped is None:
                raise failed(trial, f"{type(e).__name__}: {e}", e) from None
            stop, result = reporter.stopped, {}  # raised while handling the stop: the stop decides
        finally:
            reporter.close()
        if reporter.stopped is not None:  # a training loop that swallowed the stop changes nothing
            stop, result = reporter.stopped, {}
        wall = time.perf_counter() - start
        if stop is not None and stop.mistake:
            raise mistake(trial, f"{session.source}: {stop.reason}")
        if result is not None and not isinstance(result, dict):
            raise mistake(trial, f"{session.source}: objective: {spec.objective} returned a "
                                 f"{type(result).__name__}, not a dict of metrics (fix: return e.g. "
                                 "{'val_loss': 1.23}, or None and report the metrics)")
        result = dict(result or {})
        missing = missing_metrics(spec, reporter.reported) if reporter.reported else []
        if missing:
            field_, metric = missing[0]
            raise mistake(trial, f"{session.source}: {field_}: '{metric}' was never reported by trial "
                                 f"{trial.number} (it reported {', '.join(sorted(reporter.reported))}) "
                                 "(fix: name a reported metric, or report it)")
        metrics = {**reporter.last, **result, **reporter.target_attrs()}
        metrics["wall_seconds"] = wall
        if REACHED_ATTR in metrics and spec.target is not None:
            metrics[OUTCOME_ATTR] = outcome_sentence({**metrics, CLOCK_ATTR: spec.clock}, spec.target.describe())
        if stop is not None:
            metrics[STOP_ATTR] = stop.reason
        set_user_attrs(storage, tid, {k: v for k, v in metrics.items() if k not in spec.metrics})
        if stop is not None and stop.pruned:
            raise optuna.TrialPruned(stop.reason)
        absent = [m for m in spec.metrics if m not in metrics]
        if absent:
            raise mistake(trial, f"{session.source}: metrics: the objective reported no {absent} "
                                 f"(it gave {', '.join(sorted(metrics))}) (fix: return or report them, "
                                 "or name the metrics it gives)")
        values = []
        for m in spec.metrics:
            value = metrics[m]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise mistake(trial, f"{session.source}: metrics.{m}: the objective gave {value!r}, not a "
                                     "number (fix: return a float)")
            if not math.isfinite(value):
                raise failed(trial, f"the objective returned {m}={value} (not a finite number)")
            values.append(float(value))
        return values

    return objective




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


def reap(session: Session) -> None:
    """Fail trials whose worker is gone (on this host: its process; elsewhere: no heartbeat
    within the grace period) and queue their retries, so they neither hold a place in the
    total nor stay RUNNING for ever."""
    dead = fail_dead_local_trials(session)
    if dead:
        session.progress.say(f"marked FAIL: trials {dead} (their worker process is gone)")
    if is_heartbeat_enabled(session.study._storage):
        stale = fail_stale_trials(session.study)
        if stale:
            session.progress.say(f"marked FAIL: trials {stale} (no heartbeat within the grace period: their "
                                 "worker is presumed dead)")


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Optuna's own reaping of trials without a heartbeat; the numbers it failed."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(before - after - {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                                               TrialState.PRUNED))})


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
        if not running or not is_heartbeat_enabled(session.study._storage):
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
    if {frozen.number, frozen.system_attrs.get("failed_trial")} & set(baseline_trials(session.spec.pruners)):
        session.retry(session.study, frozen)


def _run_one(session: Session, objective: Callable[[optuna.Trial], list[float]]) -> bool:
    """Start one trial if the study is not full; the lock makes "count, then create" atomic."""
    if session.lock is not None:
        session.lock.acquire()
    try:
        waiting = session.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if counted_trials(session.study) >= session.total and not waiting:
            return False  # queued trials (retries, a design) already count: run them first
        if not waiting and exhausted(session.study.sampler, session.study):
            session.exhausted = True  # a next trial would repeat a config
            return False
        session.current = None
        newest = max((t.number for t in session.study.get_trials(deepcopy=False)), default=-1)
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
            session.storage.set_trial_user_attr(t._trial_id, FAIL_ATTR, reason)
            session.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


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


def is_heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether the storage beats for running trials (an RDB opened with a heartbeat interval)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return callable(interval) and interval() is not None
