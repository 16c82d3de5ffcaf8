"""The spec's ``sampler:`` → an Optuna sampler (Optuna's own, with their options).

A spec ``seed`` makes a study reproducible from scratch, but a sampler seeded once per
process replays the same first proposals in every process: a resume, a second worker or a
second machine would re-run trials 0, 1, ... . So a seeded sampler is rebuilt before each
trial with a seed derived from the spec's seed and the trial's number
(:class:`TrialSeededSampler`; the seed is recorded on the trial). Trial numbers are unique
in a study, so no two processes share a sequence, and a study run again from scratch gets
the same seeds. QMC keeps its one seed: it defines the scrambled sequence, and the sampler
takes its next point's index from the storage, so processes never repeat a point.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from hpo._optuna import SAMPLER_SEED_ATTR as SEED_ATTR
from hpo._optuna import storage_of, trial_id
from hpo.errors import SpecError, first_line
from hpo.specs.options import OptionError, check_options
from hpo.specs.models import CategoricalParam, FloatParam, IntParam, StudySpec


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
ONE_SEED = ("qmc",)  # the seed defines one sequence shared by every process
EXHAUSTIBLE = ("grid", "bruteforce")  # each config once: a repeat is never a new proposal


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` in a study whose spec says ``seed``."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "little")


class _StopSpy:
    """The study as a sampler sees it in ``after_trial``, noting a ``study.stop()`` (Grid and
    BruteForce call it when every config has run)."""

    def __init__(self, study: Study, owner: TrialSeededSampler) -> None:
        self._study, self._owner = study, owner

    def stop(self) -> None:
        self._owner.exhausted = True
        self._study.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class TrialSeededSampler(BaseSampler):
    """A sampler rebuilt before every trial by ``make(seed)``, seeded per trial (module doc).

    Args:
        make: builds the spec's sampler from a seed.
        seed: the spec's seed; None builds one unseeded sampler and keeps it (for a grid or
            brute-force sampler, whose end :func:`exhausted` must see).
    """

    def __init__(self, make: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self._make, self._seed = make, seed
        self.inner = make(seed)
        self.exhausted = False

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if self._seed is not None:
            seed = trial_seed(self._seed, trial.number)
            self.inner = self._make(seed)
            storage_of(study).set_trial_system_attr(trial_id(trial), SEED_ATTR, seed)
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.inner.after_trial(_StopSpy(study, self), trial, state, values)  # type: ignore[arg-type]

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def build_sampler(spec: StudySpec, source: str = "spec") -> optuna.samplers.BaseSampler:
    """The spec's sampler, its options checked first (:mod:`hpo.specs.options`), seeded per trial when
    the spec gives a seed (module doc); every problem is one :class:`SpecError` line naming
    ``source``.

    Args:
        spec: the study spec.
        source: what to name in error lines (the spec file).
    """
    name, options = spec.sampler.name, dict(spec.sampler.options)

    def make(seed: int | None) -> BaseSampler:
        opts = options if seed is None else {**options, "seed": seed}
        return _grid(spec, opts) if name == "grid" else SAMPLERS[name](**opts)

    try:
        if name == "grid":
            check_options(optuna.samplers.GridSampler, options, skip=("search_space",))
        else:
            check_options(SAMPLERS[name], options)
        seed = options.pop("seed", None)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise OptionError("seed", f"must be an integer, got {seed!r} (fix: e.g. seed: 0)")
        if name in ONE_SEED or (seed is None and name not in EXHAUSTIBLE):
            return make(seed)
        return TrialSeededSampler(make, seed)
    except SpecError as e:
        raise SpecError(f"{source}: {e}") from None
    except OptionError as e:
        raise SpecError(f"{source}: sampler.options.{e.field}: {e}") from None
    except (TypeError, ValueError, ImportError) as e:
        first = first_line(e)
        raise SpecError(f"{source}: sampler.options: {first} (fix: see optuna.samplers' documentation of "
                        f"the {name} sampler)") from None


def exhausted(sampler: BaseSampler, study: Study) -> bool:
    """Whether a grid or brute-force sampler has run every config (it would repeat one next)."""
    if isinstance(sampler, TrialSeededSampler):
        if sampler.exhausted:
            return True
        sampler = sampler.inner
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)
