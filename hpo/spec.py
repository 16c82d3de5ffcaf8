"""Study specs: the YAML file that says what a study optimises and over which space.

The whole file is validated up front; every mistake becomes one :class:`SpecError` line
naming the file, the field and the fix, so that a typo costs seconds, not a sweep.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hpo.errors import SpecError

SAMPLERS = ("tpe", "random", "gp", "cmaes", "nsga2", "nsga3", "qmc", "grid", "bruteforce")
PRUNERS = (
    "nop",
    "median",
    "percentile",
    "successive_halving",
    "hyperband",
    "threshold",
    "patient",
    "wilcoxon",
    "kill_rule",
    "time_cap",
)
Direction = Literal["minimize", "maximize"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Choice = Union[None, bool, int, float, str]


class _Param(_Strict):
    """``when: {name: value or [values]}``: searched only when those categorical parameters,
    listed before this one, took one of those values (e.g. ``momentum`` only for ``muon``);
    otherwise the parameter is absent from the trial and the config, as in Optuna's
    define-by-run spaces. Samplers then see the configs that differ only in ignored
    parameters as one."""

    when: dict[str, list[Choice]] | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: x if isinstance(x, list) else [x] for k, x in v.items()}
        return v


class FloatParam(_Param):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_range(self.low, self.high, self.log, self.step)
        return self


class IntParam(_Param):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.low, self.high, self.log, self.step)
        if self.log and self.step != 1:
            raise ValueError("log and step cannot be combined for an int (fix: drop one)")
        return self


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Choice]

    @field_validator("choices")
    @classmethod
    def _non_empty(cls, v: list[Any]) -> list[Any]:
        if not v:
            raise ValueError("choices is empty (fix: list at least one value)")
        return v


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


def _outside(param: Param | None, value: Any) -> str | None:
    """Why ``value`` cannot be an enqueued value of ``param``, or None."""
    if param is None:
        return "not a searched parameter (fix: enqueue only names under space; fixed values are fixed)"
    if isinstance(param, CategoricalParam):
        return None if value in param.choices else f"{value!r} is not one of {param.choices} (fix: pick one)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number (fix: give a number in [{param.low}, {param.high}])"
    if isinstance(param, IntParam) and not isinstance(value, int):
        return f"{value!r} is not an integer (fix: write it without a decimal point)"
    if not param.low <= value <= param.high:
        return f"{value} is outside [{param.low}, {param.high}] (fix: widen the range or change the value)"
    return None


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type (``True`` is not the choice ``1``); floats to 1e-9."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same parameters with the same values (:func:`same_value`)."""
    return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)


def active(param: Param, config: dict[str, Any]) -> bool:
    """Whether ``param`` is searched given the values chosen so far (its ``when``)."""
    return all(k in config and any(same_value(config[k], v) for v in values) for k, values in (param.when or {}).items())


def _check_range(low: float, high: float, log: bool, step: float | None) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite numbers")
    if low > high:
        raise ValueError(f"low ({low}) > high ({high}) (fix: swap them)")
    if log and low <= 0:
        raise ValueError(f"log: true needs low > 0, got low={low} (fix: raise low or set log: false)")
    if step is not None and step <= 0:
        raise ValueError(f"step must be > 0, got {step}")


class Component(_Strict):
    """A sampler or pruner: a name from the registry and keyword options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class Curve(_Strict):
    """The metric that ``report()`` turns into the intermediate-value curve the pruners judge."""

    metric: str = "val_loss"
    direction: Direction = "minimize"


class Target(_Strict):
    """Stop a trial as soon as ``metric`` is below (or above) a value; record time to target."""

    metric: str = "val_loss"
    below: float | None = None
    above: float | None = None
    clock: str = "train_seconds"

    @model_validator(mode="after")
    def _one_bound(self) -> Target:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below or above (fix: e.g. below: 2.5)")
        return self

    def reached(self, value: float) -> bool:
        if self.below is not None:
            return value < self.below
        return value > self.above  # type: ignore[operator]

    @property
    def level(self) -> float:
        return self.below if self.below is not None else self.above  # type: ignore[return-value]


class StudySpec(_Strict):
    study: str = Field(min_length=1)
    objective: str
    metrics: dict[str, Direction] = Field(min_length=1)
    curve: Curve = Field(default_factory=Curve)
    target: Target | None = None
    trial_budget_seconds: float | None = Field(default=None, gt=0)
    n_trials: int = Field(default=20, ge=1)
    sampler: Component = Field(default_factory=lambda: Component(name="tpe"))
    pruners: list[Component] = Field(default_factory=list)
    fixed: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Param] = Field(default_factory=dict)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    one_factor_levels: int | None = Field(default=None, ge=2, le=10)
    cpus_per_worker: float | None = Field(default=None, gt=0)  # a worker's CPUs on a Ray CPU node (None: 1)
    parent: dict[str, Any] | None = None

    @field_validator("objective")
    @classmethod
    def _objective_form(cls, v: str) -> str:
        if v.count(":") != 1 or not all(v.split(":")):
            raise ValueError(f"'{v}' is not 'module:function' (fix: e.g. objectives.ngpt_ttt:train)")
        return v

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, v: Component) -> Component:
        if v.name not in SAMPLERS:
            raise ValueError(f"unknown sampler '{v.name}' (fix: one of {', '.join(SAMPLERS)})")
        return v

    @field_validator("pruners")
    @classmethod
    def _known_pruners(cls, v: list[Component]) -> list[Component]:
        for p in v:
            if p.name not in PRUNERS:
                raise ValueError(f"unknown pruner '{p.name}' (fix: one of {', '.join(PRUNERS)})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        both = sorted(set(self.fixed) & set(self.space))
        if both:
            raise ValueError(f"{both} is both fixed and searched (fix: keep it in one of fixed/space)")
        if "time_to_target" in self.metrics and self.target is None:
            raise ValueError("metric time_to_target needs a target (fix: add target: {metric: val_loss, below: X})")
        if self.target is not None and self.trial_budget_seconds is None:
            raise ValueError("a target needs trial_budget_seconds to censor runs that miss it (fix: add it)")
        names = list(self.space)
        for name, p in self.space.items():
            for key, values in (p.when or {}).items():
                cond = self.space.get(key)
                if not isinstance(cond, CategoricalParam) or names.index(key) > names.index(name):
                    raise ValueError(f"space.{name}.when: '{key}' is not a categorical parameter listed before "
                                     f"{name} (fix: name one, e.g. optimizer, above {name})")
                bad = [v for v in values if not any(same_value(v, c) for c in cond.choices)]
                if bad:
                    raise ValueError(f"space.{name}.when.{key}: {bad} not among its choices {cond.choices} "
                                     "(fix: pick from them)")
        if self.one_factor_levels is not None and not self.enqueue:
            raise ValueError("one_factor_levels varies the baseline enqueue[0], and enqueue is empty "
                             "(fix: add your baseline config under enqueue, or drop one_factor_levels)")
        for i, params in enumerate(self.enqueue):
            for name, value in params.items():
                problem = _outside(self.space.get(name), value)
                off = [] if problem else [k for k, v in (self.space[name].when or {}).items()
                                          if k in params and not any(same_value(params[k], x) for x in v)]
                if off:
                    problem = f"not searched when {off[0]} is {params[off[0]]!r} (its when) (fix: drop it)"
                if problem:
                    raise ValueError(f"enqueue[{i}].{name}: {problem}")
        return self

    @property
    def directions(self) -> list[str]:
        return list(self.metrics.values())

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def locate_objective(self) -> None:
        """Check that the objective's module exists, without importing it (and torch with it).

        For a process that only starts workers: each worker imports it anyway, and an
        import of torch in the parent would delay every worker's start by seconds.
        """
        module_name = self.objective.split(":")[0]
        try:
            found = importlib.util.find_spec(module_name)
        except Exception:  # noqa: BLE001 - a missing parent package raises instead of returning None
            found = None
        if found is None:
            raise SpecError(
                f"objective: cannot find module '{module_name}' "
                "(fix: check the name and that it is installed or on PYTHONPATH)"
            )

    def load_objective(self) -> Callable[..., dict[str, float]]:
        """Import ``module:function``; raises :class:`SpecError` on failure."""
        module_name, func_name = self.objective.split(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # noqa: BLE001 - any import failure is a spec problem
            raise SpecError(
                f"objective: cannot import module '{module_name}': {type(e).__name__}: {e} "
                "(fix: check the name and that it is installed or on PYTHONPATH)"
            ) from None
        func = getattr(module, func_name, None)
        if not callable(func):
            raise SpecError(
                f"objective: module '{module_name}' has no function '{func_name}' (fix: check the name)"
            )
        return func


def _location(loc: tuple[Any, ...]) -> str:
    # Drop pydantic's union tags (e.g. "float", "FloatParam") so the path reads like the YAML.
    parts = [str(p) for p in loc if str(p) not in {"float", "int", "categorical"} and "[" not in str(p)]
    return ".".join(parts) or "(top level)"


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (fix: remove it or check its spelling)"
    if kind == "missing":
        return "required field is missing (fix: add it)"
    if kind == "union_tag_invalid":
        return "type must be float, int or categorical (fix: set type)"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def parse_spec(data: Any, source: str) -> StudySpec:
    """Validate a loaded mapping; every problem becomes one ``source: field: message`` line."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: (top level): expected a mapping of spec fields (fix: see README)")
    try:
        return StudySpec.model_validate(data)
    except ValidationError as e:
        lines = [f"{source}: {_location(err['loc'])}: {_message(err)}" for err in e.errors()]
        raise SpecError("\n".join(lines)) from None


def load_spec(path: str | Path, check_objective: bool = True, import_objective: bool = True) -> StudySpec:
    """Read, validate and (optionally) check the objective of a spec file: import it, or with
    ``import_objective=False`` only find its module."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: file not found (fix: check --study/--spec; specs live in search_spaces/)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(parse)"
        raise SpecError(f"{path}: {where}: not valid YAML: {getattr(e, 'problem', e)} (fix: the syntax)") from None
    spec = parse_spec(data, str(path))
    if check_objective:
        try:
            spec.load_objective() if import_objective else spec.locate_objective()
        except SpecError as e:
            raise SpecError(f"{path}: {e}") from None
    return spec


def find_spec(study: str | None, spec_path: str | None, root: Path | None = None) -> Path:
    """``--spec PATH`` wins; ``--study NAME`` means ``search_spaces/NAME.yaml``."""
    if spec_path:
        return Path(spec_path)
    if not study:
        raise SpecError("command line: give --study NAME or --spec PATH")
    return (root or Path.cwd()) / "search_spaces" / f"{study}.yaml"


def dump_spec(spec: StudySpec) -> dict[str, Any]:
    """The spec as plain data (for writing a YAML file back)."""
    return spec.model_dump(mode="json", exclude_none=True)
