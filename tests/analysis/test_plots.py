"""``hpo plot``: Optuna's figures per objective, our curves and time-vs-loss, file output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna
import pytest
from made_studies import shared_sweeps

from hpo.cli import main
from hpo.errors import HpoError
from hpo.analysis.plots import figure, save
from hpo._optuna import trial_metrics


@pytest.fixture
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_sweeps(tmp_path_factory)


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


@pytest.mark.parametrize("name", ["so", "mo"])
def test_curves_have_one_line_per_trial_pruned_ones_dotted(url: str, name: str) -> None:
    study = _study(url, name)
    fig = figure(study, "curves")
    trials = study.get_trials()
    assert len(fig.data) == len(trials)
    for trace, t in zip(fig.data, trials):
        assert trace.name == f"trial {t.number} ({t.state.name})"
        assert list(trace.x) == sorted(t.intermediate_values)
        assert list(trace.y) == [t.intermediate_values[s] for s in sorted(t.intermediate_values)]
        assert (trace.line.dash == "dot") == (t.state.name == "PRUNED")


def test_time_vs_loss_puts_train_seconds_on_x(url: str) -> None:
    study = _study(url, "mo")
    fig = figure(study, "time-vs-loss")
    t = study.get_trials()[0]
    m = trial_metrics(t.system_attrs)
    assert list(fig.data[0].x) == [m[s]["train_seconds"] for s in sorted(m)]
    assert fig.layout.xaxis.title.text == "train_seconds" and fig.layout.yaxis.title.text == "val_loss"
    ppl = figure(study, "curves", metric="val_ppl")
    assert list(ppl.data[0].y) == [m[s]["val_ppl"] for s in sorted(m)]


@pytest.mark.parametrize("kind", ["history", "importance", "slice"])
def test_optuna_figures_plot_the_chosen_objective(url: str, kind: str) -> None:
    fig = figure(_study(url, "mo"), kind, metric="train_seconds")
    assert fig.layout.title.text.endswith(" - mo") and fig.data
    if kind == "history":
        assert fig.data[0].name == "train_seconds"
    if kind == "importance":
        assert fig.data[0].y[-1] == "width"  # Optuna draws the most important bar last (on top)


def test_pareto_front(url: str) -> None:
    fig = figure(_study(url, "mo"), "pareto")
    assert fig.layout.xaxis.title.text == "val_loss" and fig.layout.yaxis.title.text == "train_seconds"
    with pytest.raises(HpoError, match="--kind pareto: study 'so' has one objective"):
        figure(_study(url, "so"), "pareto")


def test_save_html_and_clear_errors_for_other_files(url: str, tmp_path: Path) -> None:
    fig = figure(_study(url, "so"), "history")
    out = save(fig, tmp_path / "a" / "history.html")
    assert "plotly" in out.read_text()[:5000].lower() and out.stat().st_size > 1_000_000  # works offline
    with pytest.raises(HpoError, match=r"unknown file type '\.pdf' \(fix: end it in \.html or \.png\)"):
        save(fig, tmp_path / "x.pdf")
    if importlib.util.find_spec("kaleido") is None:
        with pytest.raises(HpoError, match="PNG needs the kaleido package"):
            save(fig, tmp_path / "x.png")


def test_cli_plot(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tvl.html"
    assert main(["plot", "--study", "so", "--storage", url, "--kind", "time-vs-loss", "--out", str(out)]) == 0
    assert out.exists() and "time vs loss - so" in out.read_text()
    assert main(["plot", "--study", "so", "--storage", url, "--kind", "pareto", "--out", str(out)]) == 1
    assert "one objective" in capsys.readouterr().err
