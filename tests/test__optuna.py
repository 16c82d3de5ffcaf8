"""The contract with Optuna: every internal ``hpo._optuna`` touches, against the installed Optuna.

Each test writes or reads through ``hpo._optuna`` and checks the result through Optuna's
public API (or the other way round), on real SQLite and PostgreSQL storages, so an Optuna
upgrade that moves a column, a key or a private helper fails here first.
"""

from __future__ import annotations

import socket
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from hpo import _optuna
from hpo.storage.backend import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(params=["sqlite", "postgresql"])
def rdb(request: pytest.FixtureRequest, tmp_path: Path) -> RDBStorage:
    """A real RDB storage, as hpo opens it."""
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    storage = open_storage(url)
    assert isinstance(storage, RDBStorage)
    return storage


def _study(storage: Any, **kw: Any) -> optuna.Study:
    return optuna.create_study(study_name=f"c-{uuid.uuid4().hex[:8]}", storage=storage, **kw)


def _running(study: optuna.Study) -> int:
    """A RUNNING trial's storage id (asked, not told)."""
    return _optuna.trial_id(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}))


# --- private attributes of studies and trials ------------------------------------------------
def test_study_and_trial_ids_and_storage(rdb: RDBStorage) -> None:
    study = _study(rdb)
    trial = study.ask()
    assert _optuna.rdb_backend(_optuna.storage_of(study)) is rdb  # behind Optuna's cache
    assert _optuna.rdb_backend(optuna.storages.InMemoryStorage()) is None
    assert rdb.get_study_id_from_name(study.study_name) == _optuna.study_id(study)
    assert rdb.get_trial_id_from_study_id_trial_number(_optuna.study_id(study), trial.number) == _optuna.trial_id(trial)
    frozen = study.trials[0]
    assert _optuna.trial_id(frozen) == _optuna.trial_id(trial)
    rdb.set_study_system_attr(_optuna.study_id(study), "k", [1, 2])
    assert _optuna.study_system_attrs(study)["k"] == [1, 2]


def test_set_trial_user_attrs_on_a_frozen_trial(rdb: RDBStorage) -> None:
    study = _study(rdb)
    study.ask()
    _optuna.set_trial_user_attrs(study, study.trials[0], {"a": 1, "b": {"c": "d"}})
    assert study.trials[0].user_attrs == {"a": 1, "b": {"c": "d"}}


# --- raw SQL on Optuna's tables --------------------------------------------------------------
def test_insert_report_reads_back_through_the_public_api(rdb: RDBStorage) -> None:
    study = _study(rdb)
    tid = _running(study)
    with rdb.engine.connect() as conn, conn.begin():
        _optuna.insert_report(conn, tid, 3, 0.25, {"val_loss": 0.25, "tokens": 300.0})
        _optuna.insert_report(conn, tid, 5, float("inf"), {"val_loss": float("inf")})
    t = study.trials[0]
    assert t.intermediate_values == {3: 0.25, 5: float("inf")}
    assert t.system_attrs[_optuna.metric_key(3)] == {"val_loss": 0.25, "tokens": 300.0}
    assert _optuna.trial_metrics(t.system_attrs) == {3: {"val_loss": 0.25, "tokens": 300.0},
                                                     5: {"val_loss": float("inf")}}


def test_user_attrs_raw_on_a_finished_trial_and_replaced(rdb: RDBStorage) -> None:
    study = _study(rdb)
    tid = _running(study)
    study.tell(0, state=TrialState.FAIL)
    _optuna.insert_user_attr(rdb, tid, "why", "no heartbeat")  # Optuna's API refuses a finished trial
    assert study.trials[0].user_attrs == {"why": "no heartbeat"}
    with pytest.raises(RuntimeError):
        rdb.set_trial_user_attr(tid, "why", "again")
    tid = _running(study)
    rdb.set_trial_user_attr(tid, "a", 1)
    _optuna.replace_user_attrs(rdb, tid, {"a": 2, **{f"m{i}": i for i in range(10)}})
    assert study.trials[1].user_attrs == {"a": 2, **{f"m{i}": i for i in range(10)}}


def test_rename_study(rdb: RDBStorage) -> None:
    study = _study(rdb, directions=["minimize", "maximize"])
    new = study.study_name + " renamed"
    _optuna.rename_study(rdb, _optuna.study_id(study), new)
    again = optuna.load_study(study_name=new, storage=rdb)
    assert _optuna.study_id(again) == _optuna.study_id(study) and again.directions == study.directions


def test_stale_trial_ids_read_the_heartbeat_table(rdb: RDBStorage) -> None:
    study = _study(rdb)
    beating, silent = _running(study), _running(study)
    rdb.record_heartbeat(beating)
    assert _optuna.stale_trial_ids(rdb, _optuna.study_id(study), timedelta(seconds=-1)) == [beating]
    assert _optuna.stale_trial_ids(rdb, _optuna.study_id(study), timedelta(hours=1)) == []
    study.tell(0, 1.0)  # a finished trial is never stale
    assert _optuna.stale_trial_ids(rdb, _optuna.study_id(study), timedelta(seconds=-1)) == []
    assert silent not in _optuna.stale_trial_ids(rdb, _optuna.study_id(study), timedelta(seconds=-1))


def _varied_study(rdb: RDBStorage) -> optuna.Study:
    """Every kind of row: params of each distribution, values (two objectives, inf), attrs,
    curves with metrics, every state."""
    study = _study(rdb, directions=["minimize", "maximize"])
    dists = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "width": optuna.distributions.IntDistribution(8, 64, step=8),
             "act": optuna.distributions.CategoricalDistribution(["relu", "gelu", None])}
    for i, state in enumerate([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]):
        curve = {s: 1.0 / (s + i + 1) for s in range(1, 4)}
        study.add_trial(create_trial(
            state=state, values=[1.0 + i, float("inf") if i == 3 else 2.0 * i] if state == TrialState.COMPLETE else None,
            params={"lr": 10 ** -(i + 1), "width": 8 * (i + 1), "act": ["relu", "gelu", None, "relu"][i]},
            distributions=dists, user_attrs={"fail_reason": "x"} if state == TrialState.FAIL else {"u": i},
            system_attrs={"s": [i], **{_optuna.metric_key(s): {"val_loss": v, "tokens": 10.0 * s}
                                       for s, v in curve.items()}},
            intermediate_values=curve))
    study.ask(dists)  # a RUNNING trial
    return study


def test_read_trials_equals_optunas_own_reading(rdb: RDBStorage) -> None:
    study = _varied_study(rdb)
    assert _optuna.read_trials(rdb, _optuna.study_id(study), curves=True) == study.get_trials()
    light = _optuna.read_trials(rdb, _optuna.study_id(study), curves=False)
    for ours, theirs in zip(light, study.get_trials(), strict=True):
        assert ours.intermediate_values == {}
        assert ours.system_attrs == {k: v for k, v in theirs.system_attrs.items()
                                     if not k.startswith(_optuna.METRICS_PREFIX)}
        assert (ours.number, ours.state, ours.values, ours.params, ours.distributions, ours.user_attrs,
                ours.datetime_start, ours.datetime_complete) == \
            (theirs.number, theirs.state, theirs.values, theirs.params, theirs.distributions, theirs.user_attrs,
             theirs.datetime_start, theirs.datetime_complete)


def test_insert_trials_reads_back_as_the_trials_added(rdb: RDBStorage) -> None:
    source = _varied_study(rdb)
    want = [t for t in source.get_trials() if t.state.is_finished()]
    study = optuna.create_study(study_name="bulk", storage=rdb, directions=source.directions)
    study.add_trial(want[0])  # numbering goes on from the trials already there
    _optuna.insert_trials(rdb, _optuna.study_id(study), want[1:])
    got = study.get_trials()
    assert [t.number for t in got] == list(range(len(want)))
    for ours, theirs in zip(got, want, strict=True):
        assert (ours.state, ours.values, ours.params, ours.distributions, ours.user_attrs, ours.system_attrs,
                ours.intermediate_values) == (theirs.state, theirs.values, theirs.params, theirs.distributions,
                                              theirs.user_attrs, theirs.system_attrs, theirs.intermediate_values)
    study.optimize(lambda t: 0.0 if len(study.directions) == 1 else [0.0] * len(study.directions), n_trials=1)
    assert study.trials[-1].number == len(want)  # the id sequence went on after the explicit ids


def test_last_metrics_are_the_highest_steps(rdb: RDBStorage) -> None:
    study = _varied_study(rdb)
    trials = study.get_trials()
    got = _optuna.last_metrics(rdb, [_optuna.trial_id(t) for t in trials], chunk=2)
    assert got == {_optuna.trial_id(t): t.system_attrs[_optuna.metric_key(3)] for t in trials[:4]}


# --- Optuna's own attribute keys --------------------------------------------------------------
def test_optunas_keys_are_where_optuna_writes_them(rdb: RDBStorage, tmp_path: Path) -> None:
    queued = _study(rdb)
    queued.enqueue_trial({"x": 2})
    assert queued.trials[0].system_attrs[_optuna.FIXED_PARAMS_ATTR] == {"x": 2}
    study = _study(rdb, sampler=optuna.samplers.GridSampler({"x": [1, 2]}, seed=0))
    trial = study.ask()
    trial.suggest_categorical("x", [1, 2])
    assert set(_optuna.GRID_ATTRS) <= set(study.trials[0].system_attrs)
    store = FileSystemArtifactStore(str(tmp_path))
    (tmp_path / "f.txt").write_text("hi")
    artifact_id = upload_artifact(artifact_store=store, file_path=str(tmp_path / "f.txt"), study_or_trial=trial)
    assert _optuna.ARTIFACT_PREFIX + artifact_id in study.trials[0].system_attrs
    assert Path(_optuna.artifact_base(store)) == tmp_path and _optuna.artifact_base(object()) is None


def test_retry_keys_agree_with_optunas_retry_callback(rdb: RDBStorage) -> None:
    study = _study(rdb)
    _running(study)
    study.tell(0, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = RetryHeartbeatStaleTrialCallback()
        callback(study, study.trials[0])  # Optuna's retry of trial 0: trial 1
        first = study.trials[1]
        assert _optuna.retry_attrs(study.trials[0]) == {
            k: first.system_attrs[k] for k in (_optuna.FAILED_TRIAL_ATTR, _optuna.RETRY_HISTORY_ATTR)}
        study.add_trial(create_trial(state=TrialState.FAIL, params={}, distributions={},
                                     system_attrs=first.system_attrs))  # trial 2: the retry failed too
        callback(study, study.trials[2])
        second = study.trials[3]
        assert _optuna.retry_attrs(study.trials[2]) == {
            k: second.system_attrs[k] for k in (_optuna.FAILED_TRIAL_ATTR, _optuna.RETRY_HISTORY_ATTR)}
        for t in study.trials:
            assert _optuna.retried_trial_number(t) == RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
            assert _optuna.retry_history(t) == RetryHeartbeatStaleTrialCallback.retry_history(t)
    assert _optuna.retry_history(second) == [0, 2] and _optuna.retried_trial_number(second) == 0


# --- NSGA-II ---------------------------------------------------------------------------------
def test_nsga2_fronts_and_crowding_on_a_known_front() -> None:
    points = [(1, 5), (2, 3), (3, 2), (5, 1), (2.5, 2.5), (4, 4), (6, 6)]
    trials = [create_trial(values=list(p)) for p in points]
    for number, t in enumerate(trials):
        t.number = number
    fronts = _optuna.nondominated_fronts(trials, [StudyDirection.MINIMIZE] * 2)
    assert [sorted(t.number for t in f) for f in fronts] == [[0, 1, 2, 3, 4], [5], [6]]
    front = list(fronts[0])
    _optuna.crowding_sort(front)
    assert {front[0].number, front[1].number} == {0, 3}  # the extremes: infinite distance first
    maxed = _optuna.nondominated_fronts(trials, [StudyDirection.MAXIMIZE] * 2)
    assert [t.number for t in maxed[0]] == [6]


# --- the gRPC proxy ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_proxy_service_and_a_heartbeat_client(rdb: RDBStorage) -> None:
    grpc = pytest.importorskip("grpc")
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    _optuna.add_storage_service(server, rdb)
    port = server.add_insecure_port(f"127.0.0.1:{_free_port()}")
    server.start()
    channels: list[Any] = []
    asked: list[int] = []

    class Client(_optuna.proxy_client_base([("grpc.max_receive_message_length", -1)])):  # type: ignore[misc]
        def connected(self, channel: Any) -> None:
            channels.append(channel)

        def record_heartbeat(self, trial_id: int) -> None:
            pass

        def stale_trials(self, study_id: int) -> list[int]:
            asked.append(study_id)
            return [t._trial_id for t in self.get_all_trials(study_id, states=(TrialState.RUNNING,))]

        def get_heartbeat_interval(self) -> int | None:
            return 1

        def get_heartbeat_stale_trial_callback(self) -> Any:
            return None

    try:
        client = Client(host="127.0.0.1", port=port)
        client.wait_server_ready(timeout=10)
        assert len(channels) == 1
        study = _study(client)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        study.ask()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # asks stale_trials through Optuna's private hook
        assert asked and asked[-1] == _optuna.study_id(study)
        assert [t.state for t in optuna.load_study(study_name=study.study_name, storage=rdb).trials] == \
            [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
        client.close()
    finally:
        server.stop(0)


def test_experimental_silences_optunas_experimental_warnings_only(rdb: RDBStorage) -> None:
    study = _study(rdb)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _optuna.experimental():
            study.set_metric_names(["loss"])  # experimental in the installed Optuna
            optuna.storages.fail_stale_trials(study)
            warnings.warn("not Optuna's", UserWarning)
    assert [str(w.message) for w in caught] == ["not Optuna's"]
    assert study.metric_names == ["loss"]
