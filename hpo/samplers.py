"""The spec's ``sampler:`` → an Optuna sampler (Optuna's own, with their options)."""

from __future__ import annotations

from typing import Any, Callable

import optuna

from hpo.errors import SpecError, first_line
from hpo.options import OptionError, check_options
from hpo.spec import CategoricalParam, FloatParam, IntParam, StudySpec


def _grid(spec: StudySpec, options: dict[str, Any]) -> optuna.samplers.BaseSampler:
    """A grid from the space: choices as given, ints by step, floats need a step."""
    grid: dict[str, list[Any]] = {}
    for name, p in spec.space.items():
        if isinstance(p, CategoricalParam):
            grid[name] = list(p.choices)
        elif isinstance(p, IntParam):
            grid[name] = list(range(p.low, p.high + 1, p.step))
        elif isinstance(p, FloatParam) and p.step:
            n = int(round((p.high - p.low) / p.step))
            grid[name] = [round(p.low + i * p.step, 12) for i in range(n + 1)]
        else:
            raise SpecError(f"space.{name}: the grid sampler needs a step for float parameters (fix: add step)")
    return optuna.samplers.GridSampler(grid, **options)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "gp": optuna.samplers.GPSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "qmc": optuna.samplers.QMCSampler,
    "bruteforce": optuna.samplers.BruteForceSampler,
}


def build_sampler(spec: StudySpec, source: str = "spec") -> optuna.samplers.BaseSampler:
    """The spec's sampler, its options checked first (:mod:`hpo.options`); every problem is
    one :class:`SpecError` line naming ``source`` (the spec file)."""
    name, options = spec.sampler.name, dict(spec.sampler.options)
    try:
        if name == "grid":
            check_options(optuna.samplers.GridSampler, options, skip=("search_space",))
            return _grid(spec, options)
        check_options(SAMPLERS[name], options)
        return SAMPLERS[name](**options)
    except SpecError as e:
        raise SpecError(f"{source}: {e}") from None
    except OptionError as e:
        raise SpecError(f"{source}: sampler.options.{e.field}: {e}") from None
    except (TypeError, ValueError, ImportError) as e:
        first = first_line(e)
        raise SpecError(f"{source}: sampler.options: {first} (fix: see optuna.samplers' documentation of "
                        f"the {name} sampler)") from None
