"""Reading a whole study's trials fast: one plain query per table, curves only on request.

``study.get_trials()`` on an RDB storage builds ORM objects for every intermediate value
and every ``hpo:m:<step>`` attribute: about 3 s per 1,000 trials with 20-step curves. A
report needs none of that, so on an RDB storage this reads Optuna's tables directly (one
SELECT each, distributions decoded once per distinct JSON) and returns ordinary
:class:`~optuna.trial.FrozenTrial` objects; any other storage goes through the public API.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial
from sqlalchemy import select

from hpo.storage import trial_metrics

CURVE_ATTR_PREFIX = "hpo:m:"
ID_CHUNK = 1000  # trial ids per IN (...) list, well under every database's parameter limit


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDBStorage behind ``storage`` (Optuna wraps it in a cache), or None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def read_trials(study: optuna.Study, curves: bool = False) -> list[FrozenTrial]:
    """All trials of ``study`` ordered by number.

    On an RDB storage and without ``curves`` the trials carry no intermediate values and no
    ``hpo:m:<step>`` system attributes (every other attribute is there); other storages
    return complete trials either way.
    """
    rdb = rdb_backend(study._storage)
    if rdb is None:
        return study.get_trials(deepcopy=False)
    return _read_rdb(rdb, study._study_id, curves)


def _local(utc: datetime | None) -> datetime | None:
    """Optuna stores naive UTC and hands out naive local time; so do we (offset cached per hour)."""
    return None if utc is None else utc + _utc_offset(utc.replace(minute=0, second=0, microsecond=0))


@lru_cache(maxsize=4096)
def _utc_offset(hour: datetime) -> timedelta:
    return hour.replace(tzinfo=timezone.utc).astimezone().utcoffset() or timedelta(0)


@lru_cache(maxsize=1024)
def _distribution(text: str) -> BaseDistribution:
    return json_to_distribution(text)


def _read_rdb(storage: RDBStorage, study_id: int, curves: bool) -> list[FrozenTrial]:
    T, P, V = models.TrialModel, models.TrialParamModel, models.TrialValueModel
    U, S, IV = models.TrialUserAttributeModel, models.TrialSystemAttributeModel, models.TrialIntermediateValueModel
    in_study = select(T.trial_id).where(T.study_id == study_id).scalar_subquery()
    params: dict[int, list[tuple[str, float, str]]] = defaultdict(list)
    values: dict[int, dict[int, float]] = defaultdict(dict)
    user: dict[int, dict[str, Any]] = defaultdict(dict)
    system: dict[int, dict[str, Any]] = defaultdict(dict)
    inter: dict[int, dict[int, float]] = defaultdict(dict)
    with storage.engine.connect() as conn:
        trials = conn.execute(
            select(T.trial_id, T.number, T.state, T._datetime_start_utc, T._datetime_complete_utc)
            .where(T.study_id == study_id).order_by(T.number)
        ).all()
        for tid, name, value, dist in conn.execute(
            select(P.trial_id, P.param_name, P.param_value, P.distribution_json)
            .where(P.trial_id.in_(in_study)).order_by(P.param_id)
        ):
            params[tid].append((name, value, dist))
        for tid, objective, value, kind in conn.execute(
            select(V.trial_id, V.objective, V.value, V.value_type).where(V.trial_id.in_(in_study))
        ):
            values[tid][objective] = V.stored_repr_to_value(value, kind)
        for tid, key, text in conn.execute(select(U.trial_id, U.key, U.value_json).where(U.trial_id.in_(in_study))):
            user[tid][key] = json.loads(text)
        sys_query = select(S.trial_id, S.key, S.value_json).where(S.trial_id.in_(in_study))
        if not curves:
            sys_query = sys_query.where(S.key.notlike(CURVE_ATTR_PREFIX + "%"))
        for tid, key, text in conn.execute(sys_query):
            system[tid][key] = json.loads(text)
        if curves:
            for tid, step, value, kind in conn.execute(
                select(IV.trial_id, IV.step, IV.intermediate_value, IV.intermediate_value_type)
                .where(IV.trial_id.in_(in_study))
            ):
                inter[tid][step] = IV.stored_repr_to_intermediate_value(value, kind)
    out = []
    for tid, number, state, start, complete in trials:
        dists = {name: _distribution(d) for name, _, d in params[tid]}
        vals = values.get(tid)
        out.append(FrozenTrial(
            number=number,
            state=state,
            value=None,
            values=[vals[i] for i in sorted(vals)] if vals else None,
            datetime_start=_local(start),
            datetime_complete=_local(complete),
            params={name: dists[name].to_external_repr(v) for name, v, _ in params[tid]},
            distributions=dists,
            user_attrs=user.get(tid, {}),
            system_attrs=system.get(tid, {}),
            intermediate_values=inter.get(tid, {}),
            trial_id=tid,
        ))
    return out


def last_reports(study: optuna.Study, trials: list[FrozenTrial]) -> dict[int, dict[str, Any]]:
    """Trial number → the metrics of its last report (``hpo:m:<highest step>``), for ``trials``.

    What a report falls back on when a trial did not record a metric as a value or user
    attribute (a failed trial, or a pruned one whose metric is an objective).
    """
    rdb = rdb_backend(study._storage)
    if rdb is None or any(k.startswith(CURVE_ATTR_PREFIX) for t in trials for k in t.system_attrs):
        return {t.number: m[max(m)] for t in trials if (m := trial_metrics(t.system_attrs))}
    S = models.TrialSystemAttributeModel
    numbers = {t._trial_id: t.number for t in trials}
    newest: dict[int, tuple[int, str]] = {}
    ids = list(numbers)
    with rdb.engine.connect() as conn:
        for i in range(0, len(ids), ID_CHUNK):
            for tid, key, text in conn.execute(
                select(S.trial_id, S.key, S.value_json)
                .where(S.trial_id.in_(ids[i:i + ID_CHUNK]), S.key.like(CURVE_ATTR_PREFIX + "%"))
            ):
                step = int(key[len(CURVE_ATTR_PREFIX):])
                if tid not in newest or step > newest[tid][0]:
                    newest[tid] = (step, text)
    return {numbers[tid]: json.loads(text) for tid, (_, text) in newest.items()}
