"""``hpo report``: contents against hand-made trials, formats round-trip, the CLI end to end."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
import pandas as pd
import pytest
from made_studies import known_mo_study, known_study, run_synthetic, shared_sweeps

from hpo.storage.bulk import read_trials
from hpo.cli import main
from hpo.errors import HpoError
from hpo.analysis.report import build_report, render
from hpo._optuna import trial_metrics


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def test_ranked_rows_counts_compute_and_reasons(url: str) -> None:
    report = build_report(known_study(url), axes=["width"])
    # Trial 1 has the best val_loss but missed the target: it ranks after both that reached it.
    assert [r["number"] for r in report.trials] == [4, 0, 1, 2, 3]
    assert [r["rank"] for r in report.trials] == [1, 2, 3, None, None]
    assert report.counts == {"COMPLETE": 3, "FAIL": 1, "PRUNED": 1}
    assert report.reached == {"reached": 2, "missed": 1}
    best = report.trials[0]
    assert best["val_loss"] == 2.8 and best["lr"] == 0.005 and best["width"] == 64
    assert best["train_seconds"] == 30.0 and best["tokens"] == 3000 and best["val_ppl"] == 16.4
    by_number = {r["number"]: r for r in report.trials}
    assert by_number[1]["censored"] is True and by_number[1]["censored_at"] == 20.0
    assert by_number[1]["reason"].startswith("missed the target: time to target over 20.0 s")
    assert by_number[0]["reached_target"] is True and by_number[0]["censored"] is False
    assert by_number[2]["val_loss"] is None  # a PRUNED trial has no objective value of its own
    assert by_number[2]["reason"].startswith("kill_rule: pruned at step 2")
    assert "vs reference 3.2" in by_number[2]["reason"]
    assert by_number[3]["reason"] == "RuntimeError: boom"
    # The failed trial recorded no attributes: its last report (step 2) tells what it cost.
    assert by_number[3]["train_seconds"] == 4.0 and by_number[3]["tokens"] == 400.0
    c = report.compute
    # Median COMPLETE trial: 20 s, 2000 tokens; the one pruned trial used 4 s, 400 tokens.
    assert c["seconds_saved"] == 16.0 and c["tokens_saved"] == 1600.0 and c["pruned"] == 1
    assert c["seconds_spent"] == 10 + 20 + 4 + 4 + 30 and c["tokens_spent"] == 6800.0


def test_top1_per_axis_compares_medians_and_puts_a_censored_median_last(url: str) -> None:
    top = build_report(known_study(url), axes=["width", "lr"]).top1
    assert top["width"]["width"] == 64 and top["width"]["basis"] == "all trials with the value"
    assert top["width"]["by_value"] == [
        {"width": 64, "val_loss": 3.0, "min": 2.8, "max": 3.0, "n": 2, "trials": [0, 4], "reached": 2,
         "median_censored": False, "killed": 1},
        {"width": 128, "val_loss": 2.5, "min": 2.5, "max": 2.5, "n": 1, "trials": [1], "reached": 0,
         "median_censored": True, "censored_at": 20.0, "closest": 2.5, "killed": 0},
    ]
    assert top["lr"]["by_value"][-1] == {"lr": 0.001, "val_loss": None, "n": 0, "trials": [2], "killed": 1}


def test_unknown_axis_or_metric_is_one_line(url: str) -> None:
    study = known_study(url)
    with pytest.raises(HpoError, match=r"--axes depth: no trial has this parameter \(fix: one of lr, width\)"):
        build_report(study, axes=["depth"])
    with pytest.raises(HpoError, match="--metric loss: not an objective of study .known."):
        build_report(study, axes=["lr"], metric="loss")


def test_multi_objective_puts_the_pareto_front_first(url: str) -> None:
    report = build_report(known_mo_study(url))
    assert report.pareto_front == [1, 2, 3]
    # NSGA-II's order inside a front: the extremes (infinite crowding distance) first
    assert [(r["number"], r["front"]) for r in report.trials][2:] == [(3, 1), (0, 2)]
    assert {r["number"] for r in report.trials[:2]} == {1, 2}
    assert "pareto front: trials 1, 2, 3" in render(report, "table")


def test_csv_json_and_jsonl_round_trip(url: str) -> None:
    report = build_report(known_study(url), axes=["width"])
    from_json = json.loads(render(report, "json"))
    assert from_json["counts"] == report.counts and from_json["top1"]["width"]["width"] == 64
    assert from_json["trials"] == report.trials
    assert [json.loads(line) for line in render(report, "jsonl").splitlines()] == report.trials
    csv = pd.read_csv(io.StringIO(render(report, "csv")))
    assert csv.astype(object).where(csv.notna(), None).to_dict("records") == report.trials


def test_table_names_everything_a_person_looks_for(url: str) -> None:
    text = render(build_report(known_study(url), axes=["width"]), "table")
    assert text.startswith("study known: minimize val_loss\ntrials: 3 COMPLETE, 1 FAIL, 1 PRUNED\n")
    assert "16.0 s saved by pruning 1 trials" in text and "1,600 saved" in text
    assert "target: reached by 2 of 3 ranked trials; 1 missed it" in text
    assert "top-1 width = 64 (median val_loss over its runs; all trials with the value)" in text
    assert "width=128: >20.0 s, missed (closest 2.5) (1 runs, reached 0/1; trials 1)" in text
    assert ">20.0 s, missed (closest 2.5)" in text
    assert "RuntimeError: boom" in text


def test_bulk_read_equals_optunas_trials(url: str) -> None:
    study = run_synthetic(url, "bulk", n_trials=6)
    assert read_trials(study, curves=True) == study.get_trials()
    light = read_trials(study)
    assert all(not t.intermediate_values and not any(k.startswith("hpo:m:") for k in t.system_attrs)
               for t in light)
    assert [t.user_attrs for t in light] == [t.user_attrs for t in study.get_trials()]


def test_report_works_on_a_journal_storage(tmp_path: Path) -> None:
    study = known_study(f"journal:{tmp_path / 'j.log'}")
    assert [r["number"] for r in build_report(study).trials] == [4, 0, 1, 2, 3]


def test_cli_report_on_a_synthetic_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = run_synthetic(url, "sweep", n_trials=12)
    out = tmp_path / "r" / "report.json"
    assert main(["report", "--study", "sweep", "--storage", url, "--format", "json", "--out", str(out),
                 "--axes", "width"]) == 0
    data = json.loads(out.read_text())
    states = [t.state.name for t in study.get_trials()]
    assert data["counts"] == {s: states.count(s) for s in sorted(set(states))}
    assert data["counts"].get("PRUNED", 0) > 0, "the median pruner should prune some synthetic trials"
    pruned = [r for r in data["trials"] if r["state"] == "PRUNED"]
    assert all(r["reason"].startswith("median: pruned at step") for r in pruned)
    assert data["compute"]["seconds_saved"] > 0
    assert data["trials"][0]["val_loss"] == study.best_value
    capsys.readouterr()
    assert main(["report", "--study", "sweep", "--storage", url, "--top", "3"]) == 0
    assert capsys.readouterr().out.count("COMPLETE") >= 3
    assert main(["report", "--study", "nope", "--storage", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hpo studies" in err


def test_continuous_axes_are_binned_by_quantile_and_ties_share_a_bin() -> None:
    from hpo.analysis.report import _axis_labels

    assert _axis_labels([float(v) for v in range(1, 11)], continuous=True) == [
        "1..2", "1..2", "3..4", "3..4", "5..6", "5..6", "7..8", "7..8", "9..10", "9..10"]
    ties = [0.5, 0.5, 0.5, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert _axis_labels(ties, continuous=True)[:5] == ["0.5"] * 4 + ["1..2"]
    assert _axis_labels([64, 128, 64], continuous=False) == [64, 128, 64]
    assert _axis_labels(["adamw", "muon"], continuous=False) == ["adamw", "muon"]


def test_bulk_read_on_postgresql(pg_url: str) -> None:
    study = known_study(pg_url, f"known_{uuid.uuid4().hex[:8]}")
    assert read_trials(study, curves=True) == study.get_trials()
    assert [r["number"] for r in build_report(study).trials] == [4, 0, 1, 2, 3]


def test_objective_metrics_of_pruned_trials_come_from_their_last_report(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """In the "mo" sweep train_seconds is an objective, so a pruned trial has no value and no
    attribute for it; the report reads its last report instead."""
    study = optuna.load_study(study_name="mo", storage=shared_sweeps(tmp_path_factory))
    rows = {r["number"]: r for r in build_report(study).trials}
    pruned = [t for t in study.get_trials() if t.state.name == "PRUNED"]
    assert pruned
    for t in pruned:
        m = trial_metrics(t.system_attrs)
        assert rows[t.number]["train_seconds"] == m[max(m)]["train_seconds"] > 0
    complete = [r for r in rows.values() if r["state"] == "COMPLETE"]
    assert build_report(study).compute["seconds_spent"] == pytest.approx(
        sum(r["train_seconds"] for r in complete) + sum(rows[t.number]["train_seconds"] for t in pruned))


def test_top1_per_axis_judges_the_baseline_and_its_one_factor_neighbours_only(url: str) -> None:
    """Seed 004's rule on a one-factor design: hidden=128 beats hidden=64 at the baseline's other
    settings; a lucky trial with hidden=64 AND another lr must not make 64 the axis' winner. A
    value whose runs were all killed is listed as killed."""
    hidden = CategoricalDistribution([64, 128, 256])
    lr = CategoricalDistribution([0.01, 0.1])
    study = optuna.create_study(study_name="axes", storage=url)
    study.set_metric_names(["val_ppl"])
    baseline = {"hidden": 128, "lr": 0.01}
    study.set_user_attr("hpo:spec", {"study": "axes", "objective": "objectives.synthetic:train",
                                     "metrics": {"val_ppl": "minimize"}, "enqueue": [baseline],
                                     "space": {"hidden": {"type": "categorical", "choices": [64, 128, 256]},
                                               "lr": {"type": "categorical", "choices": [0.01, 0.1]}}})
    rows = [(TrialState.COMPLETE, 40.0, 128, 0.01),   # the baseline
            (TrialState.COMPLETE, 44.0, 64, 0.01),    # its neighbour along hidden
            (TrialState.PRUNED, 90.0, 256, 0.01),     # its neighbour along hidden, killed
            (TrialState.COMPLETE, 42.0, 128, 0.1),    # its neighbour along lr
            (TrialState.COMPLETE, 30.0, 64, 0.1)]     # lucky: differs in both
    study.add_trials([optuna.create_trial(state=s, value=v, params={"hidden": h, "lr": r},
                                          distributions={"hidden": hidden, "lr": lr},
                                          intermediate_values={1: v})
                      for s, v, h, r in rows])
    top = build_report(study, axes=["hidden"]).top1["hidden"]
    assert top["hidden"] == 128 and top["basis"] == "the baseline and its one-factor neighbours along this axis"
    assert [(g["hidden"], g["val_ppl"], g["killed"]) for g in top["by_value"]] == [
        (128, 40.0, 0), (64, 44.0, 0), (256, None, 1)]
    assert "hidden=256: killed (1 of 1 trials)" in render(build_report(study, axes=["hidden"]), "table")


def test_a_config_that_diverged_on_a_seed_ranks_after_those_that_did_not() -> None:
    """A PRUNED seed re-run (re-runs are never pruned by a pruner: it diverged) was dropped from
    its config's median without a word, and that config could rank first."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from hpo.analysis.report import configs_over_seeds

    study = optuna.create_study()
    dist = {"lr": FloatDistribution(0, 1)}

    def add(lr: float, value: float | None, **attrs: object) -> None:
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.PRUNED
        study.add_trial(create_trial(state=state, value=value, params={"lr": lr}, distributions=dist,
                                     user_attrs=dict(attrs)))

    add(0.1, 1.0)
    add(0.2, 0.9)
    for seed, value in ((1, 1.1), (2, 1.2)):
        add(0.1, value, rerun_of=0, seed=seed)
    add(0.2, 0.95, rerun_of=1, seed=1)
    add(0.2, None, rerun_of=1, seed=2)  # diverged
    rows = configs_over_seeds(study.trials, 0, "minimize")
    assert [(r["config_of"], r["n"], r["diverged"]) for r in rows] == [(0, 3, 0), (1, 2, 1)]
