"""Search spaces: spec parameters → Optuna distributions → a config dict."""

from __future__ import annotations

from typing import Any, Container

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo.specs.models import FloatParam, IntParam, Param, StudySpec, active


def distribution(param: Param) -> BaseDistribution:
    """The Optuna distribution a spec parameter samples from.

    Args:
        param: one parameter of the spec's ``space``.
    """
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.log, step=param.step)
    return CategoricalDistribution(param.choices)


def distributions(spec: StudySpec, only: Container[str] | None = None) -> dict[str, BaseDistribution]:
    """Every searched parameter's distribution, or only those named in ``only``.

    Args:
        spec: the study spec.
        only: parameter names to keep (e.g. a trial's params, which lack the parameters a
            ``when`` switched off); None: all.
    """
    return {name: distribution(p) for name, p in spec.space.items() if only is None or name in only}


def searched(spec: StudySpec, config: dict[str, Any]) -> list[str]:
    """The space's parameters that ``config`` has active (their ``when`` holds), in order.

    Args:
        spec: the study spec.
        config: fixed values and params.
    """
    return [name for name, p in spec.space.items() if active(p, config)]


def suggest_config(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Fixed values plus one sampled value per searched parameter that is active (``when``).

    Args:
        trial: the running trial, which suggests each value.
        spec: the study spec.
    """
    config = dict(spec.fixed)
    for name, p in spec.space.items():
        if not active(p, config):
            continue
        if isinstance(p, FloatParam):
            config[name] = trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            config[name] = trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)
        else:
            config[name] = trial.suggest_categorical(name, p.choices)
    return config
