"""One trial: its config, its reporter, its training, its outcome and the reasons for it.

:func:`make_objective` is the function ``study.optimize`` calls. It suggests the config,
copies the outcome of a config already run when the objective is deterministic
(:func:`holder`, :func:`copy_result`), trains with a :class:`~hpo.run.reporter.TrialReporter`
(:func:`new_reporter`) under a watchdog, and turns what the training returned and reported
into the trial's values, attributes and, for a mistake every trial would repeat, the reason
the study stops.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from typing import Any, Callable, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.storage.artifacts import Checkpoints
from hpo import _optuna
from hpo._optuna import (CLOCK_ATTR, COPY_ATTR, FAIL_ATTR, FAIL_TRACEBACK_ATTR, OUTCOME_ATTR, REACHED_ATTR, SEED_ATTR,
                       STOP_ATTR, TARGET_ATTRS, TTT_ATTR, WORKER_ATTR)
from hpo.analysis.display import outcome_sentence
from hpo.errors import HpoError
from hpo.run.protocol import StopTrial
from hpo.policy.pruners import required_metrics
from hpo.run.reaping import dead_here, host_name
from hpo.run.reporter import TrialReporter
from hpo.run.retries import is_rerun
from hpo.run.session import Session
from hpo.specs.space import suggest_config
from hpo.specs.models import StudySpec, same_params
from hpo.storage.backend import CurveWriter, set_user_attrs
from hpo.policy.view import CurveView, view_study
from hpo.run.watchdog import TrialHung, Watchdog

HOLDER_POLL_SECONDS = 2.0
TRACEBACK_LINES = 40


def new_reporter(session: Session, trial: optuna.Trial, config: dict[str, Any], judge: bool = True) -> TrialReporter:
    """The reporter for one running trial, with its pruners' single-objective view."""
    spec, storage = session.spec, session.storage
    # Optuna's cached storage re-reads only unfinished and new trials on each refresh.
    view = CurveView(_optuna.storage_of(session.study), _optuna.study_id(session.study), spec.curve.direction,
                     objective_is_curve=list(spec.metrics) == [spec.curve.metric])
    checkpoints = None if session.artifacts is None else Checkpoints(session.artifacts, storage, _optuna.trial_id(trial))
    return TrialReporter(spec, CurveWriter(storage, _optuna.trial_id(trial)), view,
                         view_study(view, session.study, session.pruner), storage.get_trial(_optuna.trial_id(trial)),
                         checkpoints, length=run_length(session, config), judge=judge)


def run_length(session: Session, config: dict[str, Any]) -> int | None:
    """A run's last step: the config's ``curve.length_key`` (e.g. ``max_steps``), if it holds an int."""
    value = config.get(session.spec.curve.length_key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def holder(session: Session, trial: optuna.Trial, out: TextIO) -> FrozenTrial | None:
    """The first finished trial (COMPLETE or PRUNED, not a seed re-run) with ``trial``'s params.

    While only a RUNNING trial holds them (another worker trains that config now), wait for
    it to finish; a holder whose worker on this host is gone does not count. Two trials that
    got the same config at once must not wait for each other: a trial waits for an older one,
    or for a newer one only once that one trains (has reported); a waiting trial never reports.
    """
    said = False
    while True:
        same = [t for t in session.study.get_trials(deepcopy=False)
                if t.number != trial.number and not is_rerun(t) and same_params(t.params, trial.params)]
        done = [t for t in same if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        if done:
            return min(done, key=lambda t: t.number)
        running = [t for t in same if t.state == TrialState.RUNNING and not dead_here(t)
                   and (t.number < trial.number or t.intermediate_values)]
        if not running:
            return None
        if not said:
            print(f"trial {trial.number} waits for trial {running[0].number}, which trains the same config "
                  "(deterministic objective: it is not trained twice)", file=out, flush=True)
            said = True
        time.sleep(HOLDER_POLL_SECONDS)


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
                _optuna.trial_id(trial), source.last_step, source.intermediate_values[source.last_step])
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
        storage, tid = session.storage, _optuna.trial_id(trial)
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
        # none reported: every one is missing; a pruned (diverged) trial may stop before it reports them
        missing = [] if stop is not None and stop.pruned else missing_metrics(spec, reporter.reported)
        if missing:
            field_, metric = missing[0]
            said = ", ".join(sorted(reporter.reported)) or "nothing: report() was never called"
            raise mistake(trial, f"{session.source}: {field_}: '{metric}' was never reported by trial "
                                 f"{trial.number} (it reported {said}) (fix: name a reported metric, or "
                                 "report it)")
        target = reporter.target_attrs()
        if stop is not None and stop.pruned:  # a pruned trial has no time to target, not even a censored one
            target.pop(TTT_ATTR, None)
        metrics = {**reporter.last, **result, **target}
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
