"""One trial (:mod:`hpo.run.trial`): the metrics a spec needs from reports, a run's length, and a
deterministic objective's config that is never trained twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpo.run.loop import optimize
from hpo.run.session import Session
from hpo.specs.models import parse_spec
from hpo.run.trial import missing_metrics, run_length

BASE = {"study": "t", "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
        "fixed": {"steps": 4}, "space": {"width": {"type": "categorical", "choices": [32, 64]}}}


def test_missing_metrics_names_the_spec_field_that_reads_each_one() -> None:
    spec = parse_spec({**BASE, "target": {"metric": "val_loss", "below": 3.0}, "trial_budget_seconds": 60,
                       "pruners": [{"name": "kill_rule", "options": {"metric": "val_ppl", "baseline_trial": 0}}]},
                      "test")
    assert missing_metrics(spec, {"val_loss", "val_ppl", "tokens"}) == []
    assert missing_metrics(spec, {"val_loss", "tokens"}) == [("pruners[0].options.metric", "val_ppl")]
    assert ("target.metric", "val_loss") in missing_metrics(spec, {"tokens"})


def test_run_length_is_the_configs_length_key_when_an_int() -> None:
    session = Session(spec=parse_spec(BASE, "test"), study=None, storage=None, train=None, pruner=None)  # type: ignore[arg-type]
    assert run_length(session, {"max_steps": 500}) == 500
    assert run_length(session, {"max_steps": "500"}) is None
    assert run_length(session, {"max_steps": True}) is None
    assert run_length(session, {}) is None


def test_a_deterministic_objective_copies_a_config_already_run(tmp_path: Path) -> None:
    spec = parse_spec({**BASE, "deterministic": True, "n_trials": 4,
                       "sampler": {"name": "random", "options": {"seed": 0}}}, "test")
    study = optimize(spec, f"sqlite:///{tmp_path / 'studies.db'}", heartbeat=0)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    copies = [t for t in trials if "copy_of" in t.user_attrs]
    assert len(copies) == 2  # two choices, four trials: two are copies
    for t in copies:
        source = trials[t.user_attrs["copy_of"]]
        assert source.params == t.params and source.values == t.values and "copy_of" not in source.user_attrs
        assert "not trained again" in t.user_attrs["stop_reason"]


def test_two_trials_given_one_config_at_once_do_not_wait_for_each_other(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The older trains; the newer waits for it and copies it (before: both waited forever)."""
    import io
    import threading

    import optuna

    from hpo.run import trial as trial_module
    from hpo.run.trial import holder

    monkeypatch.setattr(trial_module, "HOLDER_POLL_SECONDS", 0.05)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'h.db'}")
    dist = {"width": optuna.distributions.CategoricalDistribution([32, 64])}
    for _ in range(2):
        study.enqueue_trial({"width": 32})
    older, newer = study.ask(dist), study.ask(dist)
    session = Session(spec=parse_spec(BASE, "test"), study=study, storage=None, train=None, pruner=None)  # type: ignore[arg-type]
    mine: list[object] = []
    first = threading.Thread(target=lambda: mine.append(holder(session, older, io.StringIO())), daemon=True)
    first.start()
    first.join(2)
    assert not first.is_alive() and mine == [None]  # not waiting for the newer one: it trains
    found: list[object] = []
    waiting = threading.Thread(target=lambda: found.append(holder(session, newer, io.StringIO())), daemon=True)
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and not found  # the newer waits for the older ...
    study.tell(older, 1.0)
    waiting.join(5)
    assert [t.number for t in found] == [older.number]  # ... and takes its result
