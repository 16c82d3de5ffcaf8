"""Parameter importances per objective with Optuna's evaluators (PED-ANOVA by default).

Each objective is evaluated on its own (``target=values[k]``); PED-ANOVA assumes lower is
better, so maximised objectives are negated for it. A multi-objective study also gets a
``pareto front`` column under PED-ANOVA: the importance of reaching the front at all.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import optuna
import pandas as pd
from optuna.importance import BaseImportanceEvaluator, FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError
from hpo.analysis.study_info import metric_names, objective

EVALUATORS: dict[str, Callable[[], BaseImportanceEvaluator]] = {
    "ped-anova": PedAnovaImportanceEvaluator,
    "fanova": lambda: FanovaImportanceEvaluator(seed=0),
}
PARETO_COLUMN = "pareto front"


def make_evaluator(name: str) -> BaseImportanceEvaluator:
    """A fresh evaluator by its CLI name (fANOVA seeded, so tables are reproducible)."""
    if name not in EVALUATORS:
        raise HpoError(f"--evaluator {name}: unknown (fix: one of {', '.join(EVALUATORS)})")
    return EVALUATORS[name]()


@contextmanager
def quiet_optuna(notes: list[str] | None = None) -> Iterator[None]:
    """Silence Optuna's experimental-API warnings and PED-ANOVA's "lower is better" reminder
    (``objective_target`` orients the targets); its other warnings (e.g. "the importance of
    the parameter may be inaccurate", once per parameter and objective) go to ``notes``, once
    each, or are warned once each when no list is given.

    Args:
        notes: where to collect the remaining warnings' messages.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    kept: list[str] = []
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, optuna.exceptions.ExperimentalWarning) or text.startswith(
                "PedAnovaImportanceEvaluator computes") or text in kept:
            continue
        kept.append(text)
    if notes is not None:
        notes.extend(t for t in kept if t not in notes)
    else:
        for text in kept:
            warnings.warn(text, UserWarning, stacklevel=3)


def objective_target(study: optuna.Study, metric: str | None, lower_is_better: bool = False
                     ) -> tuple[str, Callable[[FrozenTrial], float] | None]:
    """(name, target) for one objective; target None for a single-objective study's own value."""
    name, k = objective(study, metric)
    if len(study.directions) == 1 and not lower_is_better:
        return name, None
    sign = -1.0 if lower_is_better and study.directions[k] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return name, lambda t: sign * t.values[k]


def importances(study: optuna.Study, evaluator: str = "ped-anova", metric: str | None = None) -> pd.DataFrame:
    """Importance of each parameter (rows, most important first) for each objective (columns);
    ``df.attrs["notes"]`` holds Optuna's caveats about them (each once) instead of warnings."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        raise HpoError(f"study '{study.study_name}' has {len(complete)} COMPLETE trials; importance needs "
                       "at least 2 (fix: run more trials)")
    names = [metric] if metric else metric_names(study)
    columns: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    with quiet_optuna(notes):
        for name in names:
            _, target = objective_target(study, name, lower_is_better=evaluator == "ped-anova")
            columns[name] = optuna.importance.get_param_importances(
                study, evaluator=make_evaluator(evaluator), target=target)
        if len(study.directions) > 1 and evaluator == "ped-anova" and metric is None:
            columns[PARETO_COLUMN] = optuna.importance.get_param_importances(study, evaluator=make_evaluator(evaluator))
    df = pd.DataFrame(columns).fillna(0.0)
    df.index.name = "param"
    df = df.sort_values(list(df.columns), ascending=False)
    df.attrs["notes"] = notes  # Optuna's caveats (few trials, small regimes), each once
    return df


def importance_table(df: pd.DataFrame, evaluator: str) -> str:
    """The table ``hpo importance`` prints: one column per objective, rank in the first."""
    shown = df.copy()
    shown.insert(0, "rank", range(1, len(df) + 1))
    return f"parameter importances ({evaluator}, normalised per column):\n" + shown.to_string(
        float_format=lambda v: f"{v:.3f}")
