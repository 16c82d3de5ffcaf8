"""A single-objective view of a study's curves, for pruners.

Optuna's pruners need ``study.direction`` and read every trial's intermediate values at
each check; Optuna refuses both in multi-objective studies and the reads cost milliseconds
per report in a large study. :class:`CurveView` is a storage that shows pruners a study
with one direction (the curve's), keeps finished trials (which never change) in memory,
re-reads the others at most every ``refresh_seconds``, and serves the running trial from
the reporter's own record. Writes (e.g. successive halving's rung attributes, kill-rule
reasons) go through to the real storage.
"""

from __future__ import annotations

import bisect
import copy
import time
from typing import Any, Container, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class CurveView(BaseStorage):
    def __init__(
        self,
        base: BaseStorage,
        study_id: int,
        direction: str,
        objective_is_curve: bool,
        refresh_seconds: float = 5.0,
    ) -> None:
        self._base = base
        self._study_id = study_id
        self._direction = StudyDirection.MINIMIZE if direction == "minimize" else StudyDirection.MAXIMIZE
        self._objective_is_curve = objective_is_curve
        self._refresh_seconds = refresh_seconds
        self._finished: dict[int, FrozenTrial] = {}
        self._others: dict[int, FrozenTrial] = {}
        self._current: FrozenTrial | None = None
        self._lists: dict[tuple[int, ...] | None, list[FrozenTrial]] = {}
        self._read_at = -float("inf")

    # --- the running trial, kept by the reporter -------------------------------------------
    def begin(self, trial: FrozenTrial) -> None:
        self._current = trial
        self.refresh()

    def record(self, step: int, value: float, metrics: dict[str, float]) -> FrozenTrial:
        assert self._current is not None
        self._current.intermediate_values[step] = value
        self._current._system_attrs[f"hpo:m:{step}"] = metrics
        return self._current

    def _snapshot(self) -> FrozenTrial:
        """The running trial as read now: later writes must not show through, as with a real
        storage (successive halving reads the trials, then writes the trial's rung, then counts
        the rung values it read plus the trial's own; a live object would count it twice)."""
        assert self._current is not None
        t = copy.copy(self._current)
        t.intermediate_values = dict(t.intermediate_values)
        t._system_attrs = dict(t._system_attrs)
        t._user_attrs = dict(t._user_attrs)
        return t

    # --- reading ----------------------------------------------------------------------------
    def refresh(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._read_at < self._refresh_seconds:
            return
        self._read_at = now
        self._others = {}
        self._lists = {}
        for t in self._base.get_all_trials(self._study_id, deepcopy=False):
            if t._trial_id in self._finished:
                continue
            if t.state in _FINISHED:
                self._finished[t._trial_id] = self._single(t)
            elif self._current is None or t._trial_id != self._current._trial_id:
                self._others[t._trial_id] = t

    def _single(self, t: FrozenTrial) -> FrozenTrial:
        """A finished trial with one value: its own if it is the curve, else its last report."""
        if self._objective_is_curve or t.state != TrialState.COMPLETE:
            return t
        t = copy.copy(t)
        last = t.intermediate_values.get(t.last_step) if t.last_step is not None else None
        t._values = None if last is None else [last]
        return t

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        self.refresh(force=False)
        key = None if states is None else tuple(sorted(s.value for s in states))  # type: ignore[attr-defined]
        others = self._lists.get(key)
        if others is None:  # rebuilt only after a refresh: finished trials never change
            others = sorted([*self._finished.values(), *self._others.values()], key=lambda t: t.number)
            if states is not None:
                others = [t for t in others if t.state in states]
            self._lists[key] = others
        trials = list(others)
        if self._current is not None and (states is None or self._current.state in states):
            bisect.insort(trials, self._snapshot(), key=lambda t: t.number)
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trial(self, trial_id: int) -> FrozenTrial:
        if self._current is not None and trial_id == self._current._trial_id:
            return self._current
        return self._finished.get(trial_id) or self._base.get_trial(trial_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return [self._direction]

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._study_id

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._base.get_study_name_from_id(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._base.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._base.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[optuna.study.FrozenStudy]:
        return self._base.get_all_studies()

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._base.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    # --- writing: through to the real storage, mirrored on the running trial ----------------
    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._base.set_trial_system_attr(trial_id, key, value)
        if self._current is not None and trial_id == self._current._trial_id:
            self._current._system_attrs[key] = value

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._base.set_trial_user_attr(trial_id, key, value)
        if self._current is not None and trial_id == self._current._trial_id:
            self._current._user_attrs[key] = value

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._base.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._base.set_study_system_attr(study_id, key, value)

    # --- not a view's business ------------------------------------------------------------
    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a pruner's view of the study cannot create or change trials")

    create_new_study = delete_study = create_new_trial = _refuse

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        self._refuse()

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self._refuse()

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._refuse()


def view_study(view: CurveView, study: optuna.Study, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """An ``optuna.Study`` over the view, so pruners get the API they expect."""
    return optuna.Study(study.study_name, storage=view, sampler=study.sampler, pruner=pruner)
