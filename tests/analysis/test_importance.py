"""``hpo importance``: the parameter a synthetic objective depends on most ranks first."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from made_studies import known_mo_study, shared_sweeps

from hpo.cli import main
from hpo.errors import HpoError
from hpo.analysis.importance import importances


@pytest.fixture
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_sweeps(tmp_path_factory)


@pytest.mark.parametrize("evaluator", ["ped-anova", "fanova"])
def test_lr_ranks_first_for_the_loss(url: str, evaluator: str) -> None:
    df = importances(optuna.load_study(study_name="so", storage=url), evaluator)
    assert list(df.columns) == ["val_loss"]
    assert df.index[0] == "lr" and df.loc["lr", "val_loss"] > 0.5
    assert sorted(df.index) == ["dropout", "lr", "width"]


def test_each_objective_has_its_own_column(url: str) -> None:
    df = importances(optuna.load_study(study_name="mo", storage=url))
    assert list(df.columns) == ["val_loss", "train_seconds", "pareto front"]
    assert df["val_loss"].idxmax() == "lr"
    assert df["train_seconds"].idxmax() == "width"
    only = importances(optuna.load_study(study_name="mo", storage=url), "fanova", metric="train_seconds")
    assert list(only.columns) == ["train_seconds"] and only.index[0] == "width"


def test_bad_input_is_one_line(url: str, tmp_path: Path) -> None:
    study = optuna.load_study(study_name="so", storage=url)
    with pytest.raises(HpoError, match=r"--metric loss: not an objective .* \(fix: one of val_loss\)"):
        importances(study, metric="loss")
    with pytest.raises(HpoError, match="--evaluator shap: unknown"):
        importances(study, evaluator="shap")
    empty = optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path / 'e.db'}")
    with pytest.raises(HpoError, match="has 0 COMPLETE trials; importance needs at least 2"):
        importances(empty)


def test_cli_prints_a_ranked_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["importance", "--study", "mo", "--storage", url, "--evaluator", "fanova"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("parameter importances (fanova, normalised per column):")
    assert "val_loss" in out and "train_seconds" in out
    assert main(["importance", "--study", "so", "--storage", url, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[:2][1].startswith("lr,")


def test_two_trial_study_works(tmp_path: Path) -> None:
    df = importances(known_mo_study(f"sqlite:///{tmp_path / 'k.db'}"))
    assert list(df.index) == ["lr"]


def test_optunas_caveats_are_one_note_not_a_warning_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A conditional parameter seen in one trial makes PED-ANOVA warn per objective; hpo says it once."""
    import warnings

    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = optuna.create_study(study_name="cond", storage=url, directions=["minimize", "minimize"])
    x, mom = optuna.distributions.FloatDistribution(0, 1), optuna.distributions.FloatDistribution(0.5, 0.9)
    study.add_trials([optuna.create_trial(values=[i / 8, 1 - i / 8], params={"x": i / 8, **({"mom": 0.7} if i == 3 else {})},
                                          distributions={"x": x, **({"mom": mom} if i == 3 else {})}) for i in range(8)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = importances(study)
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]
    assert any("may be inaccurate" in n for n in df.attrs["notes"])
    assert main(["importance", "--study", "cond", "--storage", url]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: ") and "Warning" not in err, err
