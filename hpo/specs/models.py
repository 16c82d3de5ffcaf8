"""Study specs: the YAML file that says what a study optimises and over which space.

The whole file is validated up front; every mistake becomes one :class:`SpecError` line
naming the file, the field and the fix, so that a typo costs seconds, not a sweep.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError,
                      field_serializer, field_validator, model_validator)

from hpo.errors import SpecError, first_line

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
WALL_CLOCK = "wall"  # the clock hpo measures itself: wall seconds since the trial started


class _Strict(BaseModel):
    # No inf or NaN in any float field: a budget of .inf or a NaN bound is a typo, not a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined for a float (fix: drop one)")
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
        for i, c in enumerate(v):
            if isinstance(c, float) and not math.isfinite(c):
                raise ValueError(f"choice {c} is not a finite number (fix: remove it or give a number)")
            if any(same_value(c, d) for d in v[:i]):
                raise ValueError(f"{c!r} is listed twice (fix: list each choice once)")
        return v


# One searched parameter of a spec's ``space`` (the only such type: design, narrowing and space use it).
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
        raise ValueError(f"step must be > 0, got {step} (fix: a positive step, or none)")
    if step is not None and high > low:
        span = high - low
        if step > span:
            raise ValueError(f"step {step} is larger than the range {low}..{high}, which would leave one value "
                             f"(fix: a step <= {span:g}, or fixed: instead of space:)")
        k = span / step
        if abs(k - round(k)) > 1e-6 * max(1.0, k):
            fitted = low + math.floor(k + 1e-9) * step
            raise ValueError(f"high {high} is not low {low} plus a multiple of step {step} "
                             f"(fix: high: {fitted:.12g}, or another step)")


class Component(_Strict):
    """A sampler or pruner: a name from the registry and keyword options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class Curve(_Strict):
    """The metric that ``report()`` turns into the intermediate-value curve the pruners judge.

    ``length_key`` names the config key that holds a run's last step (``max_steps``): a
    report at that step is never pruned, since the run's compute is already spent.
    """

    metric: str = "val_loss"
    direction: Direction = "minimize"
    length_key: str = "max_steps"


class Target(_Strict):
    """Stop a trial as soon as ``metric`` is below (or above) a value; record time to target.

    The time is read on the study's ``clock`` (a spec may still spell it ``target.clock``).
    """

    metric: str = "val_loss"
    below: float | None = None
    above: float | None = None

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

    @property
    def sign(self) -> float:
        """+1 for ``below`` (lower is better), -1 for ``above``."""
        return 1.0 if self.below is not None else -1.0

    def describe(self) -> str:
        """e.g. ``val_loss < 1.45``."""
        return f"{self.metric} < {self.below:g}" if self.below is not None else f"{self.metric} > {self.above:g}"


class CommandClock(BaseModel):
    """A pattern group that holds the training clock, in ``unit``: reported in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    group: str
    unit: Literal["s", "ms", "us", "min", "h"] = "s"


class CommandSpec(BaseModel):
    """The ``objective:`` mapping of a command objective (:mod:`hpo.run.command`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command: list[str] = Field(min_length=1)
    args: str | None = "--{name}={value}"
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    pattern: str | None = None
    clock: CommandClock | None = None
    steps: Literal["reported", "counted"] = "reported"
    grace_seconds: float = Field(default=5.0, ge=0)
    silence_timeout: float | None = Field(default=1800.0, gt=0)
    echo: bool = False
    shims: bool = True

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return shlex.split(v)
        return [str(x) if isinstance(x, (int, float)) else x for x in v] if isinstance(v, list) else v

    @field_validator("env", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        return {k: str(x) for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("args")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        try:
            if v is not None:
                v.format(name="lr", value="0.1")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"'{v}' is not a template of {{name}} and {{value}} ({e}) "
                             "(fix: e.g. '--{name}={value}' or '--{name} {value}')") from None
        return v or None

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            groups = re.compile(v).groupindex
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e} (fix: check the brackets and escapes)") from None
        if "step" not in groups:
            raise ValueError("has no (?P<step>...) group (fix: capture the step, e.g. 'step (?P<step>\\d+)')")
        return v

    def check_reports(self, needed: dict[str, str]) -> None:
        """``pattern`` captures each metric in ``needed`` (what it is for → its name) and
        ``clock`` names one of its groups: a ``ValueError`` line if not."""
        if self.pattern is None:
            return
        groups = sorted(re.compile(self.pattern).groupindex)
        for what, metric in needed.items():
            if metric not in groups:
                raise ValueError(f"objective.pattern: no (?P<{metric}>...) group for the {what} metric "
                                 f"(fix: capture it, or set {what}.metric to one of {groups})")
        if self.clock is not None and self.clock.group not in groups:
            raise ValueError(f"objective.clock.group: '{self.clock.group}' is not a group of objective.pattern "
                             f"(fix: one of {groups})")

    def anchored(self, base: Path) -> CommandSpec:
        """This spec with ``cwd`` absolute: a relative one (or none) is relative to ``base``."""
        return self.model_copy(update={"cwd": str((base / (self.cwd or ".")).resolve())})

    def locate(self) -> None:
        """The working directory and the program exist: a :class:`SpecError` line if not."""
        cwd = Path(self.cwd or ".")
        if not cwd.is_dir():
            raise SpecError(f"objective.cwd: {cwd} is not a directory (fix: a path relative to the spec file)")
        env_path = {**os.environ, **self.env}.get("PATH")
        program = self.command[0]
        if program == "${interpreter}":
            program = sys.executable
        found = shutil.which(program, path=env_path) if os.sep not in program else None
        if found is None and not (cwd / program).is_file():
            raise SpecError(f"objective.command: '{program}' is not on PATH nor a file in {cwd} "
                            "(fix: check the name, or give its path)")
        if found is None and not os.access(cwd / program, os.X_OK):
            raise SpecError(f"objective.command: {program} is not executable "
                            f"(fix: chmod +x it, or start the command with its interpreter, e.g. [python, {program}])")
        script = next((a for a in self.command[1:2] if a.endswith(".py")), None)
        if Path(program).name.startswith("python") and script and not (cwd / script).is_file():
            raise SpecError(f"objective.command: {script} not found in {cwd} (fix: check the name, or set cwd)")


def _objective_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return "module-function"
    return "command-objective" if isinstance(v, (dict, CommandSpec)) else None


# ``module:function``, or a mapping with ``command:`` (:mod:`hpo.run.command`)
Objective = Annotated[
    Union[Annotated[str, Tag("module-function")], Annotated[CommandSpec, Tag("command-objective")]],
    Discriminator(_objective_kind, custom_error_type="objective_form",
                  custom_error_message="neither 'module:function' nor a mapping with command: "
                                       "(fix: e.g. objectives.ngpt_ttt:train or {command: [python, train.py]})"),
]


class StudySpec(_Strict):
    """A study: what it optimises, over which space, how trials are judged and stopped.

    ``clock`` is the metric every report carries that measures a trial's training compute
    (the nGPT objective: ``cpu_seconds`` on CPU, ``train_seconds`` on CUDA; ``wall``: hpo's
    own wall clock); the budget and the time to target are read on it. ``deterministic``:
    the objective gives the same result for the same config, so a config some finished trial
    already holds is never trained again (the new trial takes its result, marked as a copy).
    ``seed_key`` is the config key of the training seed that ``hpo rerun`` varies.
    """

    study: str = Field(min_length=1)
    objective: Objective
    metrics: dict[str, Direction] = Field(min_length=1)
    curve: Curve = Field(default_factory=Curve)
    target: Target | None = None
    clock: str = "train_seconds"
    trial_budget_seconds: float | None = Field(default=None, gt=0)
    deterministic: bool = False
    seed_key: str = "seed"
    n_trials: int = Field(default=20, ge=1)
    sampler: Component = Field(default_factory=lambda: Component(name="tpe"))
    pruners: list[Component] = Field(default_factory=list)
    fixed: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Param] = Field(default_factory=dict)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    one_factor_levels: int | None = Field(default=None, ge=2, le=10)
    cpus_per_worker: float | None = Field(default=None, gt=0)  # a worker's CPUs on a Ray CPU node (None: 1)
    parent: dict[str, Any] | None = None
    # shorthand: each name's values become a categorical parameter, searched by the grid sampler;
    # not dumped (the space and sampler it made are)
    grid: dict[str, Annotated[list[Choice], Field(min_length=1)]] | None = Field(default=None, exclude=True)
    _names: dict[int, str] = PrivateAttr(default_factory=dict)  # enqueue index -> experiment name

    @model_validator(mode="before")
    @classmethod
    def _grid_space(cls, data: Any) -> Any:
        """``grid: {name: [values]}`` adds ``space.name`` as categorical, the grid sampler and, by
        default, ``n_trials`` = the number of grid points (:meth:`_consistent` checks the rest)."""
        grid = data.get("grid") if isinstance(data, dict) else None
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            return data
        space = dict(data.get("space") or {})
        for name, values in grid.items():
            space.setdefault(name, {"type": "categorical", "choices": values})
        return {**data, "space": space, "sampler": data.get("sampler", {"name": "grid"}),
                "n_trials": data.get("n_trials", math.prod(len(v) for v in grid.values()))}

    @model_validator(mode="wrap")
    @classmethod
    def _named_enqueue(cls, data: Any, handler: Callable[[Any], StudySpec]) -> StudySpec:
        """Named experiments: an ``enqueue`` entry ``{name: {config}}`` (or ``enqueue`` as a mapping
        of names to configs) is the config, and its trial gets the user attribute ``experiment``."""
        names: dict[int, str] = {}
        entries = data.get("enqueue") if isinstance(data, dict) else None
        if isinstance(entries, dict):
            entries = [{k: v} for k, v in entries.items()]
        if isinstance(entries, list):
            plain = []
            for i, e in enumerate(entries):
                if isinstance(e, dict) and len(e) == 1 and isinstance(next(iter(e.values())), dict):
                    (name, e), = e.items()
                    if str(name) in names.values():
                        raise ValueError(f"enqueue[{i}]: the name '{name}' is used twice (fix: rename one)")
                    names[i] = str(name)
                plain.append(e)
            data = {**data, "enqueue": plain}
        spec = handler(data)
        spec._names = names
        return spec

    @field_serializer("enqueue")
    def _dump_names(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{self._names[i]: e} if i in self._names else e for i, e in enumerate(entries)]

    def experiment_name(self, params: dict[str, Any]) -> str | None:
        """The name of the named ``enqueue`` entry that is exactly ``params``, if any."""
        named = (name for i, name in self._names.items() if same_params(self.enqueue[i], params))
        return next(named, None)

    @model_validator(mode="before")
    @classmethod
    def _one_clock(cls, data: Any) -> Any:
        """``target.clock`` (older specs) becomes the study's ``clock``; two different ones are an error."""
        if not isinstance(data, dict) or not isinstance(data.get("target"), dict):
            return data
        target = dict(data["target"])
        old = target.pop("clock", None)
        if old is None:
            return data
        if data.get("clock", old) != old:
            raise ValueError(f"target.clock is '{old}' and clock is '{data['clock']}' "
                             "(fix: name the clock once, as clock:)")
        return {**data, "target": target, "clock": old}

    @field_validator("objective")
    @classmethod
    def _objective_form(cls, v: str | CommandSpec) -> str | CommandSpec:
        if isinstance(v, CommandSpec):
            return v
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
                if key == name:
                    raise ValueError(f"space.{name}.when: names {name} itself (fix: name another categorical "
                                     "parameter listed above it, or drop when)")
                if not isinstance(cond, CategoricalParam) or names.index(key) > names.index(name):
                    raise ValueError(f"space.{name}.when: '{key}' is not a categorical parameter listed before "
                                     f"{name} (fix: name one, e.g. optimizer, above {name})")
                bad = [v for v in values if not any(same_value(v, c) for c in cond.choices)]
                if bad:
                    raise ValueError(f"space.{name}.when.{key}: {bad} not among its choices {cond.choices} "
                                     "(fix: pick from them)")
        for name, values in (self.grid or {}).items():
            if self.space[name] != CategoricalParam(type="categorical", choices=values):
                raise ValueError(f"grid.{name}: also under space (fix: keep it in one of grid/space)")
        if self.grid and self.sampler.name != "grid":
            raise ValueError(f"grid: needs the grid sampler, sampler is {self.sampler.name} "
                             "(fix: drop sampler:, or set name: grid)")
        if isinstance(self.objective, CommandSpec):
            needed = {"curve": self.curve.metric, **({"target": self.target.metric} if self.target else {})}
            self.objective.check_reports(needed)
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
        if isinstance(self.objective, CommandSpec):
            self.objective.locate()
            return
        module_name = self.objective.split(":")[0]
        _not_python_itself(module_name, self.objective)
        try:
            found = importlib.util.find_spec(module_name)
        except Exception:  # noqa: BLE001 - a missing parent package raises instead of returning None
            found = None
        if found is None:
            raise SpecError(
                f"objective: cannot find module '{module_name}' "
                "(fix: check the name and that it is installed or on PYTHONPATH)"
            )

    def import_function(self) -> Callable[..., dict[str, float]]:
        """Import a ``module:function`` objective and check that it is a Python function of your
        own that accepts ``(config, report)``; raises :class:`SpecError` on failure. (A command
        objective is run by :func:`hpo.run.session.load_objective`.)"""
        if isinstance(self.objective, CommandSpec):
            raise TypeError("a command objective has no function to import")
        module_name, func_name = self.objective.split(":")
        _not_python_itself(module_name, self.objective)
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # noqa: BLE001 - any import failure is a spec problem
            raise SpecError(
                f"objective: cannot import module '{module_name}': {type(e).__name__}: {first_line(e)} "
                "(fix: check the name and that it is installed or on PYTHONPATH)"
            ) from None
        except SystemExit as e:
            raise SpecError(f"objective: importing module '{module_name}' called sys.exit({e.code}) "
                            "(fix: guard script code with if __name__ == '__main__':)") from None
        func = getattr(module, func_name, None)
        if not callable(func):
            raise SpecError(
                f"objective: module '{module_name}' has no function '{func_name}' (fix: check the name)"
            )
        if not inspect.isfunction(func):
            raise SpecError(f"objective: '{self.objective}' is a {type(func).__name__}, not a Python function "
                            "(fix: name a def train(config, report) in your own module)")
        _not_python_itself(func.__module__ or module_name, self.objective)
        try:
            inspect.signature(func).bind({}, None)
        except TypeError:
            raise SpecError(f"objective: {func_name}{inspect.signature(func)} does not accept (config, report) "
                            f"(fix: def {func_name}(config, report): ...)") from None
        return func


def _not_python_itself(module_name: str, objective: str) -> None:
    """Refuse Python's own modules (``os:system``, ``builtins:eval``): not a training function."""
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise SpecError(f"objective: '{objective}' is in Python's standard library, not a training function "
                        "(fix: name your own module:function, e.g. objectives.ngpt_ttt:train)")


_UNION_TAGS = {"float", "int", "categorical", "bool", "str", "none", "module-function", "command-objective"}
_NUMBER = "a number (fix: write a number, e.g. 0.5)"
_PLAIN = {
    "int_parsing": "an integer (fix: write a whole number, e.g. 10)",
    "int_type": "an integer (fix: write a whole number, e.g. 10)",
    "int_from_float": "an integer (fix: write a whole number, e.g. 10)",
    "float_parsing": _NUMBER,
    "float_type": _NUMBER,
    "finite_number": "a finite number (fix: give a finite number, not .inf or .nan)",
    "bool_parsing": "true or false (fix: write true or false)",
    "bool_type": "true or false (fix: write true or false)",
    "string_type": "a string (fix: write text)",
    "dict_type": "a mapping (fix: write name: value pairs, e.g. {a: 1})",
    "list_type": "a list (fix: write a list, e.g. [a, b])",
}


def _location(loc: tuple[Any, ...]) -> str:
    # Drop pydantic's union tags (e.g. "float", "FloatParam") so the path reads like the YAML.
    parts = [str(p) for p in loc if str(p) not in _UNION_TAGS and "[" not in str(p)]
    return ".".join(parts) or "(top level)"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _message(err: dict[str, Any]) -> str:
    """One pydantic error as ``problem (fix: ...)``."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        return "unknown key (fix: remove it or check its spelling)"
    if kind == "missing":
        return "required field is missing (fix: add it)"
    if kind == "union_tag_not_found":
        return "type is missing (fix: add type: float, int or categorical)"
    if kind == "union_tag_invalid":
        return f"type {ctx.get('tag')!r} is unknown (fix: type: float, int or categorical)"
    if kind in _PLAIN:
        return f"{_shown(value)} is not {_PLAIN[kind]}"
    if kind == "literal_error":
        return f"{_shown(value)} is not {ctx.get('expected')} (fix: use one of them)"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"{_shown(value)} must be {bounds[kind]} {limit} (fix: give a number {bounds[kind]} {limit})"
    if kind == "string_too_short":
        return "is empty (fix: give a name)"
    if kind == "too_short":
        return f"is empty (fix: give at least {ctx.get('min_length', 1)})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return msg if "(fix:" in msg else f"{msg} (fix: see the README, Study specs)"


def _first_problem(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The first error; for a value none of a union's types accepts (a choice), one error for all."""
    first = errors[0]
    if not first["loc"] or str(first["loc"][-1]) not in _UNION_TAGS:
        return first
    same = [e for e in errors if e["loc"][:-1] == first["loc"][:-1]]
    if len(same) < 2:  # a discriminated union (space entries) reports its one member
        return first
    finite = [e for e in same if e["type"] == "finite_number"]
    if finite:
        return finite[0]
    return {**first, "type": "value_error",
            "msg": f"{_shown(first.get('input'))} is not null, true/false, a number or a string "
                   "(fix: give one of those)"}


def parse_spec(data: Any, source: str) -> StudySpec:
    """Validate a loaded mapping; the first problem becomes one ``source: field: message`` line.

    Args:
        data: the spec as plain data (e.g. a YAML file's mapping).
        source: where it came from, named in the error line (a file, or a study's attributes).
    """
    if not isinstance(data, dict):
        raise SpecError(f"{source}: (top level): expected a mapping of spec fields (fix: see README)")
    try:
        return StudySpec.model_validate(data)
    except ValidationError as e:
        err = _first_problem(e.errors())
        where, message = _location(err["loc"]), _message(err)
        named = re.match(r"([\w\[\]]+(?:\.[\w\[\]]+)*): (.*)$", message)
        if not err["loc"] and named:  # a whole-spec check names its own field, e.g. space.lr.when
            where, message = named.groups()
        raise SpecError(f"{source}: {where}: {message}") from None


def dump_spec(spec: StudySpec) -> dict[str, Any]:
    """The spec as plain data (for writing a YAML file back)."""
    return spec.model_dump(mode="json", exclude_none=True)
