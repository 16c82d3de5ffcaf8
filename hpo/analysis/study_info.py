"""What ``hpo`` stored with a study, read back: its objectives by name and its spec.

The spec is stored as one user attribute per top-level field, ``hpo:spec.<field>`` (e.g.
``hpo:spec.space``, ``hpo:spec.sampler``), so that optuna-dashboard and ``optuna studies``
show short, readable rows instead of one 1,500-character value. Studies made before kept
the whole spec in ``hpo:spec``; :func:`study_spec` reads both forms (the split one wins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from hpo._optuna import SPEC_ATTR, SPEC_FIELD_PREFIX
from hpo.errors import HpoError

if TYPE_CHECKING:
    from hpo.specs.models import StudySpec


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


def spec_attrs(spec: StudySpec) -> dict[str, Any]:
    """The user attributes that hold ``spec``: ``hpo:spec.<field>`` for each field it sets."""
    from hpo.specs.models import dump_spec  # the spec models (pydantic): not for names and objectives

    return {SPEC_FIELD_PREFIX + field: value for field, value in dump_spec(spec).items()}


def store_spec(study: optuna.Study, spec: StudySpec) -> None:
    """Store ``spec`` with the study (split per field, see the module docstring).

    Args:
        study: the study (created or resumed).
        spec: the spec it runs with now; a field the new spec leaves out is stored as None
            so that an older value is not read back.
    """
    attrs = spec_attrs(spec)
    for key in study.user_attrs:
        if key.startswith(SPEC_FIELD_PREFIX) and key not in attrs:
            attrs[key] = None
    if study.user_attrs.get(SPEC_ATTR) is not None:
        attrs[SPEC_ATTR] = None  # the old one-attribute form: emptied, read back as absent
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def stored_spec_data(user_attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The spec as plain data from a study's user attributes, in either stored form, or None."""
    fields = {k[len(SPEC_FIELD_PREFIX):]: v for k, v in user_attrs.items()
              if k.startswith(SPEC_FIELD_PREFIX) and v is not None}
    if fields:
        return fields
    whole = user_attrs.get(SPEC_ATTR)
    return dict(whole) if isinstance(whole, dict) else None


def target_text(spec: StudySpec | None) -> str | None:
    """The spec's target as tables name it (e.g. ``val_loss < 1.45``), or None without one."""
    return spec.target.describe() if spec is not None and spec.target is not None else None


def study_spec(study: optuna.Study) -> StudySpec | None:
    """The spec ``hpo`` stored with the study, or None for a plain Optuna study."""
    from hpo.specs.models import parse_spec  # the spec models (pydantic): not for names and objectives

    data = stored_spec_data(study.user_attrs)
    return parse_spec(data, f"study {study.study_name} user attrs {SPEC_ATTR}") if data else None
