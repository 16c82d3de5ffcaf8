"""W&B sweep files read as hpo specs: ``--spec sweep_config.yaml`` runs one as it is, and
``hpo import wandb FILE`` writes the equivalent spec with a comment per translated field.

=====================================  ==================================================
W&B                                    hpo
=====================================  ==================================================
``name`` (else the file's stem)        ``study``
``program``, ``command``               a command objective (:mod:`hpo.run.command`) reporting
                                       through the ``wandb`` stand-in (``hpo/shims``);
                                       ``${env}`` dropped, ``${interpreter}`` the Python
                                       running hpo, ``${args}`` / ``${args_no_hyphens}`` /
                                       ``${args_json}`` / ``${args_json_file}`` as in W&B
``metric: {name, goal}``               ``metrics`` and the ``curve`` pruners judge
``method: grid | random | bayes``      ``sampler``: grid, random, tpe
``parameters``                         ``value`` / ``constant`` → ``fixed``; ``values`` →
                                       categorical; ``int_uniform``, ``uniform``,
                                       ``(inv_)log_uniform(_values)``, ``q_uniform`` →
                                       int/float ranges (log, step); ``normal`` family →
                                       mu ± 3 sigma (approximate); nested ``parameters`` →
                                       ``outer.inner`` (nested again in ``wandb.config``)
``early_terminate: hyperband``         ``successive_halving`` (W&B's hyperband stops a run
                                       at min_iter * eta^k logged values unless it is in
                                       the best 1/eta there: asynchronous successive
                                       halving), steps counted as W&B counts them
``run_cap``                            ``n_trials`` (grid: the grid's size; else 20)
``project``, ``entity``, ``description``  ignored: nothing is sent to W&B
=====================================  ==================================================

Anything else (``metric.target``, ``probabilities``, ``q_log_uniform`` on floats, unknown
fields) is one error line naming the field: hpo runs nothing it cannot run as written.
The program's working directory is where hpo runs, as for ``wandb agent``, or the sweep
file's directory when the program is there and not here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpo.errors import SpecError

METHODS = {"grid": ("grid", "W&B's grid"),
           "random": ("random", "W&B's random search"),
           "bayes": ("tpe", "W&B's bayes is a Gaussian process; TPE is hpo's Bayesian default (name: gp for a GP)")}
IGNORED = ("project", "entity", "description")
KNOWN = ("name", "program", "command", "method", "metric", "parameters", "early_terminate", "run_cap", *IGNORED)
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
ARG_MACROS = {"${args}": "--{name}={value}", "${args_no_hyphens}": "{name}={value}"}
PARAM_KEYS = {"value", "values", "distribution", "min", "max", "mu", "sigma", "q", "parameters"}
SPREAD = 3.0  # a normal distribution's range: mu ± 3 sigma


@dataclass
class Translation:
    """An hpo spec as data, and per field (``study``, ``space.lr``...) what it came from."""

    spec: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)
    approximate: list[str] = field(default_factory=list)


def is_sweep(data: Any) -> bool:
    """A W&B sweep (``method`` or ``parameters``), not an hpo spec (``study``, ``space``)."""
    return (isinstance(data, dict) and bool({"method", "parameters"} & set(data))
            and not {"study", "space", "objective"} & set(data))


class _Errors(list):
    def add(self, where: str, problem: str) -> None:
        self.append(f"{where}: {problem}")


def translate(data: dict[str, Any], path: str | Path, here: Path | None = None) -> Translation:
    """The hpo spec of W&B sweep ``data`` read from ``path``; a :class:`SpecError` with one
    line per field that cannot be translated. ``here`` is where hpo runs (default: now)."""
    path = Path(path)
    errors = _Errors()
    t = Translation(spec={})
    for key in data:
        if key not in KNOWN:
            errors.add(key, "not a W&B sweep field hpo can translate (fix: remove it)")
    t.spec["study"] = str(data.get("name") or path.stem)
    t.notes["study"] = "name" if data.get("name") else f"the file's name ({path.name} has no name:)"
    _objective(data, path, here or Path.cwd(), t, errors)
    _metric(data.get("metric"), t, errors)
    method = data.get("method")
    if method not in METHODS:
        errors.add("method", f"{method!r} is not grid, random or bayes (fix: one of them)")
    else:
        t.spec["sampler"], t.notes["sampler"] = {"name": METHODS[method][0]}, f"method: {method}: {METHODS[method][1]}"
    fixed: dict[str, Any] = {}
    space: dict[str, Any] = {}
    params = data.get("parameters")
    if not isinstance(params, dict) or not params:
        errors.add("parameters", "missing or empty (fix: name at least one parameter)")
    else:
        for name, p in params.items():
            _parameter(str(name), p, f"parameters.{name}", fixed, space, t, errors)
    t.spec["fixed"], t.spec["space"] = fixed, space
    _early_terminate(data.get("early_terminate"), t, errors)
    _n_trials(data, method, space, t, errors)
    for key in IGNORED:
        if key in data:
            t.notes[f"# {key}"] = f"{key}: ignored: nothing is sent to W&B"
    if errors:
        raise SpecError("\n".join(f"{path}: {e}" for e in errors))
    return t


def _objective(data: dict[str, Any], path: Path, here: Path, t: Translation, errors: _Errors) -> None:
    program = data.get("program")
    command = data.get("command", DEFAULT_COMMAND)
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        errors.add("command", "not a list of words (fix: e.g. [${env}, ${interpreter}, ${program}, ${args}])")
        return
    if "${program}" in command and not isinstance(program, str):
        errors.add("program", "missing (fix: program: train.py, the script the sweep runs)")
        return
    args, line = None, []
    for word in command:
        if word == "${env}":
            continue
        if word in ARG_MACROS:
            if args not in (None, ARG_MACROS[word]):
                errors.add("command", f"{word} with another ${{args...}} form (fix: keep one)")
            args = ARG_MACROS[word]
            line.append("${args}")
        elif word == "${program}":
            line.append(program)
        elif word.startswith("${") and word not in ("${interpreter}", "${args_json}", "${args_json_file}"):
            errors.add("command", f"{word} has no hpo equivalent (fix: use ${{args}}, ${{args_json}} or "
                                  "${args_json_file})")
        else:
            line.append(word)
    cwd = here if not isinstance(program, str) or (here / program).exists() or not (path.parent / program).exists() \
        else path.parent
    t.spec["objective"] = {"command": line, "args": args, "cwd": str(cwd.resolve())}
    t.notes["objective"] = (f"program: {program}, command: {' '.join(command)} (${{env}} dropped); "
                            "wandb.log reports through hpo's wandb stand-in; runs in the directory hpo runs in")


def _metric(metric: Any, t: Translation, errors: _Errors) -> None:
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        errors.add("metric", "missing: hpo judges runs by one metric (fix: metric: {name: val_loss, goal: minimize})")
        return
    for key in metric:
        if key == "target":
            errors.add("metric.target", "W&B stops the whole sweep there; hpo has no such stop "
                                        "(fix: remove it; an hpo spec's target: stops each trial at it)")
        elif key not in ("name", "goal"):
            errors.add(f"metric.{key}", "has no hpo equivalent (fix: remove it)")
    goal = metric.get("goal", "minimize")
    if goal not in ("minimize", "maximize"):
        errors.add("metric.goal", f"{goal!r} is not minimize or maximize (fix: one of them)")
        return
    name = metric["name"]
    t.spec["metrics"], t.notes["metrics"] = {name: goal}, f"metric: {name}, goal: {goal}"
    t.spec["curve"] = {"metric": name, "direction": goal}
    t.notes["curve"] = "the metric early termination judges, as in W&B"


def _parameter(name: str, p: Any, where: str, fixed: dict[str, Any], space: dict[str, Any], t: Translation,
               errors: _Errors) -> None:
    if not isinstance(p, dict):
        errors.add(where, "not a mapping (fix: e.g. {values: [1, 2]} or {value: 3})")
        return
    for key in set(p) - PARAM_KEYS:
        errors.add(f"{where}.{key}", "probabilities are not supported by Optuna's samplers (fix: remove them)"
                   if key == "probabilities" else "not a W&B parameter field hpo can translate (fix: remove it)")
    if "parameters" in p:
        for sub, q in p["parameters"].items():
            _parameter(f"{name}.{sub}", q, f"{where}.parameters.{sub}", fixed, space, t, errors)
        return
    dist = p.get("distribution") or _implied(p)
    if dist == "constant":
        fixed[name], t.notes[f"fixed.{name}"] = p.get("value"), f"{where}: value"
        return
    if dist is None:
        errors.add(where, "needs value, values, or min and max (fix: e.g. {min: 0.001, max: 0.1})")
        return
    key = f"space.{name}"
    low, high, q = p.get("min"), p.get("max"), p.get("q", 1)
    if dist == "categorical":
        values = p.get("values")
        if not isinstance(values, list) or not values or any(isinstance(v, (list, dict)) for v in values):
            errors.add(f"{where}.values", "needs a list of plain values (fix: e.g. values: [16, 32])")
            return
        space[name], t.notes[key] = {"type": "categorical", "choices": values}, f"{where}: values"
        return
    if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
        mu, sigma = float(p.get("mu", 0.0)), float(p.get("sigma", 1.0))
        low, high = mu - SPREAD * sigma, mu + SPREAD * sigma
        if dist.endswith("log_normal"):
            low, high = math.exp(low), math.exp(high)
        t.approximate.append(key)
        note = (f"{where}: {dist}(mu={mu:g}, sigma={sigma:g}), APPROXIMATE: searched uniformly over "
                f"mu ± {SPREAD:g} sigma")
    elif dist in ("log_uniform", "inv_log_uniform", "q_log_uniform"):
        if not _numeric(low, high):
            errors.add(where, f"{dist} needs numeric min and max (fix: add them)")
            return
        low, high = (math.exp(low), math.exp(high)) if dist != "inv_log_uniform" else (math.exp(-high), math.exp(-low))
        note = f"{where}: {dist}: min and max are exponents (e^min..e^max)"
    elif dist in ("int_uniform", "uniform", "q_uniform", "log_uniform_values", "inv_log_uniform_values",
                  "q_log_uniform_values"):
        if not _numeric(low, high):
            errors.add(where, f"{dist} needs numeric min and max (fix: add them)")
            return
        note = f"{where}: {dist}" + (" (1/X log-uniform: X is log-uniform on the same range)"
                                     if dist.startswith("inv_") else "")
    else:
        errors.add(f"{where}.distribution", f"{dist!r} is not a W&B distribution hpo knows (fix: e.g. uniform)")
        return
    param = _range(dist, low, high, q)
    if param is None:
        errors.add(f"{where}.distribution", f"{dist}: Optuna has no quantized log scale for floats "
                                            "(fix: log_uniform_values, or values: [...])")
        return
    space[name], t.notes[key] = param, note


def _implied(p: dict[str, Any]) -> str | None:
    """W&B's default distribution: categorical for values, int_uniform for int bounds, uniform."""
    if "values" in p:
        return "categorical"
    if "value" in p:
        return "constant"
    if "min" in p and "max" in p:
        return "int_uniform" if all(isinstance(p[k], int) for k in ("min", "max")) else "uniform"
    return None


def _numeric(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _range(dist: str, low: float, high: float, q: float) -> dict[str, Any] | None:
    log = "log" in dist
    quantized = dist.startswith("q_")
    integer = dist == "int_uniform" or (quantized and all(float(v).is_integer() for v in (low, high, q)))
    if integer:
        param: dict[str, Any] = {"type": "int", "low": int(math.ceil(low)), "high": int(math.floor(high))}
        if log and q != 1:
            return None
        if quantized and q != 1:
            param["step"] = int(q)
            param["high"] = param["low"] + (param["high"] - param["low"]) // int(q) * int(q)
    else:
        if log and quantized:
            return None
        param = {"type": "float", "low": float(low), "high": float(high)}
        if quantized:
            param.update(step=float(q), high=float(low + math.floor((high - low) / q + 1e-9) * q))
    if log:
        param["log"] = True
    return param


def _early_terminate(et: Any, t: Translation, errors: _Errors) -> None:
    if et is None:
        return
    if not isinstance(et, dict) or et.get("type") != "hyperband":
        errors.add("early_terminate.type", "only hyperband has an hpo equivalent (fix: type: hyperband, or remove it)")
        return
    for key in set(et) - {"type", "min_iter", "max_iter", "s", "eta", "strict"}:
        errors.add(f"early_terminate.{key}", "not a hyperband field (fix: remove it)")
    if et.get("strict"):
        errors.add("early_terminate.strict", "has no equivalent in Optuna's successive halving (fix: remove it)")
    eta = et.get("eta", 3)
    if et.get("min_iter"):
        min_resource = int(et["min_iter"])
    elif et.get("max_iter") and et.get("s"):
        min_resource = max(1, round(et["max_iter"] / eta ** et["s"]))
    else:
        errors.add("early_terminate", "hyperband needs min_iter, or max_iter and s (fix: e.g. min_iter: 3)")
        return
    t.spec["pruners"] = [{"name": "successive_halving",
                          "options": {"min_resource": min_resource, "reduction_factor": eta}}]
    t.notes["pruners"] = (f"early_terminate: hyperband, first bracket at {min_resource} logged values, eta {eta}: "
                          "a run not in the best 1/eta at min_iter * eta^k stops (asynchronous successive halving)")
    t.spec["objective"] = {**t.spec.get("objective", {}), "steps": "counted"}
    t.notes["objective"] = t.notes.get("objective", "") + "; steps: counted, W&B's iterations are logged values"


def _n_trials(data: dict[str, Any], method: Any, space: dict[str, Any], t: Translation, errors: _Errors) -> None:
    if "run_cap" in data:
        t.spec["n_trials"], t.notes["n_trials"] = data["run_cap"], "run_cap"
    elif method == "grid":
        if any(p["type"] == "float" and "step" not in p for p in space.values()):
            errors.add("method", "grid needs values or q_uniform for every searched parameter (fix: give them)")
            return
        sizes = [len(p["choices"]) if p["type"] == "categorical"
                 else (p["high"] - p["low"]) // p.get("step", 1) + 1 for p in space.values()]
        t.spec["n_trials"] = int(math.prod(sizes))
        t.notes["n_trials"] = "the grid's size (W&B runs every grid point)"
    else:
        t.spec["n_trials"] = 20
        t.notes["n_trials"] = "W&B runs until stopped; hpo runs a total (change it, or --n-trials N)"


def _flow(key: str, value: Any) -> str:
    """``key: value`` on one line (YAML flow style)."""
    return yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False, width=10**6).strip()[1:-1]


def spec_text(t: Translation, source: Path, out: Path) -> str:
    """The spec as YAML, one ``# from ...`` comment per translated field; the objective's
    working directory relative to ``out``'s directory."""
    spec = dict(t.spec)
    objective = dict(spec["objective"])
    objective["cwd"] = os.path.relpath(objective["cwd"], out.parent.resolve())
    spec["objective"] = objective  # args: null stays: W&B passes no arguments without ${args}
    spec = {**{k: v for k, v in spec.items() if k not in ("fixed", "space")}, "fixed": spec["fixed"],
            "space": spec["space"]}
    lines = [f"# hpo spec translated from the W&B sweep {source} by `hpo import wandb`",
             "# (the program runs unchanged: `import wandb` gets hpo's stand-in, nothing is sent to W&B)"]
    for key, value in spec.items():
        if key in ("fixed", "space"):
            lines.append(f"{key}:" if value else f"{key}: {{}}")
            lines += [f"  {_flow(name, v)}  # {t.notes[f'{key}.{name}']}" for name, v in value.items()]
        else:
            lines.append(f"{_flow(key, value)}  # {t.notes[key]}")
    lines += [f"# {note}" for key, note in t.notes.items() if key.startswith("# ")]
    text = "\n".join(lines) + "\n"
    _check_round_trip(text, t, out)
    return text


def _check_round_trip(text: str, t: Translation, out: Path) -> None:
    from hpo.specs.models import dump_spec, parse_spec

    back = yaml.safe_load(text)
    back["objective"]["cwd"] = str((out.parent / back["objective"]["cwd"]).resolve())
    if dump_spec(parse_spec(back, str(out))) != dump_spec(parse_spec(t.spec, str(out))):
        raise AssertionError(f"{out}: the emitted YAML does not read back as the translation")  # a bug here
