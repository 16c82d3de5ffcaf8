"""The reporter a training function calls: durable curve writes, target, budget, pruning."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial

from hpo import _optuna
from hpo._optuna import CENSORED_AT_ATTR, CLOSEST_ATTR, REACHED_ATTR, REASON_ATTR, TTT_ATTR, metric_key
from hpo.storage.artifacts import Checkpoints
from hpo.analysis.display import prune_text
from hpo.run.protocol import StopTrial
from hpo.policy.pruners import ReasonedPruner
from hpo.specs.models import WALL_CLOCK, StudySpec, Target
from hpo.storage.backend import CurveWriter
from hpo.policy.view import CurveView


class TrialReporter:
    """``report(step, val_loss=..., tokens=..., **metrics)`` for one trial.

    Each call (1) writes the curve value and all metrics durably, (2) stops the trial as
    COMPLETE when the target is crossed within the time budget, or when the budget is spent
    (both read on the spec's ``clock``), (3) prunes on a non-finite value or when the pruner
    says so, except at the run's last step (its compute is spent) and in seed re-runs
    (``judge=False``), and except that a pruner whose reason says ``censored`` (``time_cap``)
    ends the trial COMPLETE with a censored time to target (:meth:`target_attrs`). The path
    runs one way: the reporter keeps the running trial's record, shows the pruner a fresh
    FrozenTrial of it through the read-only ``view``, and writes the reason (and any
    attribute the pruner set through the view) itself. Stopping
    raises :class:`StopTrial`; once stopped, every later call raises the same stop again and
    nothing more is recorded, so a training loop that swallows it cannot change the outcome.

    Args:
        spec: the study spec.
        writer: durable writes of the trial's reports.
        view: the pruners' single-objective view of the study.
        pruner_study: a study over ``view`` with the spec's pruner.
        frozen: the running trial.
        checkpoints: the trial's checkpoint store, if any.
        length: the run's last step (no pruning there), if known.
        judge: whether pruners may stop this trial (False for seed re-runs of finalists).
    """

    def __init__(
        self,
        spec: StudySpec,
        writer: CurveWriter,
        view: CurveView,
        pruner_study: optuna.Study,
        frozen: FrozenTrial,
        checkpoints: Checkpoints | None = None,
        *,
        length: int | None = None,
        judge: bool = True,
    ) -> None:
        self.spec = spec
        self._checkpoints = checkpoints
        self._writer = writer
        self._view = view
        self._pruner_study = pruner_study
        self._pruner = pruner_study.pruner
        self._frozen = frozen  # the trial as it started; never changed (see _asked)
        self._steps = dict(frozen.intermediate_values)
        self._system = dict(frozen.system_attrs)
        self._user = dict(frozen.user_attrs)
        self._trial_id = _optuna.trial_id(frozen)
        self._length = length
        self._judge = judge
        self._start = time.perf_counter()
        self.last: dict[str, float] = {}
        self.reported: set[str] = set()  # every metric name any report carried
        self.closest: float | None = None  # the best target-metric value within the budget
        self.time_to_target: float | None = None
        self.ended_at: float | None = None  # the clock at the last report
        self.capped_at: float | None = None  # the clock where a censoring pruner (time_cap) stopped it
        self.stopped: StopTrial | None = None
        self.on_report: Callable[[], None] | None = None  # e.g. a watchdog's kick
        view.begin(frozen)

    @property
    def timed(self) -> bool:
        """Whether reports must carry the clock: a budget or a target is read on it."""
        return self.spec.trial_budget_seconds is not None or self.spec.target is not None

    def clock(self, metrics: dict[str, float], step: int) -> float:
        """Seconds on the spec's clock at a report: the reported metric, or hpo's wall clock
        for ``clock: wall``. A timed study whose report lacks the clock stops at once: its
        budget and time to target would silently measure something else."""
        name = self.spec.clock
        if name == WALL_CLOCK:
            return time.perf_counter() - self._start
        if name not in metrics:
            raise StopTrial(
                f"clock: report(step={step}) has no '{name}', the clock the budget and time to target "
                f"are read on (it reported {', '.join(sorted(metrics))}) (fix: report '{name}', or set "
                "clock: to a metric the objective reports, or clock: wall)", pruned=False, mistake=True)
        return metrics[name]

    def __call__(self, step: int, **metrics: float) -> None:
        if self.stopped is not None:
            raise self.stopped  # stopped already: nothing after the stop counts
        if self.on_report is not None:
            self.on_report()
        try:
            self._report(int(step), {k: float(v) for k, v in metrics.items()})
        except StopTrial as stop:
            self.stopped = stop
            raise

    def _report(self, step: int, m: dict[str, float]) -> None:
        if step in self._steps:
            return  # like Optuna: the first report of a step wins
        curve_metric = self.spec.curve.metric
        if curve_metric not in m:
            raise StopTrial(
                f"curve.metric: report(step={step}) has no '{curve_metric}' "
                f"(fix: report it, or set curve.metric in the spec to one of {sorted(m)})",
                pruned=False, mistake=True)
        elapsed = self.clock(m, step) if self.timed else None
        value = m[curve_metric]
        self._writer.write(step, value, m)
        self._steps[step] = value
        self._system[metric_key(step)] = m
        self.last = {**self.last, **m}
        self.reported.update(m)
        self.ended_at = elapsed
        if not math.isfinite(value):
            raise StopTrial(f"{curve_metric} is {value} at step {step} (diverged)", pruned=True)
        if elapsed is not None:
            self._check_target(step, m, elapsed)
        if not self._judge or (self._length is not None and step >= self._length):
            return  # a seed re-run runs to its end; at the last step there is nothing left to save
        pruned, reason = self._ask()
        if pruned:
            censored = bool(reason and reason.get("censored")) and self.spec.target is not None
            if censored:
                self.capped_at = elapsed
            raise StopTrial(prune_text(reason, step), pruned=not censored)

    def _asked(self) -> FrozenTrial:
        """The running trial as the pruner sees it now: a new FrozenTrial of the reporter's record."""
        t = self._frozen
        return FrozenTrial(number=t.number, state=t.state, value=None, datetime_start=t.datetime_start,
                           datetime_complete=None, params=t.params, distributions=t.distributions,
                           user_attrs=dict(self._user), system_attrs=dict(self._system),
                           intermediate_values=dict(self._steps), trial_id=self._trial_id)

    def _ask(self) -> tuple[bool, dict[str, Any] | None]:
        """Whether the pruner prunes the trial now, and its reason; the reason, its notes and
        what the pruner set through the view are written on the trial."""
        trial = self._asked()
        self._view.show(trial)
        notes: dict[str, Any] = {}
        if isinstance(self._pruner, ReasonedPruner):
            reason = self._pruner.judge(self._pruner_study, trial, notes)
            pruned = reason is not None
        else:
            reason, pruned = None, self._pruner.prune(self._pruner_study, trial)
        user, system = self._view.take_writes()
        user.update(notes)
        if reason is not None:
            user[REASON_ATTR] = reason
        if user or system:
            self._writer.write_attrs(user, system)
            self._user.update(user)
            self._system.update(system)
        return pruned, reason

    def _check_target(self, step: int, m: dict[str, float], elapsed: float) -> None:
        """The target counts only within the budget: a crossing after it is a miss."""
        target, budget = self.spec.target, self.spec.trial_budget_seconds
        within = budget is None or elapsed <= budget
        if target is not None and within and target.metric in m and math.isfinite(m[target.metric]):
            v = m[target.metric]
            if self.closest is None or target.sign * v < target.sign * self.closest:
                self.closest = v
            if target.reached(v):
                self.time_to_target = elapsed
                raise StopTrial(f"target {target.describe()} reached at step {step}", pruned=False)
        if budget is not None and elapsed >= budget:
            raise StopTrial(f"time budget of {budget:g} s spent at step {step}", pruned=False)

    def target_attrs(self) -> dict[str, Any]:
        """``reached_target`` and ``time_to_target``; for a miss also ``censored_at`` and
        ``closest`` (see :func:`censored_time`)."""
        target, budget = self.spec.target, self.spec.trial_budget_seconds
        if target is None or budget is None:
            return {}
        if self.time_to_target is not None:
            return {REACHED_ATTR: True, TTT_ATTR: self.time_to_target}
        ended = budget if self.ended_at is None else min(self.ended_at, budget)
        stopped = budget if self.capped_at is None else min(self.capped_at, budget)
        return {REACHED_ATTR: False, CENSORED_AT_ATTR: ended, CLOSEST_ATTR: self.closest,
                TTT_ATTR: censored_time(target, budget, stopped, self.closest)}

    def checkpoint(self, state: dict[str, Any]) -> None:
        """Store a resumable training state in the artifact store (newest wins)."""
        if self._checkpoints is not None:
            self._checkpoints.save(state)

    def restore(self) -> dict[str, Any] | None:
        """The newest checkpoint of this trial or of the trial it retries, if any."""
        return None if self._checkpoints is None else self._checkpoints.load()

    def close(self) -> None:
        self._writer.close()

    @property
    def trial_number(self) -> int:
        return self._frozen.number

    @property
    def checkpoint_dir(self) -> Path | None:
        """A directory of this trial's own for files its training process writes (command
        objectives): ``<artifact store>/runs/<study>/trial-<number>``; None without a local store."""
        return self._run_dir(self._frozen.number)

    @property
    def retried_checkpoint_dirs(self) -> list[Path]:
        """The :attr:`checkpoint_dir` of each failed trial this one retries, newest first."""
        history = _optuna.retry_history(self._frozen)
        return [d for n in reversed(history) if (d := self._run_dir(n)) is not None]

    def _run_dir(self, number: int) -> Path | None:
        base = None if self._checkpoints is None else _optuna.artifact_base(self._checkpoints.store)
        return None if base is None else Path(base) / "runs" / self.spec.study / f"trial-{number}"


def censored_time(target: Target, budget: float, stopped: float, closest: float | None) -> float:
    """The value a trial that missed the target stands on: ``budget + stopped * (1 + gap)``.

    ``gap`` is how far its best value within the budget stayed from the target, relative to
    it (1 when it never reported the metric), and ``stopped`` the clock where ``time_cap``
    stopped it, else the budget (a run that ended on its own short of the target would not
    have got there with more time: it counts as if it ran the whole budget). Above the budget, so above every
    trial that reached the target (those reached it within the budget), wherever it is
    ranked or sampled from; among misses, ordered by ``stopped * (1 + gap)``, a rough guess
    of when it would have got there, so a trial capped early but close ranks ahead of one
    that ran the whole budget and stayed far. Its true time to target is only known to be
    over the clock where it ended (``censored_at``, what the tables print).
    """
    if closest is None:
        gap = 1.0
    else:
        gap = max(0.0, target.sign * (closest - target.level)) / max(abs(target.level), 1e-12)
    return budget + stopped * (1.0 + gap)
