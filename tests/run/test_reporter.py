"""The reporter: divergence, target and budget stops, durable writes, pruning in multi-objective studies."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import run_hpo
from curves import Curve, loss_rows, pruned_steps, replay, run_hpo_curves
from hpo.errors import HpoError, SpecError
from hpo._optuna import REASON_ATTR
from hpo._optuna import metric_key
from hpo.storage.backend import open_storage

TARGET = {"target": {"metric": "val_loss", "below": 2.0}, "trial_budget_seconds": 10.0,
          "metrics": {"val_loss": "minimize", "time_to_target": "minimize"}}


def timed(losses: list[float], seconds: list[float]) -> Curve:
    """``val_loss`` rows with the given ``train_seconds`` clock."""
    return [{**row, "train_seconds": s} for row, s in zip(loss_rows(losses), seconds, strict=True)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_is_pruned_at_once_with_the_reason(bad: float) -> None:
    study = run_hpo_curves([loss_rows([3.0, bad, 1.0])], [])  # no pruner configured: still pruned
    t = study.trials[0]
    assert t.state == TrialState.PRUNED and sorted(t.intermediate_values) == [1, 2]
    assert t.user_attrs["stop_reason"] == f"val_loss is {bad} at step 2 (diverged)"
    stored = t.intermediate_values[2]
    assert math.isnan(stored) if math.isnan(bad) else stored == bad


def test_target_crossing_completes_with_time_to_target_even_when_a_pruner_would_prune() -> None:
    # The threshold pruner would prune step 3 (1.9 > 1.0 after 3 warm-up steps); the target wins.
    curve = timed([3.0, 2.5, 1.9, 1.5], [1.0, 2.0, 3.5, 4.0])
    study = run_hpo_curves([curve], [{"name": "threshold", "options": {"upper": 1.0, "n_warmup_steps": 3}}],
                           **TARGET)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE and t.last_step == 3
    assert t.values == [1.9, 3.5]  # val_loss, time_to_target
    assert t.user_attrs["reached_target"] is True
    assert "target val_loss < 2 reached at step 3" in t.user_attrs["stop_reason"]


@pytest.mark.parametrize(
    ("losses", "expected"),
    [
        # best 2.4 within the budget stayed 20 % short of 2.0: budget + 10 s x 1.2
        ([3.0, 2.4, 2.5, 1.0], 10.0 + 10.0 * (1 + 0.4 / 2.0)),
        # crossed only at the report after the budget (12 s > 10 s): a miss, judged on 2.4
        ([3.0, 2.4, 1.5, 1.0], 10.0 + 10.0 * (1 + 0.4 / 2.0)),
    ],
    ids=["short", "crossed-late"],
)
def test_budget_completes_with_a_censored_time_to_target(losses: list[float], expected: float) -> None:
    study = run_hpo_curves([timed(losses, [4.0, 8.0, 12.0, 16.0])], [], **TARGET)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE and t.last_step == 3  # 12 s >= the 10 s budget
    assert t.user_attrs["reached_target"] is False
    assert t.values[1] == pytest.approx(expected)  # time_to_target: above the budget, like every miss
    assert t.user_attrs["censored_at"] == 10.0 and t.user_attrs["closest"] == 2.4
    assert t.user_attrs["stop_reason"] == "time budget of 10 s spent at step 3"


def test_a_crossing_exactly_at_the_budget_counts() -> None:
    study = run_hpo_curves([timed([3.0, 1.5], [4.0, 10.0])], [], **TARGET)
    t = study.trials[0]
    assert t.user_attrs["reached_target"] is True and t.values[1] == 10.0


def test_a_target_metric_no_report_carries_stops_the_study_after_one_trial() -> None:
    target = {**TARGET, "target": {"metric": "valid_loss", "below": 2.0}}  # a typo: never reported
    with pytest.raises(SpecError, match=r"target.metric: 'valid_loss' was never reported by trial 0 "
                                        r"\(it reported tokens, train_seconds, val_loss\)"):
        run_hpo_curves([timed([3.0], [12.0]), timed([3.0], [12.0])], [], **target)


def test_a_timed_trial_that_never_reports_stops_the_study_instead_of_missing_the_target() -> None:
    """A function that only returns (val_loss 1.0 meets the target) made every trial a censored
    miss before: time to target is read from reports, so no report is a mistake, said once."""
    def returns_only(rows: Curve, report: Callable[..., None]) -> dict[str, float]:
        return {"val_loss": 1.0}

    with pytest.raises(SpecError, match=r"target.metric: 'val_loss' was never reported by trial 0 "
                                        r"\(it reported nothing: report\(\) was never called\)"):
        run_hpo_curves([[], []], [], train=returns_only, **TARGET)


def test_a_pruned_trial_has_no_time_to_target_and_reports_show_none() -> None:
    """A diverged trial stopped short of the target: censored_at and closest, but no time to
    target (a censored stand-in there would read as a time in `hpo report` and the exports)."""
    from hpo.analysis.report import build_report

    study = run_hpo_curves([timed([3.0, math.nan], [4.0, 5.0]), timed([3.0, 1.5], [4.0, 6.0])], [], **TARGET)
    pruned, reached = study.trials
    assert pruned.state == TrialState.PRUNED and reached.state == TrialState.COMPLETE
    assert pruned.user_attrs["reached_target"] is False and "time_to_target" not in pruned.user_attrs
    assert pruned.user_attrs["censored_at"] == 5.0 and pruned.user_attrs["closest"] == 3.0
    assert "ranking value" not in pruned.user_attrs["outcome"]
    rows = {r["number"]: r for r in build_report(study).trials}
    assert rows[0]["time_to_target"] is None and rows[1]["time_to_target"] == 6.0


def test_a_trial_that_diverges_before_its_first_target_report_does_not_stop_the_study() -> None:
    """The target metric comes with evaluations only; a trial that diverged before one is no
    sign of a misspelled metric."""
    diverged = [{"val_loss": 3.0, "train_seconds": 1.0}, {"val_loss": math.nan, "train_seconds": 2.0}]
    fine = [{"val_loss": 3.0, "train_seconds": 1.0}, {"val_loss": 2.0, "val_acc": 0.9, "train_seconds": 2.0}]
    study = run_hpo_curves([diverged, fine], [], **{**TARGET, "target": {"metric": "val_acc", "above": 0.8}})
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["reached_target"] is True


def checking_replay(url: str, study_name: str, seen: list[int]) -> Callable[[Curve, Callable[..., None]], Any]:
    """A replay that reads every report back through a separate storage as soon as report() returns."""
    other = open_storage(url)

    def train(rows: Curve, report: Callable[..., None]) -> dict[str, float]:
        for step, row in enumerate(rows, start=1):
            report(step, **row)
            (running,) = optuna.load_study(study_name=study_name, storage=other).get_trials(
                states=(TrialState.RUNNING,))
            assert running.intermediate_values[step] == row["val_loss"]
            assert running.system_attrs[metric_key(step)] == row
            seen.append(step)
        return {}

    return train


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_report_is_in_the_database_when_report_returns(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    name, seen = f"durable_{uuid.uuid4().hex[:8]}", []
    curve = [{**row, "val_ppl": math.exp(row["val_loss"])} for row in loss_rows([3.0, 2.5, 2.2, 2.1])]
    run_hpo_curves([curve], [], url=url, train=checking_replay(url, name, seen), study=name)
    assert seen == [1, 2, 3, 4]


# --- through the CLI: the same pruners in single- and multi-objective studies ------------------

CLI_PRUNERS = {
    "median": [{"name": "median", "options": {"n_startup_trials": 3, "n_warmup_steps": 1}}],
    "kill_rule+asha": [
        {"name": "kill_rule", "options": {"metric": "val_ppl", "min_tokens": 4096, "threshold": 2.0}},
        {"name": "successive_halving", "options": {"min_resource": 2, "reduction_factor": 2}},
    ],
}
OBJECTIVES = {"single": {"val_loss": "minimize"}, "multi": {"val_loss": "minimize", "train_seconds": "minimize"}}


def cli_study(workdir: Path, pruners: list[dict[str, Any]], metrics: dict[str, str]) -> optuna.Study:
    """Run a synthetic study through ``python -m hpo optimize`` and load it."""
    name = f"cli_{len(metrics)}"
    spec = {
        "study": name, "objective": "objectives.synthetic:train", "metrics": metrics, "n_trials": 12,
        "sampler": {"name": "random", "options": {"seed": 3}}, "pruners": pruners,
        "fixed": {"steps": 10, "noise": 0.02},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
                  "width": {"type": "int", "low": 16, "high": 128, "step": 16}},
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    url = f"sqlite:///{workdir / (name + '.db')}"
    done = run_hpo("optimize", "--spec", str(path), "--storage", url, cwd=workdir)
    assert done.returncode == 0, done.stderr
    return optuna.load_study(study_name=name, storage=open_storage(url))


@pytest.mark.parametrize("pruners", [
    "kill_rule+asha",
    pytest.param("median", marks=pytest.mark.slow),  # two more CLI runs of the same code path
])
def test_same_pruners_decide_the_same_in_single_and_multi_objective_studies(workdir: Path, pruners: str) -> None:
    with ThreadPoolExecutor(2) as pool:  # two processes, two databases: run side by side
        single, multi = pool.map(lambda k: cli_study(workdir, CLI_PRUNERS[pruners], OBJECTIVES[k]),
                                 ("single", "multi"))
    assert [t.params for t in single.trials] == [t.params for t in multi.trials]
    steps = pruned_steps(multi)
    assert 0 < sum(s is not None for s in steps) < len(steps)
    assert pruned_steps(single) == steps
    fired = set()
    for t in multi.trials:
        assert len(t.intermediate_values) == t.last_step > 0  # the whole curve is in the storage
        if t.state == TrialState.PRUNED:
            fired.add(t.user_attrs[REASON_ATTR]["pruner"])
            assert t.user_attrs[REASON_ATTR] == single.trials[t.number].user_attrs[REASON_ATTR]
        else:
            assert t.state == TrialState.COMPLETE and len(t.values) == 2
    assert fired == {p["name"] for p in CLI_PRUNERS[pruners]}


def test_replay_helper_reports_rows_in_order() -> None:
    got: list[tuple[int, dict[str, float]]] = []
    replay([{"val_loss": 2.0}, {"step": 7, "val_loss": 1.0}], lambda step, **m: got.append((step, m)))
    assert got == [(1, {"val_loss": 2.0}), (7, {"val_loss": 1.0})]


def test_a_report_without_the_clock_stops_the_study_after_one_trial() -> None:
    rows = [{"val_loss": 3.0, "tokens": 1.0}]  # no train_seconds: the budget would read nothing
    with pytest.raises(SpecError, match=r"clock: report\(step=1\) has no 'train_seconds', the clock the budget"):
        run_hpo_curves([rows, rows], [], **TARGET)


def test_clock_wall_is_measured_by_hpo_and_recorded_on_the_trial() -> None:
    rows = [{"val_loss": 3.0, "tokens": 1.0}, {"val_loss": 1.5, "tokens": 2.0}]
    study = run_hpo_curves([rows], [], **{**TARGET, "clock": "wall"})
    t = study.trials[0]
    assert t.user_attrs["clock"] == "wall" and t.user_attrs["reached_target"] is True
    assert 0 < t.values[1] < 10.0  # wall seconds since the trial started, not a reported metric


def test_the_spec_clock_decides_the_budget_and_the_time_to_target() -> None:
    # train_seconds runs 10x faster than cpu_seconds: on cpu_seconds the 10 s budget is spent at step 3
    rows = [{"val_loss": v, "train_seconds": 0.4 * s, "cpu_seconds": 4.0 * s} for s, v in
            enumerate([3.0, 2.5, 2.2, 1.5], start=1)]
    on_cpu = run_hpo_curves([rows], [], **{**TARGET, "clock": "cpu_seconds"}).trials[0]
    assert on_cpu.user_attrs["reached_target"] is False and on_cpu.last_step == 3
    assert on_cpu.user_attrs["clock"] == "cpu_seconds" and on_cpu.user_attrs["censored_at"] == 10.0
    on_train = run_hpo_curves([rows], [], **TARGET).trials[0]
    assert on_train.user_attrs["reached_target"] is True and on_train.values[1] == pytest.approx(1.6)


def swallowing(rows: Curve, report: Callable[..., None]) -> dict[str, float]:
    """A training loop whose bare ``except:`` swallows hpo's stop and keeps reporting, then
    claims a perfect result (issue 17)."""
    for i, row in enumerate(rows, start=1):
        try:
            report(i, **row)
        except BaseException:  # noqa: BLE001 - the point of the test
            pass
    return {"val_loss": 0.0}


def test_a_swallowed_stop_still_decides_the_outcome() -> None:
    # the target (< 2.0) is crossed at step 2; steps 3 and 4 and the returned 0.0 do not count
    reached = run_hpo_curves([timed([3.0, 1.9, 1.0, math.nan], [1.0, 2.0, 3.0, 4.0])], [], train=swallowing,
                             **TARGET)
    t = reached.trials[0]
    assert t.state == TrialState.COMPLETE and t.values == [1.9, 2.0] and t.last_step == 2
    # pruned by a threshold at step 2: PRUNED, whatever the function returns
    pruned = run_hpo_curves([loss_rows([3.0, 9.0, 1.0])],
                            [{"name": "threshold", "options": {"upper": 5.0}}], train=swallowing)
    assert pruned.trials[0].state == TrialState.PRUNED and pruned.trials[0].last_step == 2


def test_no_pruner_stops_a_trial_at_its_last_step() -> None:
    # max_steps (curve.length_key) is 4: a decision at step 4 would save nothing (the reporter asks
    # no pruner there, whichever it is)
    pruner = {"name": "threshold", "options": {"upper": 2.5}}
    late = loss_rows([2.0, 2.0, 2.0, 3.0])
    study = run_hpo_curves([loss_rows([1.0, 0.9, 0.8, 0.7]), late], [pruner], fixed={"max_steps": 4})
    assert study.trials[1].state == TrialState.COMPLETE and study.trials[1].last_step == 4
    early = run_hpo_curves([loss_rows([1.0, 0.9, 0.8, 0.7]), [*late, *loss_rows([3.0])]], [pruner],
                           fixed={"max_steps": 5})
    assert early.trials[1].state == TrialState.PRUNED  # the same decision before the last step prunes


def _misbehaving(kind: str) -> Callable[[Curve, Callable[..., None]], Any]:
    """Misbehaves in its first call only."""
    calls: list[int] = []

    def train(rows: Curve, report: Callable[..., None]) -> Any:
        report(1, val_loss=3.0, tokens=1.0, train_seconds=0.1)
        calls.append(1)
        if len(calls) > 1:
            return {}
        if kind == "hang":
            import time

            time.sleep(30)
        if kind == "exit":
            raise SystemExit(0)
        return {"nan": {"val_loss": math.nan}, "text": {"val_loss": "low"}}.get(kind, {})
    return train


@pytest.mark.parametrize(("kind", "reason"), [
    ("hang", "watchdog: no report for 2 s of wall-clock time (4 x the 0.5 s budget)"),
    ("exit", "the objective called sys.exit(0)"),
    ("nan", "the objective returned val_loss=nan (not a finite number)"),
])
def test_a_misbehaving_objective_fails_its_trial_with_the_reason(kind: str, reason: str) -> None:
    study = run_hpo_curves([[], []], [], train=_misbehaving(kind), trial_budget_seconds=0.5, n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.FAIL and t.user_attrs["fail_reason"].startswith(reason)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE], "the study goes on"


def test_a_non_numeric_result_stops_the_study_after_one_trial() -> None:
    with pytest.raises(SpecError, match=r"metrics.val_loss: the objective gave 'low', not a number"):
        run_hpo_curves([[], []], [], train=_misbehaving("text"))


def test_a_failed_trial_keeps_the_end_of_its_traceback(tmp_path: Path) -> None:
    def train(rows: Curve, report: Callable[..., None]) -> Any:
        def deep() -> None:
            raise RuntimeError("CUDA out of memory")
        deep()

    with pytest.raises(HpoError, match="5 trials in a row failed; the last: RuntimeError: CUDA out of memory"):
        run_hpo_curves([[]] * 5, [], train=train, n_trials=1, url=f"sqlite:///{tmp_path / 'f.db'}")
    t = optuna.load_study(study_name="replay", storage=f"sqlite:///{tmp_path / 'f.db'}").trials[0]
    assert t.user_attrs["fail_reason"] == "RuntimeError: CUDA out of memory"
    assert "in deep" in t.user_attrs["fail_traceback"]
    assert t.user_attrs["fail_traceback"].endswith("RuntimeError: CUDA out of memory")


def test_five_thousand_metrics_in_one_report_are_all_kept(tmp_path: Path) -> None:
    metrics = {f"layer{i}_norm": float(i) for i in range(5000)}
    rows = [{"val_loss": 2.0, **metrics}]
    study = run_hpo_curves([rows], [], url=f"sqlite:///{tmp_path / 'm.db'}")
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE and t.user_attrs["layer4999_norm"] == 4999.0
    assert sum(k.startswith("layer") for k in t.user_attrs) == 5000
