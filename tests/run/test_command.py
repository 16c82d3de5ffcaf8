"""Command objectives: a training program as a process per trial, through the real runner."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from hpo.cli import main
from hpo.run.command import CommandObjective, CommandSpec
from hpo.errors import SpecError
from hpo.run.protocol import StopTrial
from hpo.run.loop import run
from hpo.run.session import open_session
from hpo.specs.models import parse_spec
from hpo.run.session import load_spec

# One script for every case; what it does comes from its config (which it checks arrived
# the same three ways: arguments, $HPO_CONFIG and $HPO_CONFIG_FILE).
SCRIPT = r'''
import json, os, signal, subprocess, sys, time
config = json.loads(os.environ["HPO_CONFIG"])
assert json.load(open(os.environ["HPO_CONFIG_FILE"])) == config
assert sys.argv[1:] == [f"--{k}={v}" for k, v in config.items()], sys.argv
if config.get("ignore_term"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if config.get("pidfile"):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(config["pidfile"], "w").write(f"{os.getpid()} {child.pid}")
resume = os.environ.get("HPO_RESUME_DIR")
start = float(open(os.path.join(resume, "ckpt.txt")).read()) if resume else 1.0
open(os.path.join(os.environ["HPO_CHECKPOINT_DIR"], "ckpt.txt"), "w").write("0.5")
if config.get("needs_resume") and not resume:
    sys.exit(4)
if config.get("json"):
    import hpo_report
for step in range(1, config.get("steps", 3) + 1):
    loss = start / step
    if config.get("json"):
        hpo_report.report(step, train_loss=loss * 2)          # no curve metric: held, then merged
        hpo_report.report(step, val_loss=loss, tokens=step * 64)
    else:
        print(f"step {step} val_loss={loss:.4f} time={step * 250}ms", flush=True)
    time.sleep(config.get("sleep", 0))
if config.get("fail"):
    print("something went wrong", file=sys.stderr)
    print("boom: bad config", file=sys.stderr)
    sys.exit(3)
if config.get("silent"):
    time.sleep(60)
if config.get("json"):
    hpo_report.result(val_loss=0.123)
'''
PATTERN = r"step (?P<step>\d+) val_loss=(?P<val_loss>[\d.]+) time=(?P<ms>\d+)ms"


def _spec(tmp_path: Path, objective: dict[str, Any] | None = None, **changes: Any) -> Path:
    (tmp_path / "train.py").write_text(SCRIPT)
    data = {"study": "cmd", "metrics": {"val_loss": "minimize"}, "n_trials": 1,
            "objective": {"command": [sys.executable, "train.py"], "pattern": PATTERN,
                          "clock": {"group": "ms", "unit": "ms"}, **(objective or {})},
            "space": {"lr": {"type": "float", "low": 0.1, "high": 1.0}}, **changes}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run(tmp_path: Path, spec_path: Path, n_trials: int = 1, artifacts: str | None = None) -> tuple[optuna.Study, Any]:
    session = open_session(load_spec(spec_path), f"sqlite:///{tmp_path / 'db.sqlite'}",
                           artifacts=artifacts or str(tmp_path / "artifacts"))
    return run(session, n_trials=n_trials, out=open(os.devnull, "w")), session


def test_stdout_lines_report_the_curve_with_the_clock_in_seconds(tmp_path: Path) -> None:
    study, _ = _run(tmp_path, _spec(tmp_path, fixed={"steps": 3}))
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE, t.user_attrs
    assert t.intermediate_values == {1: 1.0, 2: 0.5, 3: pytest.approx(0.3333)}
    assert t.value == pytest.approx(0.3333) and t.user_attrs["train_seconds"] == 0.75
    run_dir = tmp_path / "artifacts" / "runs" / "cmd" / "trial-0"
    assert json.loads((run_dir / "config.json").read_text()) == {"steps": 3, "lr": t.params["lr"]}
    assert "step 3 val_loss=0.3333" in (run_dir / "output.log").read_text()


def test_json_reports_merge_lines_without_the_curve_and_the_result_is_the_value(tmp_path: Path) -> None:
    study, _ = _run(tmp_path, _spec(tmp_path, {"pattern": None, "clock": None}, fixed={"json": True}))
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE, t.user_attrs
    assert t.value == 0.123 and len(t.intermediate_values) == 3
    assert t.user_attrs["train_loss"] == pytest.approx(2 / 3) and t.user_attrs["tokens"] == 192


@pytest.mark.parametrize("ignore_term", [False, True])
def test_a_stopped_trial_ends_its_process_group(tmp_path: Path, ignore_term: bool) -> None:
    """SIGTERM, then SIGKILL after the grace period; the study records PRUNED."""
    pidfile = tmp_path / "pids"
    spec = _spec(tmp_path, {"grace_seconds": 0.5}, fixed={"steps": 200, "sleep": 0.02, "pidfile": str(pidfile),
                                                          "ignore_term": ignore_term},
                 pruners=[{"name": "threshold", "options": {"upper": 0.05, "n_warmup_steps": 3}}])
    study, session = _run(tmp_path, spec)
    t = study.trials[0]
    assert t.state == TrialState.PRUNED and max(t.intermediate_values) < 50
    for pid in map(int, pidfile.read_text().split()):  # the script and its child
        assert not _running(pid)
    gone = session.train.stop_seconds
    assert (0.5 <= gone < 1.5) if ignore_term else gone < 1.0, gone


def _failing_first(tmp_path: Path, key: str, objective: dict[str, Any] | None = None) -> Path:
    """A spec whose trial 0 has ``key`` true (and fails), trial 1 false."""
    return _spec(tmp_path, objective, space={key: {"type": "categorical", "choices": [True, False]}},
                 enqueue=[{key: True}, {key: False}])


def _running(pid: int) -> bool:
    """Not gone nor a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_failing_script_fails_its_trial_with_its_last_lines_and_the_study_goes_on(tmp_path: Path) -> None:
    study, _ = _run(tmp_path, _failing_first(tmp_path, "fail"))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    reason = study.trials[0].user_attrs["fail_reason"]
    assert reason.startswith("CommandFailed: exit code 3") and "\n" not in reason
    assert "last stderr: something went wrong | boom: bad config" in reason and "step 3 val_loss" in reason


def test_a_silent_script_is_ended_and_failed(tmp_path: Path) -> None:
    start = time.monotonic()
    study, _ = _run(tmp_path, _failing_first(tmp_path, "silent", {"silence_timeout": 0.5, "grace_seconds": 0.2}))
    assert time.monotonic() - start < 20
    reason = study.trials[0].user_attrs["fail_reason"]
    assert "no output for 0.5 s (objective.silence_timeout): ended it" in reason


def test_a_retried_trial_gets_the_failed_trials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a relative --artifacts, the script running in the spec's directory
    study, session = _run(tmp_path, _failing_first(tmp_path, "needs_resume"), artifacts="artifacts")
    failed = study.trials[0]
    assert failed.state == TrialState.FAIL and "exit code 4" in failed.user_attrs["fail_reason"]
    session.retry(study, failed)  # as for a trial whose worker died
    run(session, n_trials=2, out=open(os.devnull, "w"))
    retried = study.trials[-1]
    assert retried.number == 2 and retried.params == {"needs_resume": True}
    assert retried.state == TrialState.COMPLETE and retried.system_attrs["retry_history"] == [0]
    assert retried.intermediate_values[1] == 0.5  # it started from trial 0's ckpt.txt
    assert (tmp_path / "elsewhere" / "artifacts" / "runs" / "cmd" / "trial-0" / "ckpt.txt").is_file()


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[int, dict[str, float]]] = []

    def __call__(self, step: int, **metrics: float) -> None:
        self.reports.append((step, metrics))
        if len(self.reports) == 99:
            raise StopTrial("enough", pruned=True)


WANDB_PROGRAM = '''
import wandb
run = wandb.init(config={"lr": 1.0, "epochs": 3, "opt": {"momentum": 0.5}})
assert wandb.config.lr == wandb.config["lr"] == 0.25, dict(wandb.config)
assert wandb.config.opt["momentum"] == 0.9 and wandb.config.epochs == 3
wandb.config.lr = 7  # the sweep's value wins, as in W&B
for epoch in range(wandb.config.epochs):
    wandb.log({"train": {"loss": 2.0 - epoch}})
    wandb.log({"val_loss": 1.0 / (epoch + 1), "image": wandb.Image(None)}, step=10 * (epoch + 1))
wandb.watch(None)
run.summary["val_loss"] = wandb.config.lr
wandb.finish()
'''


def test_the_wandb_stand_in_shadows_an_installed_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "site" / "wandb"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('the real wandb must not be imported')")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    (tmp_path / "prog.py").write_text(WANDB_PROGRAM)
    objective = CommandObjective(CommandSpec(command=["${interpreter}", "prog.py"], args=None, cwd=str(tmp_path)))
    report = Recorder()
    result = objective({"lr": 0.25, "opt.momentum": 0.9}, report)
    assert result == {"val_loss": 0.25}
    assert report.reports == [(10, {"train.loss": 2.0, "val_loss": 1.0}), (20, {"train.loss": 1.0, "val_loss": 0.5}),
                              (30, {"train.loss": 0.0, "val_loss": pytest.approx(1 / 3)})]


BAD = [
    ({"pattern": "step (?P<step>\\d+"}, "objective.pattern: not a valid regular expression"),
    ({"pattern": "loss (?P<val_loss>[\\d.]+)"}, "objective.pattern: has no (?P<step>...) group"),
    ({"pattern": "step (?P<step>\\d+) (?P<ms>\\d+)"}, "objective.pattern: no (?P<val_loss>...) group for the curve"),
    ({"clock": {"group": "seconds"}}, "objective.clock.group: 'seconds' is not a group of objective.pattern"),
    ({"command": ["no-such-program-19"]}, "objective.command: 'no-such-program-19' is not on PATH nor a file"),
    ({"command": ["python", "trian.py"]}, "objective.command: trian.py not found in"),
    ({"comand": ["python"]}, "objective.comand: unknown key"),
    ({"args": "--{nmae}={value}"}, "objective.args: '--{nmae}={value}' is not a template"),
]


@pytest.mark.parametrize(("objective", "expected"), BAD, ids=[b[1][:40] for b in BAD])
def test_a_bad_command_objective_is_one_line(tmp_path: Path, objective: dict[str, Any], expected: str) -> None:
    path = _spec(tmp_path, objective)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value), err.value
    assert "\n" not in str(err.value)


def test_the_cli_refuses_a_bad_command_spec_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _spec(tmp_path, {"command": ["no-such-program-19"]})
    assert main(["optimize", "--spec", str(path), "--storage", f"sqlite:///{tmp_path / 'db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "objective.command" in err[0] and "fix:" in err[0]


def test_an_objective_of_the_wrong_form_says_both_forms() -> None:
    with pytest.raises(SpecError, match="objective: neither 'module:function' nor a mapping with command:"):
        parse_spec({"study": "x", "objective": 3, "metrics": {"val_loss": "minimize"}}, "s.yaml")
