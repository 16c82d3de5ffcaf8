"""Every contact ``hpo`` has with Optuna's private internals, and every attribute key.

Optuna's public API is used everywhere else; what it does not offer is here, in one room,
exercised against the installed Optuna by ``tests/test__optuna.py`` (an upgrade that changes
any of it fails there first):

- the attribute keys: ``hpo``'s own on trials and studies, and the ones Optuna writes itself
  (``enqueue_trial``'s ``fixed_params``, the retry callback's ``failed_trial`` and
  ``retry_history``, the artifacts' ``artifacts:<id>``, the grid sampler's grid point);
- the private attributes a study or a trial keeps its storage and ids in;
- raw SQL on Optuna's RDB tables (``optuna.storages._rdb.models``), where the public API
  costs milliseconds per row: a report's two rows in one transaction, a study's trials in
  one SELECT per table, the heartbeat table, a study's rename, finished trials in bulk;
- NSGA-II's non-dominated sort and crowding distance;
- the pieces of Optuna's gRPC storage proxy that ``hpo.storage.proxy`` extends.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.samplers.nsgaii._elite_population_selection_strategy import _crowding_distance_sort, _rank_population
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages._rdb import models
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy import text as sql

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# --- hpo's user attributes on trials ---------------------------------------------------------
FAIL_ATTR = "fail_reason"  # why a trial failed
FAIL_TRACEBACK_ATTR = "fail_traceback"  # the last frames of a failed trial's traceback
STOP_ATTR = "stop_reason"  # why a trial stopped early: target, budget, pruner, copy
REASON_ATTR = "prune_reason"  # the pruner's reason (a dict, see hpo.policy.pruners)
NOTE_ATTR = "kill_rule_note"  # why the kill rule could not judge a trial
COPY_ATTR = "copy_of"  # a deterministic objective's repeated config: the trial whose result it took
RERUN_ATTR = "rerun_of"  # a seed re-run of a finalist (``hpo rerun``): the trial it re-runs
SEED_ATTR = "seed"  # ... and its training seed
EXPERIMENT_ATTR = "experiment"  # a named enqueue entry's name
CLOCK_ATTR = "clock"  # the metric the budget and time to target were read on
REACHED_ATTR = "reached_target"
TTT_ATTR = "time_to_target"
CENSORED_AT_ATTR = "censored_at"  # a miss: the clock where it stopped (its time to target is over it)
CLOSEST_ATTR = "closest"  # a miss: its best target-metric value within the budget
OUTCOME_ATTR = "outcome"  # one sentence: reached the target when, or censored (the dashboard shows it)
TARGET_ATTRS = (REACHED_ATTR, TTT_ATTR, CENSORED_AT_ATTR, CLOSEST_ATTR)
REFUSED_ATTR = "checkpoint_refused"  # why a trial's checkpoint was not loaded

# --- hpo's system attributes on trials -------------------------------------------------------
METRICS_PREFIX = "hpo:m:"  # + step: every metric of one report (Optuna's copy_study and exports carry it)
CHECKPOINT_ATTR = "hpo:checkpoint"  # the trial's newest checkpoint: {artifact_id, step}
WORKER_ATTR = "hpo:worker"  # {host, pid} of the process running the trial
SAMPLER_SEED_ATTR = "hpo:sampler_seed"  # the seed an independent sampler drew the trial's config with
FROM_ATTR = "hpo:from"  # a Stage-2 trial copied from Stage 1: {study, trial}

# --- hpo's attributes on studies -------------------------------------------------------------
SPEC_ATTR = "hpo:spec"  # user attr: the whole spec in one attribute (studies made before the split form)
SPEC_FIELD_PREFIX = SPEC_ATTR + "."  # user attrs: one per top-level field of the spec
PARENT_ATTR = "hpo:parent"  # user attr of a Stage-2 study: {study, trials}
DESIGN_ATTR = "hpo:design"  # user attr of a Stage-2 study: its design's points
COPYING_ATTR = "hpo:copy_incomplete"  # system attr: a copy (hpo copy) not finished yet

# --- Optuna's own system attributes ----------------------------------------------------------
FIXED_PARAMS_ATTR = "fixed_params"  # enqueue_trial: an enqueued config, suggested only when the trial runs
FAILED_TRIAL_ATTR = "failed_trial"  # RetryHeartbeatStaleTrialCallback: the number of the first failed trial
RETRY_HISTORY_ATTR = "retry_history"  # RetryHeartbeatStaleTrialCallback: the numbers of the failed trials retried
GRID_ATTRS = ("grid_id", "search_space")  # GridSampler: the grid point a trial holds
ARTIFACT_PREFIX = "artifacts:"  # + artifact id: upload_artifact's record of an artifact


# --- what studies and trials keep privately --------------------------------------------------
def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (Optuna's cache in front of an RDB, if any)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The storage's id of a study."""
    return study._study_id


def trial_id(trial: FrozenTrial | optuna.Trial) -> int:
    """The storage's id of a trial (a running one or a frozen one)."""
    return trial._trial_id


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """A study's system attributes (no longer public on ``Study``)."""
    return study._storage.get_study_system_attrs(study._study_id)


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDBStorage behind ``storage`` (Optuna wraps it in a cache), or None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def set_trial_user_attrs(study: optuna.Study, trial: FrozenTrial, attrs: Mapping[str, Any]) -> None:
    """User attributes on a trial Optuna handed over frozen (a pruner's ``prune``), through the
    study's storage API."""
    for key, value in attrs.items():
        study._storage.set_trial_user_attr(trial._trial_id, key, value)


def artifact_base(store: Any) -> str | Path | None:
    """The directory of a ``FileSystemArtifactStore``; None for any other store."""
    return getattr(store, "_base_path", None)


# --- hpo's per-step metrics ------------------------------------------------------------------
def metric_key(step: int) -> str:
    """The system attribute holding the metrics of the report at ``step``."""
    return f"{METRICS_PREFIX}{step}"


def trial_metrics(system_attrs: Mapping[str, Any]) -> dict[int, dict[str, float]]:
    """Step → all metrics reported at that step, from a trial's system attributes."""
    n = len(METRICS_PREFIX)
    out = {int(k[n:]): v for k, v in system_attrs.items() if k.startswith(METRICS_PREFIX)}
    return dict(sorted(out.items()))


# --- the retry callback's record -------------------------------------------------------------
def retried_trial_number(trial: FrozenTrial) -> int | None:
    """The number of the first failed trial that ``trial`` retries, or None (what
    ``RetryHeartbeatStaleTrialCallback.retried_trial_number`` answers, without its experimental
    warning: pruners ask it of every finished trial)."""
    return trial.system_attrs.get(FAILED_TRIAL_ATTR)


@contextmanager
def experimental() -> Iterator[None]:
    """Calls into Optuna APIs it marks experimental (heartbeats, metric names, retry history,
    stale-trial reaping), without the ExperimentalWarning each would print."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def retry_history(trial: FrozenTrial) -> list[int]:
    """The numbers of the failed trials that ``trial`` retries, oldest first (Optuna's
    ``RetryHeartbeatStaleTrialCallback.retry_history``)."""
    with experimental():
        return list(RetryHeartbeatStaleTrialCallback.retry_history(trial))


def retry_attrs(trial: FrozenTrial) -> dict[str, Any]:
    """The system attributes Optuna's retry callback gives the retry of ``trial``."""
    history = [*retry_history(trial), trial.number]
    first = retried_trial_number(trial)
    return {FAILED_TRIAL_ATTR: trial.number if first is None else first, RETRY_HISTORY_ATTR: history}


# --- NSGA-II's ranking -----------------------------------------------------------------------
def nondominated_fronts(trials: list[FrozenTrial], directions: Sequence[StudyDirection]) -> list[list[FrozenTrial]]:
    """Optuna's non-dominated sort (NSGA-II's): the fronts, best first."""
    return _rank_population(trials, list(directions))


def crowding_sort(front: list[FrozenTrial]) -> None:
    """Sort one front in place, largest crowding distance first (NSGA-II's survivor order)."""
    _crowding_distance_sort(front)


# --- raw SQL on Optuna's RDB tables ----------------------------------------------------------
_IV, _SYS, _USER = models.TrialIntermediateValueModel, models.TrialSystemAttributeModel, models.TrialUserAttributeModel


def insert_report(conn: Connection, trial_id: int, step: int, value: float, metrics: Mapping[str, float]) -> None:
    """One report's rows (intermediate value + ``hpo:m:<step>``) on ``conn``'s open transaction:
    what ``set_trial_intermediate_value`` and ``set_trial_system_attr`` write, without their reads."""
    stored, kind = _IV.intermediate_value_to_stored_repr(value)
    conn.execute(insert(_IV.__table__), dict(trial_id=trial_id, step=step, intermediate_value=stored,
                                             intermediate_value_type=kind.name))
    conn.execute(insert(_SYS.__table__), dict(trial_id=trial_id, key=metric_key(step), value_json=json.dumps(metrics)))


def insert_user_attr(storage: RDBStorage, trial_id: int, key: str, value: Any) -> None:
    """A user attribute on any trial, even a finished one (Optuna's API refuses that)."""
    with storage.engine.begin() as conn:
        conn.execute(insert(_USER.__table__), dict(trial_id=trial_id, key=key, value_json=json.dumps(value)))


def replace_user_attrs(storage: RDBStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """A trial's user attributes ``attrs``, replacing those of the same keys, in one transaction."""
    table = _USER.__table__
    with storage.engine.begin() as conn:
        conn.execute(delete(table).where(table.c.trial_id == trial_id, table.c.key.in_(list(attrs))))
        conn.execute(insert(table), [dict(trial_id=trial_id, key=k, value_json=json.dumps(v)) for k, v in attrs.items()])


def insert_trials(storage: RDBStorage, study_id: int, trials: Sequence[FrozenTrial]) -> None:
    """Finished trials with one INSERT per Optuna table in one transaction (``study.add_trials``
    commits row by row: about 100 s per 1,000 trials with curves). For filling benchmark studies.

    Args:
        storage: the study's RDB storage.
        study_id: the study's id.
        trials: finished trials (``optuna.trial.create_trial``); numbered from the study's count.
    """
    tables = (models.TrialModel, models.TrialParamModel, models.TrialValueModel, _USER, _SYS, _IV)
    rows: dict[Any, list[dict[str, Any]]] = {m: [] for m in tables}
    with storage.engine.begin() as conn:
        first_id = (conn.execute(select(func.max(models.TrialModel.trial_id))).scalar() or 0) + 1
        first_number = conn.execute(select(func.count()).where(models.TrialModel.study_id == study_id)).scalar() or 0
        for i, t in enumerate(trials):
            tid = first_id + i
            start = t.datetime_start or datetime.now()
            end = t.datetime_complete or start
            rows[models.TrialModel].append(dict(
                trial_id=tid, number=first_number + i, study_id=study_id, state=t.state.name,
                datetime_start=start.astimezone(timezone.utc).replace(tzinfo=None),
                datetime_complete=end.astimezone(timezone.utc).replace(tzinfo=None)))
            for name, value in t.params.items():
                dist = t.distributions[name]
                rows[models.TrialParamModel].append(dict(
                    trial_id=tid, param_name=name, param_value=dist.to_internal_repr(value),
                    distribution_json=optuna.distributions.distribution_to_json(dist)))
            for k, value in enumerate(t.values or []):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                rows[models.TrialValueModel].append(dict(trial_id=tid, objective=k, value=stored, value_type=kind.name))
            for model, attrs in ((_USER, t.user_attrs), (_SYS, t.system_attrs)):
                rows[model].extend(dict(trial_id=tid, key=k, value_json=json.dumps(v)) for k, v in attrs.items())
            for step, value in t.intermediate_values.items():
                stored, kind = _IV.intermediate_value_to_stored_repr(value)
                rows[_IV].append(dict(trial_id=tid, step=step, intermediate_value=stored,
                                      intermediate_value_type=kind.name))
        for model, batch in rows.items():
            if batch:
                conn.execute(insert(model.__table__), batch)
        if storage.engine.dialect.name == "postgresql":  # explicit ids do not advance the sequence
            conn.execute(sql("SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), "
                              "(SELECT max(trial_id) FROM trials))"))


def rename_study(storage: RDBStorage, study_id: int, name: str) -> None:
    """Give a study another name, in one statement (Optuna has no API for it)."""
    table = models.StudyModel.__table__
    with storage.engine.begin() as conn:
        conn.execute(update(table).where(table.c.study_id == study_id).values(study_name=name))


def stale_trial_ids(storage: RDBStorage, study_id: int, grace: timedelta) -> list[int]:
    """RUNNING trials of the study whose heartbeat is older than ``grace``, by the database's clock."""
    trial, beat = models.TrialModel, models.TrialHeartbeatModel
    with storage.engine.connect() as conn:
        now = conn.execute(select(func.now())).scalar_one()
        rows = conn.execute(select(trial.trial_id, beat.heartbeat)
                            .join(beat, beat.trial_id == trial.trial_id)
                            .where(trial.study_id == study_id, trial.state == TrialState.RUNNING)).all()
    return [tid for tid, at in rows if _naive(now) - _naive(at) > grace]


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)  # PostgreSQL answers aware, SQLite naive (as Optuna does)


def _local(utc: datetime | None) -> datetime | None:
    """Optuna stores naive UTC and hands out naive local time; so do we (offset cached per hour)."""
    return None if utc is None else utc + _utc_offset(utc.replace(minute=0, second=0, microsecond=0))


@lru_cache(maxsize=4096)
def _utc_offset(hour: datetime) -> timedelta:
    return hour.replace(tzinfo=timezone.utc).astimezone().utcoffset() or timedelta(0)


@lru_cache(maxsize=1024)
def _distribution(text: str) -> BaseDistribution:
    return json_to_distribution(text)


def read_trials(storage: RDBStorage, study_id: int, curves: bool) -> list[FrozenTrial]:
    """All trials of a study by number, one plain SELECT per table (see :mod:`hpo.storage.bulk`);
    without ``curves``, no intermediate values and no ``hpo:m:<step>`` attributes."""
    T, P, V = models.TrialModel, models.TrialParamModel, models.TrialValueModel
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
        for tid, key, text in conn.execute(
            select(_USER.trial_id, _USER.key, _USER.value_json).where(_USER.trial_id.in_(in_study))
        ):
            user[tid][key] = json.loads(text)
        sys_query = select(_SYS.trial_id, _SYS.key, _SYS.value_json).where(_SYS.trial_id.in_(in_study))
        if not curves:
            sys_query = sys_query.where(_SYS.key.notlike(METRICS_PREFIX + "%"))
        for tid, key, text in conn.execute(sys_query):
            system[tid][key] = json.loads(text)
        if curves:
            for tid, step, value, kind in conn.execute(
                select(_IV.trial_id, _IV.step, _IV.intermediate_value, _IV.intermediate_value_type)
                .where(_IV.trial_id.in_(in_study))
            ):
                inter[tid][step] = _IV.stored_repr_to_intermediate_value(value, kind)
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


def last_metrics(storage: RDBStorage, trial_ids: Sequence[int], chunk: int = 1000) -> dict[int, dict[str, Any]]:
    """Trial id → the metrics of its last report (``hpo:m:<highest step>``), ``chunk`` ids per query."""
    n = len(METRICS_PREFIX)
    newest: dict[int, tuple[int, str]] = {}
    ids = list(trial_ids)
    with storage.engine.connect() as conn:
        for i in range(0, len(ids), chunk):
            for tid, key, text in conn.execute(
                select(_SYS.trial_id, _SYS.key, _SYS.value_json)
                .where(_SYS.trial_id.in_(ids[i:i + chunk]), _SYS.key.like(METRICS_PREFIX + "%"))
            ):
                step = int(key[n:])
                if tid not in newest or step > newest[tid][0]:
                    newest[tid] = (step, text)
    return {tid: json.loads(text) for tid, (_, text) in newest.items()}


# --- Optuna's gRPC storage proxy -------------------------------------------------------------
def add_storage_service(server: Any, storage: BaseStorage) -> None:
    """Optuna's storage service (what ``run_grpc_proxy_server`` serves) on a gRPC ``server``,
    with Optuna's cache in front of ``storage`` as that function recommends."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    api_pb2_grpc.add_StorageServiceServicer_to_server(
        OptunaStorageProxyService(optuna.storages.get_storage(storage)), server)


def proxy_client_base(channel_options: list[tuple[str, Any]]) -> type:
    """Optuna's ``GrpcStorageProxy`` with Optuna's heartbeat interface, on a channel made with
    ``channel_options`` (e.g. one that waits for a restarting proxy).

    A subclass answers :meth:`stale_trials` (Optuna asks it through a private hook) and gets
    :meth:`connected` with each channel the client opens, for calls of its own on it.
    """
    import grpc
    from optuna.storages import GrpcStorageProxy
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.client import GrpcClientCache

    class HeartbeatProxy(GrpcStorageProxy, BaseHeartbeat):
        def connected(self, channel: Any) -> None:
            """Called with each channel the client opens."""

        def stale_trials(self, study_id: int) -> list[int]:
            """The RUNNING trials of the study whose heartbeat is older than the grace period."""
            raise NotImplementedError

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            return self.stale_trials(study_id)

        def _setup(self) -> None:
            self._channel = grpc.insecure_channel(f"{self._host}:{self._port}", options=channel_options)
            self._stub = api_pb2_grpc.StorageServiceStub(self._channel)
            self._cache = GrpcClientCache(self._stub)
            self.connected(self._channel)

    return HeartbeatProxy
