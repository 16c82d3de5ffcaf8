"""The plain-text tables of `hpo studies`, `hpo show` and the end-of-run summary."""

from __future__ import annotations

from pathlib import Path

import optuna

from hpo.storage import open_storage
from hpo.tables import studies_table, summary, trials_table


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
