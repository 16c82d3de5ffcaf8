"""Pareto front, knee and NSGA-II top-k on hand-made studies; config export as a runnable spec."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.study import StudyDirection

from hpo.analysis.pareto import config_spec, export_config, front_table, knee, pareto_front, top_k, utopia_distances
from hpo._optuna import SPEC_ATTR
from hpo.analysis.study_info import study_spec
from hpo.run.session import load_spec

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
MIN, MAX = StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE
X = FloatDistribution(0.0, 10.0)
SPEC = {"study": "mo", "objective": "objectives.synthetic:train",
        "metrics": {"val_loss": "minimize", "train_seconds": "minimize"},
        "fixed": {"steps": 5}, "space": {"x": {"type": "float", "low": 0.0, "high": 10.0}}}


def _study(points: list[tuple[float, ...]], directions: list[str]) -> optuna.Study:
    study = optuna.create_study(directions=directions)
    study.set_user_attr(SPEC_ATTR, {**SPEC, "metrics": dict(zip(["val_loss", "train_seconds"], directions))})
    study.set_metric_names(["val_loss", "train_seconds"][: len(directions)])
    study.add_trials([optuna.create_trial(values=list(v), params={"x": float(i)}, distributions={"x": X})
                      for i, v in enumerate(points)])
    return study


def test_front_and_knee_on_known_points() -> None:
    # (1,3), (2,2), (3,1) are the front; normalised they are (0,1), (.5,.5), (1,0): the knee is (2,2).
    study = _study([(2.5, 2.5), (3.0, 1.0), (1.0, 3.0), (2.0, 2.0), (4.0, 4.0)], ["minimize", "minimize"])
    front = pareto_front(study.trials, study.directions)
    assert [t.number for t in front] == [1, 2, 3]
    assert knee(front, study.directions).number == 3
    table = front_table(study)
    assert table["trial"].tolist() == [2, 3, 1]  # sorted by the first metric
    assert table.loc[table["knee"] == "*", "trial"].tolist() == [3]
    assert table["utopia_dist"].tolist() == pytest.approx([1.0, 0.7071, 1.0], abs=1e-4)


def test_knee_is_scale_free_and_flips_maximised_metrics() -> None:
    front = [(1.0, 1.0), (2.0, 3.0), (3.0, 4.0)]  # minimise the first, maximise the second
    d = utopia_distances(front, [MIN, MAX])
    assert d.tolist() == pytest.approx([1.0, (0.25 + 1 / 9) ** 0.5, 1.0])
    scaled = utopia_distances([(a * 1000, b) for a, b in front], [MIN, MAX])
    assert scaled.tolist() == pytest.approx(d.tolist())
    study = _study(front, ["minimize", "maximize"])
    assert knee(pareto_front(study.trials, study.directions), study.directions).number == 1


def test_non_finite_values_count_as_the_worst_end() -> None:
    d = utopia_distances([(1.0, float("inf")), (2.0, 5.0), (3.0, 1.0)], [MIN, MIN])
    assert d[0] == pytest.approx(1.0)  # best loss (0) and worst time (1)


def test_top_k_multi_objective_is_front_first_then_crowding() -> None:
    # Front: trials 0..3 (x+y=4); 4 and 5 are dominated. Within the front the extremes (0 and 3)
    # have infinite crowding distance, so top-2 is them, and top-4 is the whole front.
    study = _study([(0.0, 4.0), (1.0, 3.0), (1.5, 2.5), (4.0, 0.0), (2.0, 3.0), (5.0, 5.0)],
                   ["minimize", "minimize"])
    assert {t.number for t in top_k(study, 2)} == {0, 3}
    assert {t.number for t in top_k(study, 4)} == {0, 1, 2, 3}
    assert [t.number for t in top_k(study, 6)][4:] == [4, 5]


def test_export_writes_a_runnable_spec_of_the_config(tmp_path: Path) -> None:
    study = _study([(1.0, 3.0), (2.0, 2.0)], ["minimize", "minimize"])
    trial = study.trials[1]
    path = export_config(study, trial, tmp_path / "knee.yaml")
    assert path.read_text().startswith("# trial 1 of study")
    spec = load_spec(path)
    assert spec.study == "mo_trial1" and config_spec(study_spec(study), trial).fixed == spec.fixed
    assert spec.fixed == {"steps": 5, "x": 1.0} and spec.space == {} and spec.n_trials == 1
    assert list(spec.metrics) == ["val_loss", "train_seconds"]


def test_ngpt_loss_time_spec_is_multi_objective_over_known_keys() -> None:
    from objectives.ngpt_ttt import DEFAULTS, resolve_config

    spec = load_spec(Path(__file__).resolve().parents[2] / "search_spaces" / "ngpt_loss_time.yaml")
    assert spec.metrics == {"val_loss": "minimize", "norm_seconds": "minimize"} and spec.multi_objective
    assert spec.sampler.name in ("nsga2", "tpe") and spec.objective == "objectives.ngpt_ttt:train"
    resolve_config({**spec.fixed, **{k: DEFAULTS[k] for k in spec.space}})
    assert {"orthog", "variance_reduction", "cautious_wd"} <= set(spec.space)
