"""A study-wide lock held from "is the study full?" until the new trial exists.

Without it, two workers can both see 199 of 200 trials and both start the 200th. The lock
lives where the study does: a PostgreSQL advisory lock, a MySQL named lock, or a file
lock beside an SQLite database or journal file, so it works across machines where the
storage does. Behind the gRPC storage proxy the proxy holds that lock for the worker
(:class:`hpo.storage.proxy.RemoteLock`).
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from hpo.storage.backend import GRPC_PREFIX, JOURNAL_PREFIX, resolve_url


class StudyLock:
    def __init__(self, url: str | None, study_name: str, engine: Any = None) -> None:
        url = resolve_url(url)
        self._key = int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True)
        self._name = f"hpo:{hashlib.sha1(study_name.encode()).hexdigest()[:40]}"
        self._engine, self._conn, self._file = engine, None, None
        self._path: Path | None = None
        self._remote = None
        if url.startswith(GRPC_PREFIX):
            from hpo.storage.proxy import RemoteLock

            self._remote = RemoteLock(url, study_name)
        elif url.startswith(JOURNAL_PREFIX):
            self._path = Path(url[len(JOURNAL_PREFIX):] + ".hpo-lock")
        elif url.startswith("sqlite"):
            database = make_url(url).database
            self._path = Path(f"{database}.hpo-lock") if database and database != ":memory:" else None
        self._dialect = None if engine is None else engine.dialect.name

    def acquire(self) -> None:
        if self._remote is not None:
            self._remote.acquire()
        elif self._path is not None:
            self._file = open(self._path, "a+")  # noqa: SIM115 - held until release()
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif self._dialect in ("postgresql", "mysql", "mariadb"):
            self._conn = self._engine.connect()
            if self._dialect == "postgresql":
                self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            else:
                self._conn.execute(text("SELECT GET_LOCK(:n, -1)"), {"n": self._name})
            self._conn.commit()

    def release(self) -> None:
        if self._remote is not None:
            self._remote.release()
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            if self._dialect == "postgresql":
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            else:
                self._conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self._name})
            self._conn.commit()
            self._conn.close()
            self._conn = None
