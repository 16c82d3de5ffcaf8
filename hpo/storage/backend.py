"""Where studies live: URL resolution, SQLite tuned for several processes, a trial's curve
written fast and read back."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import optuna
import numpy as np
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.trial import FrozenTrial
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hpo import _optuna
from hpo._optuna import metric_key, trial_metrics
from hpo.errors import HpoError, SpecError, first_line

DEFAULT_URL = "sqlite:///studies.db"
SQLITE_BUSY_SECONDS = 60
JOURNAL_PREFIX = "journal:"
GRPC_PREFIX = "grpc://"


def resolve_url(url: str | None) -> str:
    """``--storage`` wins, then ``$HPO_STORAGE``, then ``studies.db`` in the working directory.

    An empty ``--storage ''`` is a mistake, not "the default": it raises :class:`SpecError`.
    """
    if url is not None and not url.strip():
        raise SpecError("command line: --storage: is empty (fix: give a URL such as sqlite:///studies.db, "
                        "or leave --storage out for the default)")
    return url or os.environ.get("HPO_STORAGE") or DEFAULT_URL


def redact(url: str) -> str:
    """The URL as safe to print: any password replaced by ``***``, even in a URL that does not
    parse (everything between the user name and the last ``@`` is hidden)."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    scheme, sep, tail = url.partition("://")
    if not sep or "@" not in tail:
        return url
    userinfo, host = tail.rsplit("@", 1)
    user, has_password, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if has_password else ''}@{host}"


def _origin(url: str | None) -> str:
    """Where the storage URL came from, as the start of an error line."""
    if url is not None:
        return "command line: --storage"
    return "HPO_STORAGE" if os.environ.get("HPO_STORAGE") else f"command line: (default storage {DEFAULT_URL})"


def grpc_address(url: str) -> tuple[str, int] | None:
    """``grpc://HOST:PORT[/]`` (an IPv6 host in brackets) → (host, port), else None.

    Args:
        url: a storage URL.
    """
    if not url.startswith(GRPC_PREFIX):
        return None
    host, _, port = url[len(GRPC_PREFIX):].rstrip("/").rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def check_url(url: str | None) -> str:
    """The resolved storage URL, or one :class:`SpecError` line saying what is wrong with it.

    Args:
        url: ``--storage`` as given (None: ``$HPO_STORAGE`` or the default).
    """
    origin = _origin(url)
    url = resolve_url(url)
    shown = redact(url)
    if url.startswith(GRPC_PREFIX):
        if grpc_address(url) is None:
            raise SpecError(f"{origin}: {shown} is not a proxy address (fix: grpc://HOST:PORT, e.g. "
                            "grpc://127.0.0.1:13000, as hpo storage-proxy prints it)")
        return url
    if url.startswith(JOURNAL_PREFIX):
        if not url[len(JOURNAL_PREFIX):].strip():
            raise SpecError(f"{origin}: journal: names no file (fix: journal:PATH, e.g. journal:studies.log)")
        return url
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port raises here
    except ArgumentError:
        raise SpecError(f"{origin}: {shown} is not a storage URL (fix: e.g. sqlite:///studies.db, "
                        "postgresql+psycopg://user@host/db or journal:PATH)") from None
    except ValueError:
        raise SpecError(f"{origin}: {shown}: the port is not a number (fix: host:5432, or no port)") from None
    if "@" in (parsed.host or "") or "@" in (parsed.username or ""):
        raise SpecError(f"{origin}: {shown}: the user or password holds an unescaped @ "
                        "(fix: write @ as %40 in the URL)")
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise SpecError(f"{origin}: {shown} names no file (an in-memory database keeps nothing) "
                            "(fix: sqlite:///studies.db)")
    elif not parsed.database:
        raise SpecError(f"{origin}: {shown} names no database (fix: add /DBNAME, e.g. "
                        f"{parsed.get_backend_name()}://user@host/studies)")
    return url


def project_storage(start: str | Path | None = None) -> str:
    """The storage a notebook opens by default: ``$HPO_STORAGE``, else the project's ``studies.db``.

    A Jupyter kernel starts in ``notebooks/``, not where ``hpo optimize`` ran: this looks for
    ``studies.db`` in ``start`` (default: the working directory) and then in each parent up
    to the project's root (the first holding ``search_spaces/`` or ``pyproject.toml``). It
    never names a file that is not there, so no empty database is created.

    Args:
        start: where to start looking.

    Raises:
        HpoError: one line when there is none.
    """
    if os.environ.get("HPO_STORAGE"):
        return os.environ["HPO_STORAGE"]
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "studies.db").is_file():
            return f"sqlite:///{folder / 'studies.db'}"
        if (folder / "search_spaces").is_dir() or (folder / "pyproject.toml").is_file():
            break
    raise HpoError(f"no studies.db in {here} or up to its project's root (fix: run hpo optimize in the project "
                   "first, or set STORAGE=URL before starting Jupyter)")


def load_study(name: str, url: str | None = None) -> optuna.Study:
    """An existing study, for reading: creates no database; a missing one is one line.

    Args:
        name: the study's name.
        url: the storage (None: ``$HPO_STORAGE`` or the default).
    """
    storage = open_storage(url, create=False)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise HpoError(f"study '{name}' not found in {redact(resolve_url(url))} "
                       "(fix: `hpo studies` lists the studies there)") from None


def _tune_sqlite(engine: Any) -> None:
    """WAL lets readers and one writer work at once; a long busy timeout queues writers."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        cur.close()

    engine.dispose()


def open_storage(
    url: str | None = None,
    *,
    create: bool = True,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    heartbeat_stale_trial_callback: Callable[..., None] | None = None,
) -> BaseStorage:
    """Open a storage; every problem with it is one :class:`HpoError` line without the password.

    Args:
        url: ``--storage`` as given (None: ``$HPO_STORAGE`` or ``studies.db`` here).
        create: create a missing SQLite or journal file (``hpo optimize``); read-only commands
            pass False and get one line instead of a new empty file.
        heartbeat_interval: Optuna's heartbeat interval (RDB storages).
        grace_period: seconds without a heartbeat before a trial is declared dead.
        heartbeat_stale_trial_callback: called with each trial found dead.
    """
    origin = _origin(url)
    if resolve_url(url).startswith(GRPC_PREFIX):  # Optuna's gRPC storage proxy (`hpo storage-proxy`)
        from hpo.storage.proxy import open_proxy_storage

        return open_proxy_storage(resolve_url(url), heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                  heartbeat_stale_trial_callback=heartbeat_stale_trial_callback)
    url = check_url(url)
    if not create:
        _exists(url, origin)
    if url.startswith(JOURNAL_PREFIX):
        return _journal(url, origin)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        storage = _rdb_storage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=heartbeat_stale_trial_callback,
        )
    except (SQLAlchemyError, ArgumentError, ImportError, ValueError) as e:
        raise HpoError(
            f"storage {redact(url)}: cannot open: {first_line(e)} "
            "(fix: check --storage / HPO_STORAGE, that the server runs and its driver is installed)"
        ) from None
    if url.startswith("sqlite"):
        _tune_sqlite(storage.engine)
    return storage


def _exists(url: str, origin: str) -> None:
    """For a read-only command: the file of a SQLite or journal URL must already be there."""
    path = Path(url[len(JOURNAL_PREFIX):]) if url.startswith(JOURNAL_PREFIX) else (
        Path(make_url(url).database or "") if make_url(url).get_backend_name() == "sqlite" else None)
    if path is not None and not path.is_file():
        raise SpecError(f"{origin}: no such file {path} in {Path.cwd()} (fix: check the path, or run this where "
                        "hpo optimize made it; this command creates no database)")


def _journal(url: str, origin: str) -> JournalStorage:
    path = Path(url[len(JOURNAL_PREFIX):])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    except OSError as e:
        raise SpecError(f"{origin}: {url}: cannot open: {e.strerror or e} (fix: a journal file in a "
                        "directory you can write)") from None


def _rdb_storage(url: str, **kwargs: Any) -> RDBStorage:
    """RDBStorage, retried while another process is creating the same schema."""
    for attempt in range(20):
        try:
            with _optuna.experimental():  # heartbeat_interval is "experimental" since Optuna 2.9
                return RDBStorage(url, **kwargs)
        except SQLAlchemyError as e:
            racing = "already exists" in str(e) or "alembic_version" in str(e)
            if not racing or attempt == 19:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


class CurveWriter:
    """Writes one report (curve value + all metrics) durably before returning.

    On an RDB storage both rows go in one transaction on Optuna's own tables (0.1 ms on
    SQLite instead of 2 ms through two API calls); behind the gRPC proxy the proxy does the
    same in one call; any other storage uses the public API.
    The metrics land in the system attribute ``hpo:m:<step>`` so Optuna's ``copy_study``
    and exports carry them.
    """

    def __init__(self, storage: BaseStorage, trial_id: int) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._engine = storage.engine if isinstance(storage, RDBStorage) else None
        self._remote = getattr(storage, "write_report", None)  # hpo.storage.proxy: one round trip
        self._conn: Any = None

    def write(self, step: int, value: float, metrics: dict[str, float]) -> None:
        if self._remote is not None:
            self._remote(self._trial_id, step, value, metrics)
            return
        if self._engine is None:
            self._storage.set_trial_intermediate_value(self._trial_id, step, value)
            self._storage.set_trial_system_attr(self._trial_id, metric_key(step), metrics)
            return
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            with self._conn.begin():
                if self._engine.dialect.name == "postgresql":
                    # Committed and visible to every worker on return; only a crash of the
                    # server itself (not of this process) could lose the last few hundred ms.
                    self._conn.execute(text("SET LOCAL synchronous_commit = off"))
                _optuna.insert_report(self._conn, self._trial_id, step, value, metrics)
        except SQLAlchemyError:
            self.close()
            raise

    def write_attrs(self, user: dict[str, Any], system: dict[str, Any]) -> None:
        """Attributes of the running trial (a pruner's reason and notes), through Optuna's API."""
        for key, value in system.items():
            self._storage.set_trial_system_attr(self._trial_id, key, value)
        for key, value in user.items():
            self._storage.set_trial_user_attr(self._trial_id, key, value)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def note_on_finished_trial(storage: BaseStorage, trial_id: int, key: str, value: Any) -> None:
    """Add a user attribute to a trial that is already FAIL (Optuna's API refuses that).

    Used to say why the heartbeat failed a trial: Optuna marks it FAIL first, then calls us.
    """
    if hasattr(storage, "note_on_finished_trial"):  # hpo.storage.proxy: the proxy writes it
        storage.note_on_finished_trial(trial_id, key, value)
        return
    backend = _optuna.rdb_backend(storage)
    if backend is not None:
        _optuna.insert_user_attr(backend, trial_id, key, value)


def set_user_attrs(storage: BaseStorage, trial_id: int, attrs: dict[str, Any]) -> None:
    """A running trial's user attributes, all in one transaction on an RDB storage (one write
    each costs milliseconds: 5,000 metrics took 40 s); through the public API elsewhere."""
    backend = _optuna.rdb_backend(storage)
    if backend is None or len(attrs) < 8:
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        return
    _optuna.replace_user_attrs(backend, trial_id, attrs)


def curve(trial: FrozenTrial, metric: str | None = None, index: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a trial's curve, in step order: what :class:`CurveWriter` wrote.

    Args:
        trial: the trial (with its intermediate values and ``hpo:m:<step>`` attributes).
        metric: y: the metric reported with each value (None: the curve value itself).
        index: x: the metric reported with each value, e.g. ``tokens`` or a clock (None: the
            step); ``tokens`` falls back on the step for reports made through plain Optuna.
            Reports without an x or a y are skipped.
    """
    extra = trial_metrics(trial.system_attrs)
    xs, ys = [], []
    for step, value in sorted(trial.intermediate_values.items()):
        m = extra.get(step, {})
        y = value if metric is None else m.get(metric)
        x = step if index is None else m.get(index, step if index == "tokens" else None)
        if y is None or x is None:
            continue
        xs.append(float(x))
        ys.append(float(y))
    return np.asarray(xs), np.asarray(ys)
