"""The session (:mod:`hpo.run.session`): start configs queued once per study, what holds a config."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from conftest import run_hpo, syn_spec as _spec, syn_study as _study
from hpo.run.session import unheld


def test_one_factor_levels_queue_the_baselines_neighbours_once(workdir: Path) -> None:
    # the baseline, then lr alone over its 3 levels and width alone over its 3 (neither holds the
    # baseline's value), then the sampler; queued configs count toward --n-trials and all run
    # first, and a re-run queues none of them again
    _spec(workdir, enqueue=[{"lr": 0.01, "width": 64}], one_factor_levels=3, n_trials=8)
    first = run_hpo("optimize", "--study", "syn", "--n-trials", "4", cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert len(_study(workdir).trials) == 7
    assert run_hpo("optimize", "--study", "syn", cwd=workdir).returncode == 0
    trials = _study(workdir).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    assert [(t.params["lr"], t.params["width"]) for t in trials[:7]] == [
        (0.01, 64), (1e-4, 64), (0.003162, 64), (0.1, 64), (0.01, 16), (0.01, 80), (0.01, 128)]
    assert "fixed_params" not in trials[7].system_attrs  # the sampler's


def test_unheld_matches_what_optuna_skips() -> None:
    # a partial config is held by the trial queued with it, not by a sampled trial that happens
    # to share its value; dry-run, enqueue_start and the Stage-2 design all ask this one question
    study = optuna.create_study()
    study.enqueue_trial({"width": 64})
    queued = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
                        "width": optuna.distributions.IntDistribution(16, 128)})
    study.tell(queued, 1.0)
    study.add_trial(optuna.create_trial(params={"lr": 0.01, "width": 32}, value=2.0, distributions={
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
        "width": optuna.distributions.IntDistribution(16, 128)}))
    configs = [{"width": 64}, {"width": 32}, {"lr": 0.01, "width": 32}, {"lr": 0.01, "width": 16}, {"width": 32}]
    assert unheld(configs, study.get_trials()) == [{"width": 32}, {"lr": 0.01, "width": 16}]
    # and Optuna agrees: it queues exactly those
    for c in configs:
        study.enqueue_trial(c, skip_if_exists=True)
    assert [t.system_attrs["fixed_params"] for t in study.get_trials(states=(TrialState.WAITING,))] == [
        {"width": 32}, {"lr": 0.01, "width": 16}]


def test_enqueued_configs_run_first_and_only_once(workdir: Path) -> None:
    # a baseline (both params) and a partial config (width only; lr sampled) run as trials 0 and 1;
    # re-running the command, or a bigger total, never queues them again.
    _spec(workdir, enqueue=[{"lr": 0.01, "width": 64}, {"width": 32}])
    first = run_hpo("optimize", "--study", "syn", "--n-trials", "3", cwd=workdir)
    assert first.returncode == 0, first.stderr
    trials = _study(workdir).trials
    assert trials[0].params == {"lr": 0.01, "width": 64}
    assert trials[1].params["width"] == 32 and trials[1].params["lr"] != 0.01
    assert run_hpo("optimize", "--study", "syn", cwd=workdir).returncode == 0  # total 6
    trials = _study(workdir).trials
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    assert sum(t.params == {"lr": 0.01, "width": 64} for t in trials) == 1
    assert sum(t.params["width"] == 32 and "fixed_params" in t.system_attrs for t in trials) == 1
