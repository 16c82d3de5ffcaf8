"""Pareto fronts: the front as a table, its knee, NSGA-II top-k, and one config as a spec file.

The knee is the front point closest (Euclidean) to the utopia point after each metric is
min-max normalised over the front and flipped where it is maximised, so 0 is the front's
best and 1 its worst in every metric and the utopia point is the origin. Non-finite values
count as the worst (or, for -inf under minimise, the best) end. It is scale-free: seconds
and nats weigh the same, so a knee trades a fraction of the front's spread in one metric
against the same fraction in another.

Top-k and the front follow :mod:`hpo.analysis.ranking` (trials that reached the target first, then
NSGA-II's order); copies of a deterministic objective's configs and seed re-runs are not
ranked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import optuna
import pandas as pd
import yaml

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from hpo.storage.bulk import read_trials
from hpo.errors import HpoError
from hpo.analysis.ranking import is_ranked, rank
from hpo.specs.models import StudySpec, dump_spec, parse_spec
from hpo.analysis.study_info import metric_names, study_spec


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The ranked trials (:func:`hpo.analysis.ranking.is_ranked`: COMPLETE, not copies or seed
    re-runs), by number (curves not loaded)."""
    return [t for t in read_trials(study) if is_ranked(t)]


def top_k(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The ``k`` best COMPLETE trials of ``study`` (:func:`hpo.analysis.ranking.rank`)."""
    return rank(complete_trials(study), study.directions)[0][:k]


def pareto_front(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """Front 1 of :func:`hpo.analysis.ranking.rank` (for one objective: the best trial), by number."""
    order, fronts = rank(trials, directions)
    if len(directions) == 1:
        return order[:1]
    return sorted((t for t in order if fronts[t.number] == 1), key=lambda t: t.number)


def utopia_distances(values: np.ndarray, directions: Sequence[StudyDirection]) -> np.ndarray:
    """Distance of each row of ``values`` to the utopia point, metrics normalised (module doc)."""
    losses = np.array(values, dtype=float) * [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions]
    norm = np.zeros_like(losses)
    for j in range(losses.shape[1]):
        col = losses[:, j]
        finite = col[np.isfinite(col)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        scaled = (col - lo) / (hi - lo) if hi > lo else np.zeros_like(col)
        scaled[col == np.inf] = 1.0
        scaled[col == -np.inf] = 0.0
        norm[:, j] = np.nan_to_num(scaled, nan=1.0)
    return np.sqrt((norm**2).sum(axis=1))


def knee(front: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> FrozenTrial:
    """The front trial closest to the utopia point (ties: the lowest trial number)."""
    if not front:
        raise ValueError("empty front")
    d = utopia_distances(np.array([t.values for t in front]), directions)
    return min(zip(d, (t.number for t in front), front))[2]


def front_table(study: optuna.Study) -> pd.DataFrame:
    """The Pareto front, one row per trial sorted by the first metric: values, distance to
    utopia, ``knee`` marked with ``*``, then the params."""
    front = pareto_front(complete_trials(study), study.directions)
    if not front:
        return pd.DataFrame()
    names = metric_names(study)
    dist = utopia_distances(np.array([t.values for t in front]), study.directions)
    best = knee(front, study.directions).number
    rows = [{"trial": t.number, **dict(zip(names, t.values)), "utopia_dist": round(float(d), 4),
             "knee": "*" if t.number == best else "", **t.params} for t, d in zip(front, dist)]
    return pd.DataFrame(rows).sort_values([names[0], "trial"]).reset_index(drop=True)


def config_spec(spec: StudySpec, trial: FrozenTrial) -> StudySpec:
    """A spec that re-runs ``trial``'s config once: ``fixed`` = spec.fixed + its params."""
    data = dump_spec(spec)
    data.pop("parent", None)
    data.pop("enqueue", None)
    data.pop("one_factor_levels", None)
    data.update(study=f"{spec.study}_trial{trial.number}", fixed={**spec.fixed, **trial.params},
                space={}, n_trials=1, sampler={"name": "random"})
    return parse_spec(data, f"export of trial {trial.number}")


def export_config(study: optuna.Study, trial: FrozenTrial, path: str | Path) -> Path:
    """Write :func:`config_spec` as YAML with a header naming the trial and its values."""
    spec = study_spec(study)
    if spec is None:
        raise HpoError(f"study '{study.study_name}' has no hpo spec stored (fix: export from a study run by hpo)")
    values = ", ".join(f"{n}={v:.6g}" for n, v in zip(metric_names(study), trial.values or []))
    header = (f"# trial {trial.number} of study {study.study_name}: {values}\n"
              f"# re-run it with: hpo optimize --spec {path}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(dump_spec(config_spec(spec, trial)), sort_keys=False))
    return path
