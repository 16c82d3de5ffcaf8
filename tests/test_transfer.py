"""Moving a study between storages keeps every trial, curve, attribute and artifact."""

from __future__ import annotations

from pathlib import Path

import optuna

from conftest import run_hpo
from hpo.artifacts import CHECKPOINT_ATTR
from hpo.storage import open_storage, trial_metrics
from test_workers import _spec


def test_copy_sqlite_to_postgres_and_back_keeps_everything(workdir: Path, pg_url: str) -> None:
    _spec(workdir, "moving", n_trials=3, checkpoint_every=4)
    assert run_hpo("optimize", "--study", "moving", cwd=workdir).returncode == 0
    sqlite_url = f"sqlite:///{workdir / 'studies.db'}"
    back_url = f"sqlite:///{workdir / 'back.db'}"
    up = run_hpo("copy", "--from", sqlite_url, "--to", pg_url, "--study", "moving",
                 "--artifacts-to", str(workdir / "cluster-artifacts"), cwd=workdir)
    assert up.returncode == 0, up.stderr
    assert "3 trials, 3 artifact files" in up.stdout
    down = run_hpo("copy", "--from", pg_url, "--to", back_url, "--artifacts-from", str(workdir / "cluster-artifacts"),
                   "--artifacts-to", str(workdir / "back-artifacts"), "--study", "moving", cwd=workdir)
    assert down.returncode == 0, down.stderr
    before = optuna.load_study(study_name="moving", storage=open_storage(sqlite_url))
    after = optuna.load_study(study_name="moving", storage=open_storage(back_url))
    assert after.user_attrs == before.user_attrs
    for x, y in zip(before.trials, after.trials, strict=True):
        assert (x.state, x.values, x.params) == (y.state, y.values, y.params)
        assert x.intermediate_values == y.intermediate_values
        assert x.user_attrs == y.user_attrs and trial_metrics(x.system_attrs) == trial_metrics(y.system_attrs)
        pointer = y.system_attrs[CHECKPOINT_ATTR]
        original = (workdir / "artifacts" / pointer["artifact_id"]).read_bytes()
        assert (workdir / "back-artifacts" / pointer["artifact_id"]).read_bytes() == original
    again = run_hpo("copy", "--from", sqlite_url, "--to", back_url, "--study", "moving", cwd=workdir)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
