"""Pruners: the kill rule (at equal tokens, or equal seconds), adaptive time capping, "any of these", and the registry.

All of them are ``optuna.pruners.BasePruner`` subclasses, so they also work in a plain
single-objective Optuna study; ``hpo`` runs them (and Optuna's own) in multi-objective
studies through a single-objective, read-only view of the curve (see :mod:`hpo.policy.view`).

``hpo``'s pruners say why: :meth:`ReasonedPruner.judge` returns the reason (a dict) or None
and writes nothing; ``hpo``'s reporter writes the reason (``prune_reason``) and decides.
Their ``prune`` (what Optuna calls) is ``judge(...) is not None`` and writes the reason itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from hpo._optuna import NOTE_ATTR, REACHED_ATTR, REASON_ATTR, metric_key, retried_trial_number, set_trial_user_attrs
from hpo.errors import SpecError, first_line
from hpo.specs.options import OptionError, check_options
from hpo.specs.models import Component
from hpo.storage.backend import curve


class ReasonedPruner(BasePruner):
    """A pruner that says why: :meth:`judge` returns the reason to prune (a dict) or None."""

    def judge(self, study: optuna.Study, trial: FrozenTrial,
              notes: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Why ``trial`` should be pruned now, or None; nothing is written.

        Args:
            study: the study (read only).
            trial: the running trial.
            notes: where a pruner puts user attributes for the trial that are not a reason
                (e.g. the kill rule's note that it cannot judge); the caller writes them.
        """
        raise NotImplementedError

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Optuna's question: :meth:`judge` is not None; the reason and notes are written on the trial."""
        notes: dict[str, Any] = {}
        reason = self.judge(study, trial, notes)
        attrs = notes if reason is None else {**notes, REASON_ATTR: reason}
        if attrs:
            set_trial_user_attrs(study, trial, attrs)
        return reason is not None


class KillRulePruner(ReasonedPruner):
    """Stop a trial whose metric is ``threshold`` worse than a reference at the same tokens.

    The reference is a fixed ``baseline`` value, the curve of trial number ``baseline_trial``,
    or else the curve of the best COMPLETE trial: ``reference="best"``, the best final value
    of the metric; ``"fastest"``, the one that reached the target at the smallest x (with a
    clock as the index: the best time to target; in a time-to-target study every trial that
    gets there stops at about the target, so "best final value" picks one at random), the
    best final value until one has. Reference curves are interpolated linearly at the
    trial's x and held flat past their last report.

    ``index`` is the x: ``tokens`` (the seed's rule), or a clock such as ``train_seconds`` for
    time-to-target studies, where what counts is progress per second, not per token: a
    small batch sees fewer tokens per second but may reach the target first. Nothing is
    judged before ``min_tokens`` (or ``min_index``, in the index's unit). ``patience``: kill
    only after that many consecutive checks over the threshold. ``stall_patience`` (the seed's
    backup rule, off by default): also kill after that many judged checks without the trial
    improving on its own best. The decision is recomputed from the stored curve each time,
    so it is the same in any process and after a resume.
    """

    def __init__(
        self,
        metric: str | None = "val_ppl",
        threshold: float = 0.5,
        min_tokens: float = 1_000_000,
        patience: int = 1,
        mode: str = "min",
        baseline: float | None = None,
        baseline_trial: int | None = None,
        stall_patience: int | None = None,
        index: str = "tokens",
        min_index: float | None = None,
        reference: str = "best",
    ) -> None:
        if reference not in ("best", "fastest"):
            raise ValueError(f"reference must be 'best' or 'fastest', got {reference!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.metric = metric
        self.threshold = threshold
        self.index = index
        self.min_x = min_tokens if min_index is None else min_index
        self.reference = reference
        self.patience = patience
        self.sign = 1.0 if mode == "min" else -1.0
        self.baseline = baseline
        self.baseline_trial = baseline_trial
        self.stall_patience = stall_patience
        # Finished trials never change: their curves and the reference pick are computed once,
        # not at every report (25 ms -> well under 1 ms per decision with 1000 finished trials).
        self._curves: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._picked: dict[str, tuple[int, FrozenTrial | None]] = {}

    def judge(self, study: optuna.Study, trial: FrozenTrial,
              notes: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Why the trial should be killed now, or None (see :meth:`ReasonedPruner.judge`)."""
        xs, ys = curve(trial, self.metric, self.index)
        judged = xs >= self.min_x
        if not judged.any():
            return None
        xs, ys = xs[judged], ys[judged]
        if self.stall_patience is not None and len(ys) > self.stall_patience:
            best_before = (self.sign * ys[: -self.stall_patience]).min()
            if (self.sign * ys[-self.stall_patience :]).min() >= best_before:
                return self._record("stall", trial, xs[-1], ys[-1], float("nan"))
        ref = self._reference(study, trial, xs, notes)
        if ref is None:
            return None
        worse = self.sign * (ys - ref) >= self.threshold
        if len(worse) < self.patience or not worse[-self.patience :].all():
            return None
        return self._record("kill_rule", trial, xs[-1], ys[-1], float(ref[-1]))

    def _reference(self, study: optuna.Study, trial: FrozenTrial, xs: np.ndarray,
                   notes: dict[str, Any] | None) -> np.ndarray | None:
        if self.baseline is not None:
            return np.full_like(xs, self.baseline)
        ref_trial = self._reference_trial(study, trial, notes)
        if ref_trial is None:
            return None
        rx, ry = _sorted(*self._finished_curve(study, ref_trial))
        if len(rx) == 0:
            return None
        ref = np.interp(xs, rx, ry)  # flat beyond both ends
        ref[xs < rx[0]] = np.nan  # before the reference's first report: nothing to compare
        return ref

    def _reference_trial(self, study: optuna.Study, trial: FrozenTrial,
                         notes: dict[str, Any] | None) -> FrozenTrial | None:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if self.baseline_trial is not None:
            return self._baseline(study, trial, done, notes)
        cached = self._picked.get(study.study_name)
        if cached is not None and cached[0] == len(done):  # no trial completed since: same pick
            return cached[1]
        best = self._fastest(study, done) if self.reference == "fastest" else None
        if best is None:
            best_val = math.inf
            for t in done:
                _, ys = self._finished_curve(study, t)
                if len(ys) and math.isfinite(ys[-1]) and self.sign * ys[-1] < best_val:
                    best, best_val = t, self.sign * ys[-1]
        self._picked[study.study_name] = (len(done), best)
        return best

    def _baseline(self, study: optuna.Study, trial: FrozenTrial, done: list[FrozenTrial],
                  notes: dict[str, Any] | None) -> FrozenTrial | None:
        """The COMPLETE run of trial ``baseline_trial`` or of a retry of it (a failed baseline
        is retried under a new number); without one, a note for the trial says it was not judged."""
        number = self.baseline_trial
        if number in (trial.number, retried_trial_number(trial)):
            return None  # the baseline itself
        found = next((t for t in done if number in (t.number, retried_trial_number(t))), None)
        if found is None and notes is not None and NOTE_ATTR not in trial.user_attrs:
            states = [t.state.name for t in study.get_trials(deepcopy=False)
                      if number in (t.number, retried_trial_number(t))]
            where = "has not run yet" if not states else f"has no COMPLETE run ({', '.join(states)})"
            notes[NOTE_ATTR] = f"not judged by the kill rule: its baseline trial {number} {where}"
        return found

    def _fastest(self, study: optuna.Study, done: list[FrozenTrial]) -> FrozenTrial | None:
        """The trial that reached the target at the smallest x (its last report), if any did."""
        fastest, first = None, math.inf
        for t in done:
            xs, _ = self._finished_curve(study, t)
            if t.user_attrs.get(REACHED_ATTR) and len(xs) and xs[-1] < first:
                fastest, first = t, xs[-1]
        return fastest

    def _finished_curve(self, study: optuna.Study, t: FrozenTrial) -> tuple[np.ndarray, np.ndarray]:
        key = (study.study_name, t.number)
        if key not in self._curves:
            self._curves[key] = curve(t, self.metric, self.index)
        return self._curves[key]

    def _record(self, rule: str, trial: FrozenTrial, x: float, y: float, ref: float) -> dict[str, Any]:
        where = {"tokens": x} if self.index == "tokens" else {"index": self.index, self.index: x}
        return {
            "pruner": rule,
            "step": trial.last_step,
            **where,
            "value": y,
            "reference": ref,
            "difference": self.sign * (y - ref) if math.isfinite(ref) else None,
            "threshold": self.threshold,
        }


def _sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(xs, kind="stable")
    return xs[order], ys[order]


class TimeCapPruner(ReasonedPruner):
    """Stop a trial whose clock has passed the ``rank``-th best time to target so far.

    Adaptive capping (Hutter et al., ParamILS, 2009) for time-to-target studies: a trial
    still short of the target after that many seconds can no longer finish among the
    ``rank`` fastest, so the rest of its run is wasted compute. ``slack`` lets it run that
    fraction longer. Times to target are the ``clock`` metric at the last report of COMPLETE
    trials that reached the target (``reached_target``; the reporter stops them at that
    report). Nothing is capped until ``rank`` trials have reached the target; the target is
    checked before the pruner, so a trial crossing it at the cap still completes. Through
    ``hpo`` a capped trial ends COMPLETE with a censored time to target (its reason says
    ``censored``; see ``TrialReporter.target_attrs``); in a plain Optuna study it is pruned.
    """

    def __init__(self, clock: str = "train_seconds", rank: int = 1, slack: float = 0.0) -> None:
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        if slack < 0:
            raise ValueError(f"slack must be >= 0, got {slack}")
        self.clock, self.rank, self.slack = clock, rank, slack
        self._sorted: dict[str, tuple[int, list[float]]] = {}  # per study: (COMPLETE count, times)

    def judge(self, study: optuna.Study, trial: FrozenTrial,
              notes: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Why the trial should be capped now, or None (see :meth:`ReasonedPruner.judge`)."""
        elapsed = trial.system_attrs.get(metric_key(trial.last_step or 0), {}).get(self.clock)
        if elapsed is None:
            return None
        times = self._finished_times(study)
        if len(times) < self.rank:
            return None
        cap = times[self.rank - 1] * (1.0 + self.slack)
        if elapsed < cap:
            return None
        return {"pruner": "time_cap", "step": trial.last_step, "clock": self.clock, "value": elapsed,
                "cap": cap, "rank": self.rank, "censored": True,
                "why": f"{elapsed:.4g} s of {self.clock} without reaching the target, "
                       f"cap {cap:.4g} s (time to target of the #{self.rank} trial x {1 + self.slack:g})"}

    def _finished_times(self, study: optuna.Study) -> list[float]:
        """Sorted times to target of the COMPLETE trials; re-read only when that count changes
        (finished trials never change), not at every report."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        cached = self._sorted.get(study.study_name)
        if cached is None or cached[0] != len(done):
            last = [t.system_attrs.get(metric_key(t.last_step or 0), {}) for t in done
                    if t.user_attrs.get(REACHED_ATTR)]
            cached = (len(done), sorted(m[self.clock] for m in last if self.clock in m))
            self._sorted[study.study_name] = cached
        return cached[1]


class AnyPruner(ReasonedPruner):
    """Prune when any of the given pruners says so, with the reason of the first that does
    (for one of Optuna's pruners: its name, the step and the value)."""

    def __init__(self, pruners: list[tuple[str, BasePruner]]) -> None:
        self.pruners = pruners

    def judge(self, study: optuna.Study, trial: FrozenTrial,
              notes: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The first reason one of the pruners gives, or None (see :meth:`ReasonedPruner.judge`)."""
        for name, pruner in self.pruners:
            if isinstance(pruner, ReasonedPruner):
                reason = pruner.judge(study, trial, notes)
                if reason is not None:
                    return reason
            elif pruner.prune(study, trial):
                return {"pruner": name, "step": trial.last_step,
                        "value": trial.intermediate_values.get(trial.last_step)}
        return None


def _patient(**options: Any) -> BasePruner:
    """``PatientPruner``; ``wrapped`` is a pruner component (name + options) or absent."""
    opts = dict(options)
    wrapped = opts.pop("wrapped", None)
    check_options(optuna.pruners.PatientPruner, opts, skip=("wrapped_pruner",))
    inner = None
    if wrapped is not None:
        if not isinstance(wrapped, dict) or wrapped.get("name") not in REGISTRY or set(wrapped) - {"name", "options"}:
            raise OptionError("wrapped", f"{wrapped!r} is not a pruner (fix: e.g. wrapped: {{name: median, "
                                         f"options: {{}}}}, name one of {', '.join(REGISTRY)})")
        try:
            inner = build_one(Component.model_validate(wrapped))
        except OptionError as e:
            raise OptionError(f"wrapped.options.{e.field}", str(e)) from None
    return optuna.pruners.PatientPruner(inner, **opts)


REGISTRY: dict[str, Any] = {
    "nop": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "patient": _patient,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "kill_rule": KillRulePruner,
    "time_cap": TimeCapPruner,
}


def build_one(component: Component, clock: str | None = None) -> BasePruner:
    """One pruner from its spec component; its options are checked first (:mod:`hpo.specs.options`);
    ``time_cap`` reads the study's ``clock`` unless its options name one.

    Raises:
        OptionError: an option the pruner cannot take (``field`` names it).
        TypeError, ValueError: the pruner's own constructor refused the options.
    """
    factory = REGISTRY[component.name]
    if factory is not _patient:
        check_options(factory, component.options)
    options = dict(component.options)
    if component.name == "time_cap" and clock is not None:
        options.setdefault("clock", clock)
    return factory(**options)


def build_pruner(components: list[Component], source: str | None = None, clock: str | None = None) -> BasePruner:
    """The spec's pruner list as one pruner (Nop for none, "any" for several).

    Args:
        components: the spec's ``pruners``.
        source: the spec file's name: problems then become one :class:`SpecError` line
            ``source: pruners[i].options.NAME: problem (fix: ...)``; None raises them as they are.
        clock: the study's clock (the default of ``time_cap``).
    """
    if not components:
        return optuna.pruners.NopPruner()
    built = []
    for i, c in enumerate(components):
        try:
            built.append((c.name, build_one(c, clock)))
        except OptionError as e:
            if source is None:
                raise
            raise SpecError(f"{source}: pruners[{i}].options.{e.field}: {e}") from None
        except (TypeError, ValueError) as e:
            if source is None:
                raise
            raise SpecError(f"{source}: pruners[{i}].options: {first_line(e)} "
                            f"(fix: see the options of {c.name} in the README)") from None
    return AnyPruner(built)


def required_metrics(components: list[Component]) -> list[tuple[str, str]]:
    """(spec field, metric) that the spec's pruners read from each report, beyond the curve."""
    out = []
    for i, c in enumerate(components):
        where = f"pruners[{i}].options"
        if c.name == "kill_rule":
            metric = c.options.get("metric", "val_ppl")
            if metric is not None:
                out.append((f"{where}.metric", metric))
            index = c.options.get("index", "tokens")
            if index != "tokens":  # tokens falls back on the step
                out.append((f"{where}.index", index))
        elif c.name == "time_cap" and "clock" in c.options:
            out.append((f"{where}.clock", c.options["clock"]))
    return out


def baseline_trials(components: list[Component]) -> list[int]:
    """The trial numbers that kill rules compare against (``baseline_trial``)."""
    return [c.options["baseline_trial"] for c in components
            if c.name == "kill_rule" and c.options.get("baseline_trial") is not None]
