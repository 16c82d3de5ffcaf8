"""A single-objective view of a study's curves, for pruners.

Optuna's pruners need ``study.direction`` and read every trial's intermediate values at
each check; Optuna refuses both in multi-objective studies and the reads cost milliseconds
per report in a large study. :class:`CurveView` is a storage that shows pruners a study
with one direction (the curve's), keeps finished trials (which never change) in memory,
re-reads the others at most every ``refresh_seconds``, and serves the running trial as the
reporter last showed it (a FrozenTrial of its own, built for each question).

The view is read-only: it writes nothing to the real storage and changes no trial. The
attributes a pruner sets on the running trial through the storage API (successive
halving's rung values, the reason a pruner inside ``patient`` gives) are held until the
reporter takes them (:meth:`CurveView.take_writes`) and writes them with the reason.
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

from hpo._optuna import trial_id

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class CurveView(BaseStorage):
    """A study's single-objective, read-only view for pruners (see the module docstring).

    Args:
        base: the study's storage.
        study_id: the study's id in it.
        direction: the curve's direction, ``"minimize"`` or ``"maximize"``.
        objective_is_curve: whether the study's one objective is the curve metric (else a
            COMPLETE trial's value, for pruners, is its last curve value).
        refresh_seconds: how long unfinished trials of other workers are served from memory.
    """

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
        self._current_id: int | None = None
        self._lists: dict[tuple[int, ...] | None, list[FrozenTrial]] = {}
        self._read_at = -float("inf")
        self._user: dict[str, Any] = {}
        self._system: dict[str, Any] = {}

    # --- the running trial, shown by the reporter -------------------------------------------
    def begin(self, trial: FrozenTrial) -> None:
        """A new running trial: shown as ``trial``; everything else re-read."""
        self.show(trial)
        self.refresh()

    def show(self, trial: FrozenTrial) -> None:
        """The running trial as pruners see it until the next call; the view never changes it
        (a pruner that reads the trials, then sets an attribute, counts what it read)."""
        self._current, self._current_id = trial, trial_id(trial)

    def take_writes(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (user, system) attributes pruners set on the running trial since the last call."""
        writes = (self._user, self._system)
        self._user, self._system = {}, {}
        return writes

    # --- reading ----------------------------------------------------------------------------
    def refresh(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._read_at < self._refresh_seconds:
            return
        self._read_at = now
        self._others = {}
        self._lists = {}
        for t in self._base.get_all_trials(self._study_id, deepcopy=False):
            tid = trial_id(t)
            if tid in self._finished:
                continue
            if t.state in _FINISHED:
                self._finished[tid] = self._single(t)
            elif tid != self._current_id:
                self._others[tid] = t

    def _single(self, t: FrozenTrial) -> FrozenTrial:
        """A finished trial with one value: its own if it is the curve, else its last report."""
        if self._objective_is_curve or t.state != TrialState.COMPLETE:
            return t
        last = t.intermediate_values.get(t.last_step) if t.last_step is not None else None
        t = copy.copy(t)
        t.values = None if last is None else [last]
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
            bisect.insort(trials, self._current, key=lambda t: t.number)
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trial(self, trial_id: int) -> FrozenTrial:
        if self._current is not None and trial_id == self._current_id:
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

    # --- writing: held for the reporter ----------------------------------------------------
    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._running(trial_id)
        self._system[key] = value

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._running(trial_id)
        self._user[key] = value

    def _running(self, trial_id: int) -> None:
        if trial_id != self._current_id:
            raise RuntimeError("a pruner's view of the study sets attributes of the running trial only")

    # --- not a view's business ------------------------------------------------------------
    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a pruner's view of the study cannot create or change trials or the study")

    create_new_study = delete_study = create_new_trial = set_study_user_attr = set_study_system_attr = _refuse

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
