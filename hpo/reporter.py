"""The reporter a training function calls: durable curve writes, target, budget, pruning."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo.artifacts import Checkpoints
from hpo.protocol import StopTrial
from hpo.pruners import REASON_ATTR
from hpo.spec import StudySpec
from hpo.storage import CurveWriter
from hpo.view import CurveView


class TrialReporter:
    """``report(step, val_loss=..., tokens=..., **metrics)`` for one trial.

    Each call (1) writes the curve value and all metrics durably, (2) stops the trial as
    COMPLETE when the time budget is spent or the target is crossed (budget first, so every
    trial that reached the target did so within the budget), (3) prunes on a non-finite
    value or when the pruner says so, except that a pruner whose reason says ``censored``
    (``time_cap``) ends the trial COMPLETE with a censored time to target (:meth:`target_attrs`).
    Stopping raises :class:`StopTrial`.
    """

    def __init__(
        self,
        spec: StudySpec,
        writer: CurveWriter,
        view: CurveView,
        pruner_study: optuna.Study,
        frozen: FrozenTrial,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.spec = spec
        self._checkpoints = checkpoints
        self._writer = writer
        self._view = view
        self._pruner_study = pruner_study
        self._pruner = pruner_study.pruner
        self._frozen = frozen
        self._start = time.perf_counter()
        self.last: dict[str, float] = {}
        self.best_target: float | None = None
        self.time_to_target: float | None = None
        self.stopped_at: float | None = None  # the clock when a censoring pruner stopped the trial
        view.begin(frozen)

    def clock(self, metrics: dict[str, float]) -> float:
        """Seconds on the target clock: the reported ``train_seconds``, else wall-clock."""
        clock = self.spec.target.clock if self.spec.target else "train_seconds"
        return metrics.get(clock, time.perf_counter() - self._start)

    def __call__(self, step: int, **metrics: float) -> None:
        step = int(step)
        if step in self._frozen.intermediate_values:
            return  # like Optuna: the first report of a step wins
        m = {k: float(v) for k, v in metrics.items()}
        curve_metric = self.spec.curve.metric
        if curve_metric not in m:
            raise ValueError(
                f"report(step={step}) has no '{curve_metric}' "
                f"(fix: report it, or set curve.metric in the spec to one of {sorted(m)})"
            )
        value = m[curve_metric]
        self._writer.write(step, value, m)
        self._view.record(step, value, m)
        self.last = {**self.last, **m}
        if not math.isfinite(value):
            raise StopTrial(f"{curve_metric} is {value} at step {step} (diverged)", pruned=True)
        self._check_target(step, m)
        if self._pruner.prune(self._pruner_study, self._frozen):
            reason = self._frozen.user_attrs.get(REASON_ATTR)
            censored = bool(reason and reason.get("censored")) and self.spec.target is not None
            if censored:
                self.stopped_at = self.clock(m)
            raise StopTrial(prune_text(reason, step), pruned=not censored)

    def _check_target(self, step: int, m: dict[str, float]) -> None:
        target, budget = self.spec.target, self.spec.trial_budget_seconds
        elapsed = self.clock(m)
        if target is not None and target.metric in m:
            v = m[target.metric]
            sign = 1.0 if target.below is not None else -1.0
            if math.isfinite(v) and (self.best_target is None or sign * v < sign * self.best_target):
                self.best_target = v
        if budget is not None and elapsed >= budget:
            raise StopTrial(f"time budget of {budget:g} s spent at step {step}", pruned=False)
        if target is not None and target.metric in m and target.reached(m[target.metric]):
            self.time_to_target = elapsed
            raise StopTrial(f"target {target.metric} {_bound(target)} reached at step {step}", pruned=False)

    def target_attrs(self) -> dict[str, Any]:
        """``reached_target`` and ``time_to_target`` (censored for trials that missed it).

        A trial that missed the target gets ``seconds * (1 + gap / |target|)``, where gap is
        how far its best value stayed from the target and seconds is the budget, or the clock
        where ``time_cap`` stopped it: finite, after every trial that reached it sooner, and
        ordered by how close it got. A capped trial is thus a censored observation (its time
        to target is over the cap), as in SMAC's adaptive capping, not a PRUNED trial: Optuna's
        TPE ranks every PRUNED trial below every COMPLETE one, so capping at the 5th-best time
        would teach it that configs nearly as fast as the best are worse than ones that missed.
        """
        target, budget = self.spec.target, self.spec.trial_budget_seconds
        if target is None or budget is None:
            return {}
        if self.time_to_target is not None:
            return {"reached_target": True, "time_to_target": self.time_to_target}
        if self.best_target is None:
            gap = 1.0
        else:  # 0 for a trial that crossed only at the report that spent the budget
            sign = 1.0 if target.below is not None else -1.0
            gap = max(0.0, sign * (self.best_target - target.level)) / max(abs(target.level), 1e-12)
        seconds = budget if self.stopped_at is None else min(self.stopped_at, budget)
        return {"reached_target": False, "time_to_target": seconds * (1.0 + gap)}

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
        history = self._frozen.system_attrs.get("retry_history", [])
        return [d for n in reversed(history) if (d := self._run_dir(n)) is not None]

    def _run_dir(self, number: int) -> Path | None:
        base = getattr(getattr(self._checkpoints, "_store", None), "_base_path", None)  # FileSystemArtifactStore
        return None if base is None else Path(base) / "runs" / self.spec.study / f"trial-{number}"


def prune_text(reason: dict[str, Any] | None, step: int) -> str:
    """One line saying which pruner stopped the trial and on what evidence."""
    if not reason:
        return f"pruned at step {step}"
    verb = "capped" if reason.get("censored") else "pruned"  # a capped trial ends COMPLETE
    text = f"{reason.get('pruner', 'pruner')}: {verb} at step {step}"
    if reason.get("reference") is not None and reason.get("difference") is not None:
        index = reason.get("index", "tokens")
        at = f"{reason[index]:.0f} tokens" if index == "tokens" else f"{index} {reason[index]:.4g}"
        text += (f", value {reason['value']:.4g} vs reference {reason['reference']:.4g}"
                 f" at {at} (worse by {reason['difference']:.3g})")
    elif reason.get("why"):
        text += f": {reason['why']}"
    return text


def _bound(target: Any) -> str:
    return f"< {target.below:g}" if target.below is not None else f"> {target.above:g}"
