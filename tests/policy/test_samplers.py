"""Samplers: one proposal sequence per trial number, never per process; grids that end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import hpo_env, run_hpo
from hpo._optuna import COPY_ATTR
from hpo.policy.samplers import SEED_ATTR, TrialSeededSampler, build_sampler, trial_seed
from hpo.specs.models import parse_spec
from hpo.storage.backend import open_storage

# 100 configs: 10 x 10 categorical choices
SPACE = {"lr": {"type": "categorical", "choices": [round(0.001 * 2 ** (i / 2), 6) for i in range(10)]},
         "width": {"type": "categorical", "choices": [16 * (i + 1) for i in range(10)]}}
SPEC = {"study": "hundred", "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
        "fixed": {"steps": 4}, "space": SPACE, "sampler": {"name": "tpe", "options": {"seed": 0}}}


def _write(workdir: Path, **changes: object) -> None:
    (workdir / "search_spaces" / "hundred.yaml").write_text(yaml.safe_dump({**SPEC, **changes}, sort_keys=False))


def _trials(url: str, name: str = "hundred") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()


def _configs(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    """The configs that were trained (copies of a deterministic objective's configs are not)."""
    return [tuple(sorted(t.params.items())) for t in trials if COPY_ATTR not in t.user_attrs]


def test_each_trial_number_gets_its_own_recorded_seed() -> None:
    spec = parse_spec(SPEC, "spec")
    sampler = build_sampler(spec)
    assert isinstance(sampler, TrialSeededSampler)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    seeds = [t.system_attrs[SEED_ATTR] for t in study.trials]
    assert seeds == [trial_seed(0, n) for n in range(3)] and len(set(seeds)) == 3
    again = optuna.create_study(sampler=build_sampler(spec))  # a study run again from scratch
    again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]


def test_qmc_keeps_one_seed_and_unseeded_samplers_stay_plain() -> None:
    qmc = parse_spec({**SPEC, "sampler": {"name": "qmc", "options": {"seed": 1}}}, "spec")
    assert isinstance(build_sampler(qmc), optuna.samplers.QMCSampler)
    plain = parse_spec({**SPEC, "sampler": {"name": "random"}}, "spec")
    assert isinstance(build_sampler(plain), optuna.samplers.RandomSampler)


def test_resumed_in_three_processes_a_seeded_study_repeats_no_proposal(workdir: Path) -> None:
    """The report of issue 15: a resume replayed the first proposals of the seeded sampler."""
    _write(workdir, sampler={"name": "random", "options": {"seed": 0}})
    for total in (3, 6, 9):
        proc = run_hpo("optimize", "--study", "hundred", "--n-trials", str(total), cwd=workdir)
        assert proc.returncode == 0, proc.stderr
    trials = _trials(f"sqlite:///{workdir / 'studies.db'}")
    assert len(trials) == 9
    first, second, third = (_configs(trials[i:i + 3]) for i in (0, 3, 6))
    assert first != second and second != third and first != third  # the old code: all three equal


def test_deterministic_study_trains_no_config_twice_in_three_processes(workdir: Path) -> None:
    _write(workdir, deterministic=True)
    for total in (4, 8, 12):
        proc = run_hpo("optimize", "--study", "hundred", "--n-trials", str(total), cwd=workdir)
        assert proc.returncode == 0, proc.stderr
    trials = _trials(f"sqlite:///{workdir / 'studies.db'}")
    assert len(trials) == 12
    trained = _configs(trials)
    assert len(trained) == len(set(trained))
    for t in trials:
        if COPY_ATTR in t.user_attrs:  # a repeated proposal took the result of the trial it repeats
            source = trials[t.user_attrs[COPY_ATTR]]
            assert t.params == source.params and t.values == source.values


@pytest.mark.slow
def test_two_workers_on_postgresql_train_distinct_configs(workdir: Path, pg_url: str) -> None:
    _write(workdir, deterministic=True)
    proc = subprocess.run([sys.executable, "-m", "hpo", "optimize", "--study", "hundred", "--n-trials", "12",
                           "--workers", "2", "--storage", pg_url], cwd=workdir, env=hpo_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    trials = _trials(pg_url)
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.system_attrs["hpo:worker"]["pid"] for t in trials}) == 2, "both workers ran trials"
    trained = _configs(trials)
    assert len(trained) == len(set(trained))


def test_an_exhausted_grid_ends_the_study_with_a_line(workdir: Path) -> None:
    space = {"lr": {"type": "categorical", "choices": [0.01, 0.1]}, "width": {"type": "int", "low": 32, "high": 64,
                                                                               "step": 32}}
    _write(workdir, space=space, sampler={"name": "grid"})
    proc = run_hpo("optimize", "--study", "hundred", "--n-trials", "10", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "the grid sampler has run every config of the space: the study is complete with 4 trials" in proc.stderr
    trials = _trials(f"sqlite:///{workdir / 'studies.db'}")
    assert len(trials) == 4 and len(set(_configs(trials))) == 4
