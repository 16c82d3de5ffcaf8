"""The study lock (:mod:`hpo.storage.locks`) on SQLite and on a real PostgreSQL: while one holder has
it, another (thread or process) waits until it is released."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import hpo_env
from hpo.storage.locks import StudyLock
from hpo.storage.backend import open_storage

HOLD = 0.6  # seconds the first holder keeps the lock


def _lock(url: str, study: str = "s") -> StudyLock:
    return StudyLock(url, study, getattr(open_storage(url), "engine", None))


def _second_waits_for_first(first: StudyLock, second: StudyLock) -> float:
    """Seconds the second holder waited for the lock while the first held it for HOLD."""
    first.acquire()
    got = threading.Event()
    waited: list[float] = []

    def take() -> None:
        start = time.monotonic()
        second.acquire()
        waited.append(time.monotonic() - start)
        got.set()
        second.release()

    thread = threading.Thread(target=take)
    thread.start()
    assert not got.wait(HOLD), "the second holder got the lock while the first held it"
    first.release()
    thread.join(timeout=30)
    assert got.is_set(), "the second holder never got the lock after the release"
    return waited[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_one_holder_at_a_time_across_threads(url: str) -> None:
    assert _second_waits_for_first(_lock(url), _lock(url)) >= HOLD * 0.9


def test_another_study_does_not_wait_on_postgresql(pg_url: str) -> None:
    # an advisory lock per study name (on SQLite the lock file is per database file)
    first, other = _lock(pg_url, "a"), _lock(pg_url, "b")
    first.acquire()
    try:
        start = time.monotonic()
        other.acquire()
        other.release()
        assert time.monotonic() - start < HOLD
    finally:
        first.release()


def test_a_process_waits_for_the_holder(url: str) -> None:
    lock = _lock(url)
    lock.acquire()
    code = ("import sys, time\nfrom hpo.storage.locks import StudyLock\nfrom hpo.storage.backend import open_storage\n"
            "url = sys.argv[1]\nlock = StudyLock(url, 's', getattr(open_storage(url), 'engine', None))\n"
            "print('ready', flush=True)\nstart = time.monotonic()\nlock.acquire()\n"
            "print(f'{time.monotonic() - start:.3f}', flush=True)\nlock.release()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, url], env=hpo_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(HOLD)
        assert proc.poll() is None, "the process got the lock while this one held it"
    finally:
        lock.release()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and float(out.strip()) >= HOLD * 0.9


def test_released_lock_is_free_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    lock = _lock(url)
    for _ in range(2):
        lock.acquire()
        lock.release()
    assert (tmp_path / "studies.db.hpo-lock").exists()
    assert _second_waits_for_first(_lock(url), lock) >= HOLD * 0.9
