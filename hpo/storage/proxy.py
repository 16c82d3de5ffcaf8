"""A study behind Optuna's gRPC storage proxy: the server (``hpo storage-proxy``) and its client.

Hundreds of workers that each hold database connections and re-read every trial do not
scale (optuna #3478, #3053); Optuna's answer is one proxy process in front of the database
that caches finished trials, and clients (``GrpcStorageProxy``) that fetch only what changed.
Its storage API has no heartbeats and no study lock, so the proxy serves a second small
service, ``hpo.Study``, on the same port, for what ``hpo`` needs beyond that API:

- ``Hold``: the study lock (:class:`hpo.storage.locks.StudyLock` on the database, so workers on the
  direct path and behind any proxy exclude each other) held for a client while its call stays
  open. A client that dies drops its connection, and the lock with it.
- ``Beat`` and ``Stale``: heartbeats in Optuna's heartbeat table, judged on the database's clock,
  so a dead worker's trial is failed and retried exactly as on the direct path.
- ``Note``: the reason on a trial that is already FAIL (:func:`hpo.storage.backend.note_on_finished_trial`).
- ``Report``: one report (curve value and metrics) in one transaction, by the same
  :class:`hpo.storage.backend.CurveWriter` as the direct path: one round trip, durable on return.

Messages are JSON; no generated code beyond Optuna's own.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterator

from hpo.errors import HpoError
from hpo.storage.backend import GRPC_PREFIX, JOURNAL_PREFIX, grpc_address

if TYPE_CHECKING:
    import grpc
    from optuna.storages import RDBStorage

SERVICE = "hpo.Study"
DEFAULT_PORT = 13000
DEFAULT_THREADS = 128  # a worker waiting for the study lock occupies one server thread
# The server pings idle clients, so a worker on a machine that vanished (no FIN, no RST)
# releases the study lock within about keepalive time + timeout.
SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


# A worker rides over a proxy restart: every call waits for the proxy for up to this long
# (gRPC's waitForReady), then fails as before.
PATIENCE_SECONDS = 60
CLIENT_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.service_config", json.dumps({"methodConfig": [
        {"name": [{}], "waitForReady": True, "timeout": f"{PATIENCE_SECONDS}s"}]})),
]


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _loads(data: bytes) -> Any:
    return json.loads(data)


def _grpc() -> Any:
    try:
        import grpc
    except ImportError:
        raise HpoError('the gRPC storage proxy needs grpcio (fix: pip install -e ".[grpc]")') from None
    return grpc


def parse_url(url: str) -> tuple[str, int]:
    """``grpc://HOST:PORT`` → (host, port) (:func:`hpo.storage.backend.grpc_address`);
    anything else is one :class:`HpoError` line."""
    address = grpc_address(url)
    if address is None:
        raise HpoError(f"storage {url}: not grpc://HOST:PORT (fix: e.g. grpc://127.0.0.1:{DEFAULT_PORT})")
    return address


# --- the server ------------------------------------------------------------------------------
class StudyService:
    """``hpo.Study``: lock, heartbeats, notes and reports on the RDB behind the proxy.

    Args:
        rdb: the storage the proxy fronts (its engine takes the locks and writes).
        url: its URL, for :class:`hpo.storage.locks.StudyLock`.
    """

    def __init__(self, rdb: RDBStorage, url: str) -> None:
        self._rdb, self._url = rdb, url
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def handler(self) -> Any:
        grpc = _grpc()
        unary = {name: grpc.unary_unary_rpc_method_handler(fn, request_deserializer=_loads,
                                                           response_serializer=_dumps)
                 for name, fn in (("Beat", self.beat), ("Stale", self.stale), ("Note", self.note),
                                  ("Report", self.report))}
        unary["Hold"] = grpc.unary_stream_rpc_method_handler(self.hold, request_deserializer=_loads,
                                                             response_serializer=_dumps)
        return grpc.method_handlers_generic_handler(SERVICE, unary)

    def hold(self, request: dict[str, Any], context: Any) -> Iterator[str]:
        """Take the study lock, answer "held", keep it until the client ends the call."""
        from hpo.storage.locks import StudyLock

        name = request["study"]
        with self._guard:
            local = self._locks.setdefault(name, threading.Lock())  # one DB connection per study
        while not local.acquire(timeout=0.5):
            if not context.is_active():
                return
        try:
            lock = StudyLock(self._url, name, self._rdb.engine)
            lock.acquire()
            try:
                ended = threading.Event()
                if context.add_callback(ended.set):
                    yield "held"
                    ended.wait()
            finally:
                lock.release()
        finally:
            local.release()

    # gRPC takes a None message for a failed (de)serialisation: calls without an answer say "ok".
    def beat(self, request: dict[str, Any], context: Any) -> str:
        self._rdb.record_heartbeat(int(request["trial"]))
        return "ok"

    def stale(self, request: dict[str, Any], context: Any) -> list[int]:
        """RUNNING trials of the study whose heartbeat is older than ``grace`` s, by the DB's clock."""
        from hpo._optuna import stale_trial_ids

        return stale_trial_ids(self._rdb, int(request["study_id"]), timedelta(seconds=float(request["grace"])))

    def note(self, request: dict[str, Any], context: Any) -> str:
        from hpo.storage.backend import note_on_finished_trial

        note_on_finished_trial(self._rdb, int(request["trial"]), request["key"], request["value"])
        return "ok"

    def report(self, request: dict[str, Any], context: Any) -> str:
        from hpo.storage.backend import CurveWriter

        writer = CurveWriter(self._rdb, int(request["trial"]))
        try:
            writer.write(int(request["step"]), float(request["value"]), request["metrics"])
        finally:
            writer.close()
        return "ok"


def make_server(url: str, host: str, port: int, threads: int = DEFAULT_THREADS) -> Any:
    """Optuna's proxy service for the RDB at ``url`` plus ``hpo.Study``, bound, not started.

    Args:
        url: the SQLAlchemy URL of the study database (not ``grpc://``, not ``journal:``).
        host: the address to listen on (127.0.0.1: this machine only).
        port: the port (0: any free one; the bound port is ``server.hpo_port``).
        threads: server threads; each worker waiting for the study lock holds one.
    """
    grpc = _grpc()
    from hpo._optuna import add_storage_service
    from hpo.storage.backend import open_storage

    if url.startswith(GRPC_PREFIX) or url.startswith(JOURNAL_PREFIX):
        raise HpoError(f"storage {url}: the proxy fronts a database (fix: --storage postgresql+psycopg://...)")
    rdb = open_storage(url)
    server = grpc.server(ThreadPoolExecutor(max_workers=threads), options=SERVER_OPTIONS)
    add_storage_service(server, rdb)
    server.add_generic_rpc_handlers((StudyService(rdb, url).handler(),))
    try:
        server.hpo_port = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as e:
        raise HpoError(f"storage proxy: cannot listen on {host}:{port}: {e} (fix: another --port)") from None
    return server


# --- the client ------------------------------------------------------------------------------
def _client_class() -> type:
    _grpc()
    from hpo._optuna import proxy_client_base

    class ProxyStorage(proxy_client_base(CLIENT_OPTIONS)):  # type: ignore[misc]
        """Optuna's ``GrpcStorageProxy`` with heartbeats, notes and one-round-trip reports.

        Args:
            host, port: the proxy's address.
            heartbeat_interval, grace_period, heartbeat_stale_trial_callback: as for ``RDBStorage``.
        """

        def __init__(self, *, host: str, port: int, heartbeat_interval: int | None = None,
                     grace_period: int | None = None,
                     heartbeat_stale_trial_callback: Callable[..., None] | None = None) -> None:
            self.heartbeat_interval = heartbeat_interval
            self.grace_period = grace_period
            self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback
            super().__init__(host=host, port=port)

        def connected(self, channel: Any) -> None:
            call = channel.unary_unary
            self._hpo = {name: call(f"/{SERVICE}/{name}", request_serializer=_dumps, response_deserializer=_loads)
                         for name in ("Beat", "Stale", "Note", "Report")}

        def record_heartbeat(self, trial_id: int) -> None:
            self._hpo["Beat"]({"trial": trial_id})

        def stale_trials(self, study_id: int) -> list[int]:
            grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
            return list(self._hpo["Stale"]({"study_id": study_id, "grace": grace}))

        def get_heartbeat_interval(self) -> int | None:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> Callable[..., None] | None:
            return self.heartbeat_stale_trial_callback

        def note_on_finished_trial(self, trial_id: int, key: str, value: Any) -> None:
            self._hpo["Note"]({"trial": trial_id, "key": key, "value": value})

        def write_report(self, trial_id: int, step: int, value: float, metrics: dict[str, float]) -> None:
            self._hpo["Report"]({"trial": trial_id, "step": step, "value": value, "metrics": metrics})

    return ProxyStorage


def open_proxy_storage(url: str, timeout: float = 10.0, **heartbeat: Any) -> Any:
    """The client storage for ``grpc://HOST:PORT``, once the proxy answers.

    Args:
        url: the proxy's URL.
        timeout: seconds to wait for it.
        heartbeat: ``heartbeat_interval``, ``grace_period``, ``heartbeat_stale_trial_callback``.
    """
    host, port = parse_url(url)
    storage = _client_class()(host=host, port=port, **heartbeat)
    try:
        storage.wait_server_ready(timeout=timeout)
    except ConnectionError:
        storage.close()
        raise HpoError(f"storage {url}: no proxy answers there within {timeout:g} s "
                       "(fix: start it with `hpo storage-proxy --storage URL`, check host and port)") from None
    return storage


class RemoteLock:
    """The study lock held by the proxy for this process (see ``Hold``), for :class:`hpo.storage.locks.StudyLock`.

    Args:
        url: the proxy's URL.
        study_name: the study to lock.
    """

    def __init__(self, url: str, study_name: str) -> None:
        grpc = _grpc()
        host, port = parse_url(url)
        self._channel = grpc.insecure_channel(f"{host}:{port}")
        self._hold = self._channel.unary_stream(f"/{SERVICE}/Hold", request_serializer=_dumps,
                                                response_deserializer=_loads)
        self._study = study_name
        self._call: Any = None

    def acquire(self) -> None:
        grpc, deadline = _grpc(), time.monotonic() + PATIENCE_SECONDS
        while True:
            self._call = self._hold({"study": self._study}, wait_for_ready=True)
            try:
                next(self._call)  # blocks until the proxy holds the lock for us
                return
            except grpc.RpcError as e:  # the proxy went away while we waited: wait for it again
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def release(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None
