"""Shared fixtures: a real PostgreSQL database per test session, CLI runs in a temp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("HPO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh PostgreSQL database on the real server; the test fails (never skips) without it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    name = f"hpo_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as e:
        pytest.fail(f"PostgreSQL at {PG_ADMIN} is unreachable: {e}")
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory holding a copy of search_spaces/."""
    shutil.copytree(ROOT / "search_spaces", tmp_path / "search_spaces")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    return tmp_path


def hpo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HPO_STORAGE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def run_hpo(*args: str, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m hpo ARGS`` as a user would run it; returns the finished process."""
    return subprocess.run([sys.executable, "-m", "hpo", *args], cwd=cwd, env=hpo_env(**env),
                          capture_output=True, text=True, timeout=timeout)


# The synthetic objective's spec, written into a workdir (tests of the session and the loop).
SYN_SPEC = {
    "study": "syn",
    "objective": "objectives.synthetic:train",
    "metrics": {"val_loss": "minimize"},
    "n_trials": 6,
    "sampler": {"name": "tpe", "options": {"seed": 0}},
    "fixed": {"steps": 8},
    "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
              "width": {"type": "int", "low": 16, "high": 128, "step": 16}},
}


def syn_spec(workdir: Path, name: str = "syn", **changes: object) -> Path:
    """Write search_spaces/NAME.yaml: the synthetic objective's spec with ``changes``."""
    data = {**SYN_SPEC, "study": name, **changes}
    path = workdir / "search_spaces" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def syn_study(workdir: Path, name: str = "syn", url: str | None = None) -> optuna.Study:
    """The study NAME in the workdir's studies.db (or at ``url``)."""
    from hpo.storage.backend import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url or f"sqlite:///{workdir / 'studies.db'}"))
