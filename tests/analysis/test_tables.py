"""The plain-text tables of `hpo studies`, `hpo show` and the end-of-run summary."""

from __future__ import annotations

from pathlib import Path

import optuna

from hpo.storage.backend import open_storage
from hpo.analysis.tables import studies_table, summary, trials_table


def test_tables_while_every_trial_is_running(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 't.db'}")
    study = optuna.create_study(study_name="busy", storage=storage)
    study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    table = trials_table(study)
    assert "RUNNING" in table and "x" in table
    assert summary(study) == "study busy: 1 RUNNING\nno COMPLETE trial yet"
    assert "busy" in studies_table(storage)


def test_summary_lists_the_pareto_front(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="mo", storage=open_storage(f"sqlite:///{tmp_path / 'm.db'}"),
                                directions=["minimize", "minimize"])
    study.set_metric_names(["val_loss", "train_seconds"])
    for x, y in [(1.0, 5.0), (2.0, 2.0), (3.0, 3.0)]:
        study.add_trial(optuna.create_trial(values=[x, y], params={"x": x},
                                            distributions={"x": optuna.distributions.FloatDistribution(0, 5)}))
    text = summary(study)
    assert "pareto front:" in text
    assert "val_loss=1, train_seconds=5" in text and "val_loss=2, train_seconds=2" in text
    assert "val_loss=3" not in text, "a dominated trial is not on the front"


def _ttt_study(tmp_path: Path) -> optuna.Study:
    """Two synthetic trials on time to val_loss < 3.2 within 0.2 s: lr 0.03 gets there, lr 0.001 does not."""
    import io

    from hpo.run.loop import optimize
    from hpo.specs.models import parse_spec

    spec = parse_spec({
        "study": "ttt", "objective": "objectives.synthetic:train", "metrics": {"time_to_target": "minimize"},
        "target": {"metric": "val_loss", "below": 3.2}, "trial_budget_seconds": 0.2, "n_trials": 2,
        "fixed": {"steps": 40}, "sampler": {"name": "random", "options": {"seed": 0}},
        "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
                  "width": {"type": "categorical", "choices": [64]}},
        "enqueue": [{"lr": 0.001, "width": 64}, {"lr": 0.03, "width": 64}]}, "test")
    return optimize(spec, f"sqlite:///{tmp_path / 'ttt.db'}", out=io.StringIO())


def test_every_table_marks_a_missed_target_as_censored(tmp_path: Path) -> None:
    from hpo.analysis.report import build_report, render

    study = _ttt_study(tmp_path)
    missed, reached = study.trials
    assert missed.user_attrs["reached_target"] is False and reached.user_attrs["reached_target"] is True
    assert missed.values[0] > 0.2 > reached.values[0]  # above the budget: a ranking value, not a time
    text = summary(study)
    assert "target val_loss < 3.2: reached by 1 of 2 ranked trials; 1 missed it" in text
    assert f"best trial:\n  trial 1: time_to_target={reached.values[0]:.3f} (clock: train_seconds)" in text
    shown = trials_table(study)
    assert ">0.200 s, missed" in shown and f"{missed.values[0]:.3f}" not in shown
    assert "1/2" in studies_table(study._storage)
    report = render(build_report(study), "table")
    assert ">0.200 s, missed" in report and f"{missed.values[0]:.4g}" not in report
    assert missed.user_attrs["outcome"].startswith("censored: did not reach val_loss < 3.2 within 0.200 s")
    assert reached.user_attrs["outcome"] == f"reached val_loss < 3.2 in {reached.values[0]:.3f} s of train_seconds"
