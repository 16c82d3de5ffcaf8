"""Two-stage runs: Stage-2 preparation is idempotent, and the CLI path resumes between and
inside the stages (synthetic objective; one run on the real nGPT objective)."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import hpo.run.two_stage as two_stage
from conftest import hpo_env, run_hpo
from hpo.cli import main
from hpo.run.loop import optimize
from hpo.specs.models import parse_spec
from hpo.run.session import load_spec
from hpo.storage.backend import open_storage
from hpo.run.two_stage import DESIGN_ATTR, FROM_ATTR, PARENT_ATTR, apply, inside, make_plan, run_two_stage

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning",
                                        "ignore::FutureWarning")

SPEC: dict[str, Any] = {
    "study": "syn",
    "objective": "objectives.synthetic:train",
    "metrics": {"val_loss": "minimize"},
    "n_trials": 10,
    "sampler": {"name": "tpe", "options": {"seed": 0}},
    "fixed": {"steps": 4},
    "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
              "width": {"type": "int", "low": 16, "high": 256, "step": 16},
              "orthog": {"type": "categorical", "choices": ["newton_schulz", "polar_express"]}},
}


def write(workdir: Path, data: dict[str, Any]) -> Path:
    path = workdir / "search_spaces" / f"{data['study']}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'studies.db'}"


def load(workdir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url(workdir)))


def params_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in params.items()))


def check_stage2(workdir: Path, name: str = "syn_stage2", parent: str = "syn") -> optuna.Study:
    """Every design point ran once, Stage-1 trials were copied once, the parent is recorded."""
    study = load(workdir, name)
    design = study.user_attrs[DESIGN_ATTR]
    assert study.user_attrs[PARENT_ATTR]["study"] == parent
    spec = load_spec(workdir / "search_spaces" / f"{name}.yaml")
    assert study.user_attrs[PARENT_ATTR]["trials"] == spec.parent["trials"]
    copied = [t.system_attrs[FROM_ATTR]["trial"] for t in study.trials if FROM_ATTR in t.system_attrs]
    assert len(copied) == len(set(copied))
    done = [params_key(t.params) for t in study.trials if t.state == TrialState.COMPLETE]
    for point in design:
        assert done.count(params_key(point)) == 1, point
    assert not [t for t in study.trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    return study


def test_prepare_copies_and_enqueues_once(workdir: Path) -> None:
    spec = parse_spec(SPEC, "test")
    optimize(spec, url(workdir), out=io.StringIO())
    parent = load(workdir, "syn")
    plan = make_plan(parent, top=3, runs=8)
    assert plan.copied and len(plan.design.points) == 8
    assert plan.spec.n_trials == len(plan.copied) + 8 + 2  # + a quarter of the design for the sampler
    first = apply(plan, out=io.StringIO())
    apply(make_plan(parent, top=3, runs=8), out=io.StringIO())  # reuses the file: a no-op
    trials = first.get_trials()
    from_ = [t for t in trials if FROM_ATTR in t.system_attrs]
    assert sorted(t.system_attrs[FROM_ATTR]["trial"] for t in from_) == plan.copied
    assert all(len(t.intermediate_values) == 4 and t.state == TrialState.COMPLETE for t in from_)
    waiting = [t.system_attrs["fixed_params"] for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) + len(from_) == len(trials) and len(waiting) <= 8
    assert first.user_attrs[PARENT_ATTR] == {"study": "syn", "trials": plan.spec.parent["trials"]}


def test_inside_checks_fixed_values_and_new_ranges() -> None:
    stage2 = parse_spec({**SPEC, "study": "s2", "fixed": {"steps": 4, "orthog": "newton_schulz"},
                         "space": {"lr": {"type": "float", "low": 0.01, "high": 0.05, "log": True},
                                   "width": {"type": "int", "low": 64, "high": 128, "step": 16}}}, "t")
    ok = {"lr": 0.02, "width": 96, "orthog": "newton_schulz"}
    assert inside(ok, {"steps": 4}, stage2)
    assert not inside({**ok, "orthog": "polar_express"}, {"steps": 4}, stage2)
    assert not inside({**ok, "lr": 0.2}, {"steps": 4}, stage2)
    assert not inside({**ok, "width": 200}, {"steps": 4}, stage2)
    assert not inside(ok, {"steps": 8}, stage2)  # Stage 1 ran with another fixed value


WHEN = {**SPEC, "study": "cond", "n_trials": 16, "sampler": {"name": "random", "options": {"seed": 3}},
        "space": {"orthog": {"type": "categorical", "choices": ["newton_schulz", "polar_express"]},
                  "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True,
                         "when": {"orthog": "newton_schulz"}},
                  "width": {"type": "int", "low": 16, "high": 256, "step": 16}}}


def test_conditional_parameters_through_both_stages(workdir: Path) -> None:
    # lr is searched only with newton_schulz: polar_express trials have no lr, in Stage 1 and in
    # Stage 2's copied trials and design points alike.
    optimize(parse_spec(WHEN, "test"), url(workdir), out=io.StringIO())
    parent = load(workdir, "cond")
    by_orthog = {o: [set(t.params) for t in parent.trials if t.params["orthog"] == o]
                 for o in ("newton_schulz", "polar_express")}
    assert by_orthog["newton_schulz"] and all(p == {"orthog", "lr", "width"} for p in by_orthog["newton_schulz"])
    assert by_orthog["polar_express"] and all(p == {"orthog", "width"} for p in by_orthog["polar_express"])
    plan = make_plan(parent, top=5, runs=8, root=workdir)
    study = apply(plan, out=io.StringIO())
    for point in plan.design.points:
        assert ("lr" in point) == (point.get("orthog", plan.spec.fixed.get("orthog")) == "newton_schulz"), point
    copied = [t for t in study.trials if FROM_ATTR in t.system_attrs]
    assert len(copied) == len(plan.copied) > 0
    optimize(plan.spec, url(workdir), out=io.StringIO())
    for t in load(workdir, plan.spec.study).trials:
        orthog = t.params.get("orthog", plan.spec.fixed.get("orthog"))
        assert ("lr" in t.params or "lr" in plan.spec.fixed) == (orthog == "newton_schulz"), t.params


def test_inside_with_a_condition() -> None:
    stage2 = parse_spec({**WHEN, "study": "s2"}, "t")
    assert inside({"orthog": "polar_express", "width": 32}, {"steps": 4}, stage2)
    assert not inside({"orthog": "polar_express", "width": 32, "lr": 0.01}, {"steps": 4}, stage2)
    assert inside({"orthog": "newton_schulz", "width": 32, "lr": 0.01}, {"steps": 4}, stage2)
    assert not inside({"orthog": "newton_schulz", "width": 32}, {"steps": 4}, stage2)


def test_crash_between_stages_then_resume_multi_objective(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {**SPEC, "study": "mo", "n_trials": 8, "sampler": {"name": "nsga2", "options": {"seed": 0,
            "population_size": 4}}, "metrics": {"val_loss": "minimize", "train_seconds": "minimize"}}
    spec = parse_spec(data, "test")

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(two_stage, "apply", crash)
    with pytest.raises(KeyboardInterrupt):
        run_two_stage(spec, url(workdir), top=3, runs=6, out=io.StringIO())
    assert len(load(workdir, "mo").trials) == 8
    assert not (workdir / "search_spaces" / "mo_stage2.yaml").exists()
    monkeypatch.setattr(two_stage, "apply", apply)
    study = run_two_stage(spec, url(workdir), top=3, runs=6, out=io.StringIO())
    assert study is not None and len(study.directions) == 2
    assert len(load(workdir, "mo").trials) == 8  # Stage 1 did not run again
    check_stage2(workdir, "mo_stage2", "mo")
    assert len(study.trials) == load_spec(workdir / "search_spaces" / "mo_stage2.yaml").n_trials


def hpo_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``hpo ARGS`` in this process (the subprocess runs below cover the real command line)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_two_stage_resumes_between_stages(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(workdir, SPEC)
    optimize(parse_spec(SPEC, "test"), url(workdir), out=io.StringIO())  # stage 1, then "killed"
    code, out, err = hpo_main(capsys, "optimize", "--study", "syn", "--two-stage", "--dry-run", "--top", "3",
                              "--runs", "8")
    assert code == 0, err
    assert "stage 1: study syn: 10/10 trials held, 0 to run" in out
    assert "design: 8 points, generalized subset design (pyDOE3 gsd" in out
    assert "# narrowed from 0.0001..0.1" in out
    assert not (workdir / "search_spaces" / "syn_stage2.yaml").exists()
    args = ("optimize", "--study", "syn", "--two-stage", "--top", "3", "--runs", "8")
    both = run_hpo(*args, cwd=workdir)
    assert both.returncode == 0, both.stderr
    assert "wrote" in both.stderr and "enqueued 8 design points" in both.stderr
    study = check_stage2(workdir)
    n = len(study.trials)
    assert n == load_spec(workdir / "search_spaces" / "syn_stage2.yaml").n_trials
    again = run_hpo(*args, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "copied 0 Stage-1 trials, enqueued 0 design points" in again.stderr
    assert len(load(workdir, "syn_stage2").trials) == n and len(load(workdir, "syn").trials) == 10


def test_dry_run_lists_the_start_configs_not_run_yet(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(workdir, {**SPEC, "enqueue": [{"lr": 0.01, "width": 64, "orthog": "newton_schulz"}], "one_factor_levels": 3})
    code, out, err = hpo_main(capsys, "optimize", "--study", "syn", "--dry-run")
    assert code == 0, err
    assert "first the 8 start configs (enqueue + one_factor_levels), 8 not queued or run yet:" in out  # 1 + 3 + 3 + 1
    assert "{'lr': 0.01, 'width': 256, 'orthog': 'newton_schulz'}" in out
    # queued configs count toward --n-trials and run first, all of them
    assert run_hpo("optimize", "--study", "syn", "--n-trials", "3", cwd=workdir).returncode == 0
    code, out, err = hpo_main(capsys, "optimize", "--study", "syn", "--dry-run")
    assert "8/10 trials held" in out and "8 start configs (enqueue + one_factor_levels), 0 not queued or run yet" in out


def test_narrow_then_plain_optimize_runs_the_design_first(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    optimize(parse_spec(SPEC, "test"), url(workdir), out=io.StringIO())
    code, out, err = hpo_main(capsys, "narrow", "--study", "syn", "--top", "3", "--runs", "6", "--dry-run")
    assert code == 0, err
    assert "stage 2: study syn_stage2" in out and not (workdir / "search_spaces" / "syn_stage2.yaml").exists()
    code, out, err = hpo_main(capsys, "narrow", "--study", "syn", "--top", "3", "--runs", "6")
    assert code == 0 and "next: hpo optimize --study syn_stage2" in err
    code, out, err = hpo_main(capsys, "optimize", "--study", "syn_stage2")
    assert code == 0, err
    study = check_stage2(workdir)
    first_new = min(t.number for t in study.trials if FROM_ATTR not in t.system_attrs)
    design = {params_key(p) for p in study.user_attrs[DESIGN_ATTR]}
    ran = [params_key(t.params) for t in study.trials[first_new:first_new + len(design)]]
    assert set(ran) <= design  # the queued design ran before any sampled trial
    code, out, err = hpo_main(capsys, "narrow", "--study", "syn", "--top", "4", "--runs", "6")
    assert code == 1 and "already uses it (fix: --into" in err


def test_pareto_command_and_export(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = {**SPEC, "study": "mo", "n_trials": 6, "metrics": {"val_loss": "minimize", "train_seconds": "minimize"}}
    optimize(parse_spec(data, "test"), url(workdir), out=io.StringIO())
    code, out, err = hpo_main(capsys, "pareto", "--study", "mo", "--export", "knee.yaml")
    assert code == 0, err
    assert "utopia_dist" in out and "knee: trial" in out
    knee_number = int(out.split("knee: trial ")[1].split()[0])
    exported = load_spec(workdir / "knee.yaml")
    assert exported.space == {} and exported.fixed == {"steps": 4, **load(workdir, "mo").trials[knee_number].params}
    code, out, err = hpo_main(capsys, "pareto", "--study", "mo", "--export", "t.yaml", "--trial", "99")
    assert code == 1 and "--trial 99" in err


NGPT: dict[str, Any] = {
    "study": "tiny",
    "objective": "objectives.ngpt_ttt:train",
    "metrics": {"val_loss": "minimize"},
    "n_trials": 6,
    "sampler": {"name": "tpe", "options": {"seed": 0}},
    "fixed": {"n_layer": 1, "d_model": 32, "n_head": 2, "seq_len": 32, "batch_size": 8, "val_batches": 2,
              "val_batch_size": 8, "warmup_steps": 1, "threads": 1, "device": "cpu", "max_steps": 20,
              "val_freq": 10},
    "space": {"lr": {"type": "float", "low": 0.002, "high": 0.1, "log": True},
              "orthog": {"type": "categorical", "choices": ["newton_schulz", "polar_express"]},
              "lazy_proj_freq": {"type": "int", "low": 1, "high": 10}},
}


@pytest.mark.slow
def test_real_objective_killed_in_stage2_resumes(workdir: Path) -> None:
    write(workdir, NGPT)
    args = [sys.executable, "-m", "hpo", "optimize", "--study", "tiny", "--two-stage", "--top", "3", "--runs", "6"]
    proc = subprocess.Popen(args, cwd=workdir, env=hpo_env(), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 240
    while "[" not in seen.partition("stage 2: study")[2] and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert "stage 2: study tiny_stage2" in seen, seen
    proc.send_signal(signal.SIGTERM)  # one stage-2 trial done, the next one running or starting
    proc.communicate(timeout=120)
    assert len(load(workdir, "tiny").trials) == 6
    resumed = run_hpo(*args[3:], cwd=workdir, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    study = check_stage2(workdir, "tiny_stage2", "tiny")
    assert len(load(workdir, "tiny").trials) == 6
    n_trials = load_spec(workdir / "search_spaces" / "tiny_stage2.yaml").n_trials
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == n_trials
