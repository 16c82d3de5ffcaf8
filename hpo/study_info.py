"""What ``hpo`` stored with a study, read back: its objectives by name and its spec."""

from __future__ import annotations

import optuna

from hpo.errors import HpoError
from hpo.runner import SPEC_ATTR
from hpo.spec import StudySpec, parse_spec


def metric_names(study: optuna.Study) -> list[str]:
    """Objective names in order (``value0``... for a plain Optuna study without names)."""
    return list(study.metric_names or [f"value{i}" for i in range(len(study.directions))])


def objective(study: optuna.Study, metric: str | None) -> tuple[str, int]:
    """(name, index) of the objective ``metric`` (default: the first); a one-line error if unknown."""
    names = metric_names(study)
    name = metric or names[0]
    if name not in names:
        raise HpoError(f"--metric {name}: not an objective of study '{study.study_name}' "
                       f"(fix: one of {', '.join(names)})")
    return name, names.index(name)


def study_spec(study: optuna.Study) -> StudySpec | None:
    """The spec ``hpo`` stored with the study, or None for a plain Optuna study."""
    data = study.user_attrs.get(SPEC_ATTR)
    return parse_spec(data, f"study {study.study_name} user attr {SPEC_ATTR}") if data else None
