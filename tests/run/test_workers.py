"""Many workers, many machines, nothing lost: against the real PostgreSQL server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import hpo_env, run_hpo
from hpo.storage.artifacts import CHECKPOINT_ATTR
from hpo.storage.backend import open_storage
from hpo.run.workers import worker_env


def _spec(root: Path, name: str, n_trials: int, **fixed: object) -> None:
    (root / "search_spaces").mkdir(parents=True, exist_ok=True)
    data = {"study": name, "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
            "n_trials": n_trials, "sampler": {"name": "random", "options": {"seed": 0}},
            "fixed": {"steps": 12, **fixed},
            "space": {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}}}
    (root / "search_spaces" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _worker(cwd: Path, name: str, url: str, artifacts: Path, host: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "hpo", "optimize", "--study", name, "--storage", url,
           "--artifacts", str(artifacts), "--heartbeat", "1", "--grace", "4"]
    return subprocess.Popen(cmd, cwd=cwd, env=hpo_env(HPO_HOST=host), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait(predicate, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _checkpointed_running(url: str, name: str, pid: int) -> optuna.trial.FrozenTrial | None:
    try:
        trials = optuna.load_study(study_name=name, storage=open_storage(url)).trials
    except KeyError:
        return None
    for t in trials:
        if (t.state == TrialState.RUNNING and t.system_attrs.get("hpo:worker", {}).get("pid") == pid
                and CHECKPOINT_ATTR in t.system_attrs):
            return t
    return None


def _first_step(t: optuna.trial.FrozenTrial) -> int:
    return min(t.intermediate_values)


@pytest.mark.slow
def test_two_machines_one_killed_survivor_finishes_with_resumed_retry(tmp_path: Path, pg_url: str) -> None:
    name, artifacts = "two_machines", tmp_path / "shared-artifacts"
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    for m in machines:
        _spec(m, name, n_trials=6, sleep_per_step=0.15, checkpoint_every=3)
    a = _worker(machines[0], name, pg_url, artifacts, "machine-a")
    time.sleep(1.0)
    b = _worker(machines[1], name, pg_url, artifacts, "machine-b")
    holder: list[optuna.trial.FrozenTrial] = []
    _wait(lambda: bool(holder.append(t) or True) if (t := _checkpointed_running(pg_url, name, a.pid)) else False)
    victim = holder[-1]
    a.send_signal(signal.SIGKILL)
    a.wait()
    out, err = b.communicate(timeout=240)
    assert b.returncode == 0, err
    study = optuna.load_study(study_name=name, storage=open_storage(pg_url))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6, [(t.number, t.state.name) for t in study.trials]
    assert len({t._trial_id for t in complete}) == 6
    dead = study.trials[victim.number]
    assert dead.state == TrialState.FAIL and "no heartbeat" in dead.user_attrs["fail_reason"]
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == dead.params
    checkpoint_step = victim.system_attrs[CHECKPOINT_ATTR]["step"]
    assert _first_step(retry[0]) == checkpoint_step + 1 > 1, "the retry resumed from the checkpoint"
    assert "machine-b" == retry[0].system_attrs["hpo:worker"]["host"]


@pytest.mark.slow
def test_four_workers_on_one_sqlite_file_never_lock(workdir: Path) -> None:
    _spec(workdir, "many", n_trials=200, steps=5)
    proc = run_hpo("optimize", "--study", "many", "--workers", "4", cwd=workdir, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "database is locked" not in proc.stderr
    study = optuna.load_study(study_name="many", storage=open_storage(f"sqlite:///{workdir / 'studies.db'}"))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 200
    assert states.count(TrialState.FAIL) == 0, [t.user_attrs.get("fail_reason") for t in study.trials
                                                if t.state == TrialState.FAIL]
    pids = {t.system_attrs["hpo:worker"]["pid"] for t in study.trials}
    assert len(pids) == 4, "all four workers ran trials"


def test_workers_print_a_bad_objective_once(workdir: Path) -> None:
    _spec(workdir, "typo", n_trials=4)
    spec = workdir / "search_spaces" / "typo.yaml"
    spec.write_text(spec.read_text().replace("synthetic:train", "synthetic:trian"))
    proc = run_hpo("optimize", "--study", "typo", "--workers", "2", cwd=workdir)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {spec}: objective: module 'objectives.synthetic' has no function 'trian' (fix: check the name)"]


def test_workers_trial_lines_all_reach_stderr_through_the_pump(workdir: Path) -> None:
    _spec(workdir, "two", n_trials=4, steps=3)
    proc = run_hpo("optimize", "--study", "two", "--workers", "2", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = [line for line in proc.stderr.splitlines() if re.match(r"\[\d/4\] trial \d COMPLETE", line)]
    assert len(done) == 4, proc.stderr  # the pump forwards every worker's lines, not only errors


def test_worker_env_splits_threads_and_pins_gpus() -> None:
    env = worker_env(1, 2, n_gpus=4, cores=8)
    assert env["OMP_NUM_THREADS"] == "4" and env["CUDA_VISIBLE_DEVICES"] == "1" and env["HPO_WORKER"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(0, 3, n_gpus=0, cores=2) or os.environ.get("CUDA_VISIBLE_DEVICES")
    assert worker_env(0, 3, n_gpus=0, cores=2)["OMP_NUM_THREADS"] == "1"


def test_sigterm_mid_trial_then_rerun_resumes_it(workdir: Path) -> None:
    _spec(workdir, "term", n_trials=2, sleep_per_step=0.2, checkpoint_every=3)
    proc = subprocess.Popen([sys.executable, "-m", "hpo", "optimize", "--study", "term"], cwd=workdir,
                            env=hpo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"sqlite:///{workdir / 'studies.db'}"
    _wait(lambda: (workdir / "studies.db").exists() and _checkpointed_running(url, "term", proc.pid) is not None)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    again = run_hpo("optimize", "--study", "term", cwd=workdir)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="term", storage=open_storage(url))
    first = study.trials[0]
    assert first.state == TrialState.FAIL and "interrupted" in first.user_attrs["fail_reason"]
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == first.params
    assert _first_step(retry[0]) == first.system_attrs[CHECKPOINT_ATTR]["step"] + 1 > 1
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2


def test_a_dead_worker_on_another_host_is_reaped_when_the_study_looks_full(tmp_path: Path, pg_url: str) -> None:
    """Issue 17: killed on one host, re-run on another: the dead trial held the last place in the
    total, so the re-run used to print [2/2] and leave it RUNNING for ever."""
    name, artifacts = "zombie", tmp_path / "artifacts"
    for m in ("a", "b"):
        _spec(tmp_path / m, name, n_trials=2, sleep_per_step=0.2)
    a = _worker(tmp_path / "a", name, pg_url, artifacts, "host-a")
    _wait(lambda: any(t.state == TrialState.RUNNING and t.number == 1 and t.intermediate_values
                      for t in _trials(pg_url, name)), timeout=180)
    a.send_signal(signal.SIGKILL)
    a.wait()
    b = _worker(tmp_path / "b", name, pg_url, artifacts, "host-b")  # heartbeat 1 s, grace 4 s
    _, err = b.communicate(timeout=180)
    assert b.returncode == 0, err
    trials = _trials(pg_url, name)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert trials[1].state == TrialState.FAIL and "no heartbeat" in trials[1].user_attrs["fail_reason"]
    # reaped when the re-run started, or (within the grace period) after it waited for it
    assert "marked FAIL: trials [1] (no heartbeat" in err


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url)).trials
    except KeyError:
        return []
