"""Search spaces (:mod:`hpo.specs.space`): spec parameters -> Optuna distributions -> a config."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.specs.space import distribution, distributions, searched, suggest_config
from hpo.specs.models import parse_spec

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    "wd": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05},
    "width": {"type": "int", "low": 16, "high": 128, "step": 16},
    "optimizer": {"type": "categorical", "choices": ["adamw", "muon"]},
    "momentum": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": "muon"}},
}


def _spec():
    return parse_spec({"study": "s", "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
                       "fixed": {"steps": 4}, "space": SPACE}, "test")


def test_each_parameter_becomes_its_optuna_distribution() -> None:
    spec = _spec()
    assert distribution(spec.space["lr"]) == FloatDistribution(1e-4, 0.1, log=True)
    assert distribution(spec.space["wd"]) == FloatDistribution(0.0, 0.2, step=0.05)
    assert distribution(spec.space["width"]) == IntDistribution(16, 128, step=16)
    assert distribution(spec.space["optimizer"]) == CategoricalDistribution(["adamw", "muon"])
    assert list(distributions(spec)) == list(SPACE)
    assert list(distributions(spec, only={"lr", "width"})) == ["lr", "width"]


def test_a_conditional_parameter_is_searched_only_when_its_condition_holds() -> None:
    spec = _spec()
    assert searched(spec, {"optimizer": "adamw"}) == ["lr", "wd", "width", "optimizer"]
    assert searched(spec, {"optimizer": "muon"}) == list(SPACE)


def test_suggested_config_holds_fixed_values_and_active_params_inside_their_distributions() -> None:
    spec = _spec()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        config = suggest_config(trial, spec)
        assert config["steps"] == 4
        assert set(config) - {"steps"} == set(searched(spec, config)) == set(trial.params)
        if "momentum" in config:
            assert 0.8 <= config["momentum"] <= 0.99
        assert trial.distributions == distributions(spec, only=trial.params)
        seen.add(config["optimizer"])
        study.tell(trial, 1.0)
    assert seen == {"adamw", "muon"}
