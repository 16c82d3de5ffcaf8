"""Moving a study between storages keeps every trial, curve, attribute and artifact."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from conftest import run_hpo
from hpo.storage.artifacts import CHECKPOINT_ATTR
from hpo.cli import main
from hpo._optuna import trial_metrics
from hpo.storage.backend import open_storage
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


def _many_trials(url: str, name: str, n: int) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=open_storage(url))
    x = optuna.distributions.FloatDistribution(0, 1)
    study.add_trials([optuna.create_trial(value=i / n, params={"x": i / n}, distributions={"x": x},
                                          user_attrs={"i": i}) for i in range(n)])
    return study


def _study_names(url: str) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(open_storage(url), include_best_trial=False)]


def test_a_killed_copy_is_invisible_and_the_same_command_resumes_it(tmp_path: Path, pg_url: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import signal
    import subprocess
    import sys

    from sqlalchemy import create_engine, inspect, text

    from conftest import hpo_env
    from hpo.storage.transfer import PARTIAL_SUFFIX
    from test_workers import _wait

    src = f"journal:{tmp_path / 'src.log'}"  # fast to fill
    source = _many_trials(src, "big", 120)
    args = ["copy", "--from", src, "--to", pg_url, "--study", "big", "--artifacts-from", str(tmp_path / "a")]
    proc = subprocess.Popen([sys.executable, "-m", "hpo", *args], cwd=tmp_path, env=hpo_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = "big" + PARTIAL_SUFFIX

    engine = create_engine(pg_url)

    def copying() -> bool:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM trials JOIN studies USING (study_id) "
                                     "WHERE study_name = :n"), {"n": partial}).scalar() >= 10

    _wait(lambda: proc.poll() is None and "trials" in inspect(engine).get_table_names() and copying(),
          timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    engine.dispose()
    assert "big" not in _study_names(pg_url), "a killed copy must not look like the study"
    held = len(optuna.load_study(study_name=partial, storage=open_storage(pg_url)).trials)
    assert 10 <= held < 120
    assert main(args) == 0  # the same command, in-process
    assert "copied big: 120 trials" in capsys.readouterr().out
    assert partial not in _study_names(pg_url)
    copied = optuna.load_study(study_name="big", storage=open_storage(pg_url)).trials
    assert [(t.number, t.value, t.user_attrs) for t in copied] == \
        [(t.number, t.value, t.user_attrs) for t in source.trials]
    assert main(args) == 1  # a finished copy is not copied twice
    assert "already exists" in capsys.readouterr().err


def test_an_unfinished_copy_into_a_journal_is_copied_again(tmp_path: Path) -> None:
    from hpo.storage.transfer import COPYING_ATTR

    src, dst = f"sqlite:///{tmp_path / 'src.db'}", f"journal:{tmp_path / 'dst.log'}"
    _many_trials(src, "j", 5)
    half = _many_trials(dst, "j", 2)  # what a killed copy leaves: the name, a mark, some trials
    half._storage.set_study_system_attr(half._study_id, COPYING_ATTR, True)
    assert main(["copy", "--from", src, "--to", dst, "--artifacts-from", str(tmp_path / "a")]) == 0
    study = optuna.load_study(study_name="j", storage=open_storage(dst))
    assert len(study.trials) == 5 and study._storage.get_study_system_attrs(study._study_id)[COPYING_ATTR] is False
