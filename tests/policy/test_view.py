"""The pruners' view of a study: one direction, finished trials cached, the running trial as shown, read-only."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpo._optuna import storage_of, study_id, trial_id
from hpo.storage.backend import open_storage
from hpo.policy.view import CurveView, view_study

X = {"x": optuna.distributions.FloatDistribution(0, 1)}


def _study(tmp_path: Path) -> optuna.Study:
    """Two objectives; trial 0 COMPLETE (curve ends at 0.5, values 9 and 1), trial 1 running."""
    storage = open_storage(f"sqlite:///{tmp_path / 'v.db'}")
    study = optuna.create_study(study_name="v", storage=storage, directions=["minimize", "minimize"])
    study.add_trial(create_trial(values=[9.0, 1.0], params={"x": 0.5}, distributions=X,
                                 intermediate_values={1: 0.8, 2: 0.5}))
    study.ask(X)
    return study


def _view(study: optuna.Study, objective_is_curve: bool = False, **kw: float) -> tuple[CurveView, optuna.Study]:
    storage = storage_of(study)
    running = study.get_trials(states=(TrialState.RUNNING,))[0]
    view = CurveView(storage, study_id(study), "maximize", objective_is_curve, **kw)
    view.begin(running)
    return view, view_study(view, study, optuna.pruners.NopPruner())


def test_one_direction_and_the_curve_as_a_finished_trials_value(tmp_path: Path) -> None:
    study = _study(tmp_path)
    _, single = _view(study)
    assert single.direction == optuna.study.StudyDirection.MAXIMIZE
    done = single.get_trials(states=(TrialState.COMPLETE,))
    assert [t.value for t in done] == [0.5]  # its last curve value, not its first objective
    assert study.trials[0].values == [9.0, 1.0], "the study's own trial is unchanged"
    _, as_is = _view(study, objective_is_curve=True)
    assert as_is.get_trials(states=(TrialState.COMPLETE,))[0].values == [9.0, 1.0]


def test_the_running_trial_is_served_as_shown_and_never_changed(tmp_path: Path) -> None:
    study = _study(tmp_path)
    view, single = _view(study)
    running = study.get_trials(states=(TrialState.RUNNING,))[0]
    shown = optuna.trial.FrozenTrial(number=running.number, state=TrialState.RUNNING, value=None,
                                     datetime_start=running.datetime_start, datetime_complete=None,
                                     params={"x": 0.1}, distributions=X, user_attrs={}, system_attrs={"a": 1},
                                     intermediate_values={1: 0.9}, trial_id=trial_id(running))
    view.show(shown)
    assert single.get_trials(deepcopy=False)[1] is shown
    view.set_trial_system_attr(trial_id(running), "completed_rung_0", 0.9)  # successive halving's write
    view.set_trial_user_attr(trial_id(running), "note", "n")
    assert shown.system_attrs == {"a": 1} and shown.user_attrs == {}
    assert view.take_writes() == ({"note": "n"}, {"completed_rung_0": 0.9})
    assert view.take_writes() == ({}, {})
    fresh = study.get_trials(states=(TrialState.RUNNING,))[0]
    assert "completed_rung_0" not in fresh.system_attrs and "note" not in fresh.user_attrs, "nothing is written"


def test_writes_anywhere_else_are_refused(tmp_path: Path) -> None:
    study = _study(tmp_path)
    view, single = _view(study)
    finished = trial_id(study.trials[0])
    with pytest.raises(RuntimeError, match="running trial only"):
        view.set_trial_user_attr(finished, "k", 1)
    for call in (lambda: single.set_user_attr("k", 1), lambda: single.ask(),
                 lambda: view.set_trial_intermediate_value(finished, 3, 0.1),
                 lambda: view.set_trial_state_values(finished, TrialState.FAIL)):
        with pytest.raises(RuntimeError, match="cannot create or change"):
            call()


def test_other_workers_trials_are_reread_at_most_every_refresh(tmp_path: Path) -> None:
    study = _study(tmp_path)
    _, single = _view(study, refresh_seconds=3600)
    assert len(single.get_trials(deepcopy=False)) == 2
    study.ask(X)  # another worker's new trial
    assert len(single.get_trials(deepcopy=False)) == 2, "within refresh_seconds: as read before"
    _, again = _view(study, refresh_seconds=0)
    assert len(again.get_trials(deepcopy=False)) == 3
