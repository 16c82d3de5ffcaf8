"""The trial loop (:mod:`hpo.run.loop`) through the CLI: totals, resume after a kill, Ctrl-C, failures, PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from optuna.trial import TrialState

from conftest import hpo_env, run_hpo, syn_spec as _spec, syn_study as _study

def test_n_trials_is_a_total_and_rerun_resumes(workdir: Path) -> None:
    _spec(workdir)
    first = run_hpo("optimize", "--study", "syn", "--n-trials", "4", cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert (workdir / "studies.db").exists()
    assert "[4/4]" in first.stderr and "best trial" in first.stdout
    second = run_hpo("optimize", "--study", "syn", cwd=workdir)  # the spec's n_trials: 6
    assert second.returncode == 0, second.stderr
    assert "[5/6]" in second.stderr and "[1/6]" not in second.stderr
    study = _study(workdir)
    assert len(study.trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    t = study.trials[0]
    assert {"wall_seconds", "train_seconds", "tokens"} <= set(t.user_attrs)
    assert len(t.intermediate_values) == 8
    third = run_hpo("optimize", "--study", "syn", cwd=workdir)
    assert third.returncode == 0 and len(_study(workdir).trials) == 6


def _wait_for_running(workdir: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (workdir / "studies.db").exists():
            try:
                trials = _study(workdir).trials
            except KeyError:
                trials = []
            if any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials):
                return
        time.sleep(0.2)
    raise AssertionError("no trial started reporting in time")


def _start(workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hpo", "optimize", "--study", "syn"], cwd=workdir,
                            env=hpo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_the_total(workdir: Path) -> None:
    _spec(workdir, fixed={"steps": 8, "sleep_per_step": 0.25}, n_trials=3)
    proc = _start(workdir)
    _wait_for_running(workdir)
    proc.kill()  # kill -9: no chance to clean up
    proc.wait()
    resumed = run_hpo("optimize", "--study", "syn", cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "marked FAIL: trials [0]" in resumed.stderr
    study = _study(workdir)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 3
    dead = study.trials[0]
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs["fail_reason"]
    assert len(dead.intermediate_values) >= 1, "reports made before the kill are kept"


def test_ctrl_c_marks_the_trial_failed_and_rerun_continues(workdir: Path) -> None:
    _spec(workdir, fixed={"steps": 8, "sleep_per_step": 0.25}, n_trials=2)
    proc = _start(workdir)
    _wait_for_running(workdir)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "re-run the same command" in err and "Traceback" not in err
    trial = _study(workdir).trials[0]
    assert trial.state == TrialState.FAIL and "interrupted" in trial.user_attrs["fail_reason"]
    again = run_hpo("optimize", "--study", "syn", cwd=workdir)
    assert again.returncode == 0, again.stderr
    states = [t.state for t in _study(workdir).trials]
    assert states.count(TrialState.COMPLETE) == 2


def test_failing_trial_is_recorded_and_the_study_goes_on(workdir: Path) -> None:
    (workdir / "flaky.py").write_text(
        "from objectives.synthetic import train as base\n"
        "def train(config, report):\n"
        "    if config['width'] >= 96:\n"
        "        raise RuntimeError(f\"out of memory at width {config['width']}\")\n"
        "    return base(config, report)\n"
    )
    _spec(workdir, objective="flaky:train", n_trials=8, sampler={"name": "random", "options": {"seed": 3}})
    proc = run_hpo("optimize", "--study", "syn", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    study = _study(workdir)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "the seed was chosen so that some widths are >= 96"
    assert all(t.user_attrs["fail_reason"].startswith("RuntimeError: out of memory") for t in failed)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 8
    assert "Traceback" not in proc.stderr


def test_always_failing_objective_stops_with_one_line(workdir: Path) -> None:
    _spec(workdir, fixed={"steps": 8, "fail_at_step": 2})
    proc = run_hpo("optimize", "--study", "syn", cwd=workdir)
    assert proc.returncode == 1
    assert "5 trials in a row failed" in proc.stderr and "synthetic failure at step 2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_same_study_on_postgresql(workdir: Path, pg_url: str) -> None:
    _spec(workdir, name="syn_pg", n_trials=3)
    proc = run_hpo("optimize", "--study", "syn_pg", "--storage", pg_url, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert not (workdir / "studies.db").exists()
    env_run = run_hpo("optimize", "--study", "syn_pg", "--n-trials", "4", cwd=workdir, HPO_STORAGE=pg_url)
    assert env_run.returncode == 0, env_run.stderr
    study = _study(workdir, "syn_pg", pg_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    listing = run_hpo("studies", "--storage", pg_url, cwd=workdir)
    assert "syn_pg" in listing.stdout
    shown = run_hpo("show", "--study", "syn_pg", "--storage", pg_url, cwd=workdir)
    assert shown.returncode == 0 and "COMPLETE" in shown.stdout and "lr" in shown.stdout


def test_show_unknown_study_is_one_line(workdir: Path) -> None:
    import optuna

    optuna.create_study(study_name="other", storage=f"sqlite:///{workdir / 'studies.db'}")
    proc = run_hpo("show", "--study", "ghost", cwd=workdir)
    assert proc.returncode == 1 and "study 'ghost' not found" in proc.stderr and "Traceback" not in proc.stderr


def test_queued_trials_run_even_when_they_make_up_the_total(workdir: Path) -> None:
    _spec(workdir, n_trials=3)
    assert run_hpo("optimize", "--study", "syn", "--n-trials", "1", cwd=workdir).returncode == 0
    study = _study(workdir)
    for lr in (0.001, 0.002):
        study.enqueue_trial({"lr": lr, "width": 32})
    proc = run_hpo("optimize", "--study", "syn", cwd=workdir)  # 1 done + 2 queued = the total of 3
    assert proc.returncode == 0, proc.stderr
    trials = _study(workdir).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert sorted(t.params["lr"] for t in trials[1:]) == [0.001, 0.002]
