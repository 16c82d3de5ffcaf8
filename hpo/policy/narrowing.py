"""Stage-2 narrowing: from a study's top-k COMPLETE trials, a smaller spec around them.

Per parameter of the Stage-1 space (the rules are also written into the Stage-2 file):

* categorical/bool: all top-k trials chose the same value → **locked** into ``fixed``;
  they used only some choices → **narrowed** to those; otherwise kept wide.
* numeric: the top-k min..max (in log space for ``log`` params) is widened by
  ``MARGIN`` (25%) of that span on each side, but at least ``MIN_MARGIN`` (5%) of the old
  range so that agreeing trials still leave room, then clipped to the Stage-1 bounds and
  snapped outward to integers/steps on the Stage-1 grid (so every Stage-1 value on the grid
  stays representable). If the top-k already span ``KEEP_WIDE`` (80%) or more of the old
  range, or the widened range reaches both bounds, the parameter is **kept wide**.
* ``when`` (a parameter searched only for some choices of another): a condition on a locked
  parameter either always holds (it goes) or never does (the parameter is **dropped**: Stage 2
  never searches it); on a narrowed one it keeps the choices left. A locked parameter that
  keeps a condition stays under ``space`` as its one choice, so configs it does not apply to
  do not get it. Its values come from the top trials that have it.

Top-k follows :func:`hpo.analysis.ranking.rank`: trials that reached the target before any that missed
it, then by value for one objective and NSGA-II order for several; copies and seed re-runs of
a config count once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import yaml
from optuna.trial import FrozenTrial

from hpo.errors import HpoError
from hpo.analysis.pareto import complete_trials
from hpo.analysis.ranking import missed, rank
from hpo.specs.models import CategoricalParam, FloatParam, IntParam, Param, StudySpec, dump_spec, parse_spec, same_value
from hpo.analysis.study_info import study_spec

MARGIN = 0.25
MIN_MARGIN = 0.05
KEEP_WIDE = 0.8
SIG_DIGITS = 3  # unstepped float bounds are rounded outward to this many significant digits
WEAK = "from 1 trial only"  # a decision on one trial's value: said in its comment and warned about


@dataclass(frozen=True)
class Decision:
    """What happened to one Stage-1 parameter, and why (the YAML comment)."""

    name: str
    action: str  # "locked" | "narrowed" | "wide" | "dropped"
    param: Param  # the Stage-2 parameter (the Stage-1 one when locked or wide)
    why: str
    value: Any = None  # the locked value


@dataclass(frozen=True)
class Narrowing:
    parent: StudySpec
    spec: StudySpec
    trials: list[int]  # the top-k trial numbers, best first
    decisions: list[Decision]
    missed: list[int] = field(default_factory=list)  # top-k trials that missed the target (censored)


def stage2_name(study: str) -> str:
    return f"{study}_stage2"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else repr(v) if isinstance(v, str) else str(v)


def _narrow_choices(name: str, p: CategoricalParam, values: list[Any], k: int) -> Decision:
    used = [c for c in p.choices if any(same_value(c, v) for v in values)]
    if len(used) == 1:
        if k == 1:
            return Decision(name, "locked", p, f"locked: {WEAK} (the only top trial that has it chose "
                                               f"{_fmt(used[0])})", used[0])
        return Decision(name, "locked", p, f"locked: all {k} top trials chose {_fmt(used[0])}", used[0])
    if len(used) < len(p.choices):
        dropped = ", ".join(_fmt(c) for c in p.choices if c not in used)
        return Decision(name, "narrowed", p.model_copy(update={"choices": used}),
                        f"narrowed: the top {k} used only {', '.join(map(_fmt, used))} (dropped {dropped})")
    return Decision(name, "wide", p, f"kept wide: the top {k} used every choice")


def _round_out(x: float, up: bool) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    scale = 10 ** (math.floor(math.log10(abs(x))) - SIG_DIGITS + 1)
    return float(f"{(math.ceil if up else math.floor)(x / scale) * scale:.{SIG_DIGITS}g}")


def _snap(p: FloatParam | IntParam, lo: float, hi: float) -> tuple[float, float]:
    """Outward onto the Stage-1 grid (``low + i*step``), or to round numbers; within bounds."""
    step = p.step if isinstance(p, IntParam) or p.step else None
    if step is None:
        return max(p.low, _round_out(lo, up=False)), min(p.high, _round_out(hi, up=True))
    top = math.floor((p.high - p.low) / step + 1e-9)
    i = max(0, math.floor((lo - p.low) / step + 1e-9))
    j = min(top, math.ceil((hi - p.low) / step - 1e-9))
    if isinstance(p, IntParam):
        return p.low + i * step, p.low + j * step
    return round(p.low + i * step, 12), round(p.low + j * step, 12)


def _narrow_range(name: str, p: FloatParam | IntParam, values: list[float], k: int) -> Decision:
    fwd: Callable[[float], float] = math.log if p.log else float
    back: Callable[[float], float] = math.exp if p.log else float
    full = fwd(p.high) - fwd(p.low)
    lo, hi = fwd(min(values)), fwd(max(values))
    top = f"top {k} {_fmt(min(values))}..{_fmt(max(values))}"
    space = " in log space" if p.log else ""
    if full <= 0 or hi - lo >= KEEP_WIDE * full:
        share = 1.0 if full <= 0 else (hi - lo) / full
        return Decision(name, "wide", p, f"kept wide: {top} span {share:.0%} of the range{space} (>= {KEEP_WIDE:.0%})")
    margin = max(MARGIN * (hi - lo), MIN_MARGIN * full)
    low, high = _snap(p, back(lo - margin), back(hi + margin))
    if (low, high) == (p.low, p.high):
        return Decision(name, "wide", p, f"kept wide: {top}, widened by {MARGIN:.0%}{space} it reaches both bounds")
    new = type(p)(**{**p.model_dump(), "low": low, "high": high})
    snapped = f", snapped to step {p.step}" if p.step and p.step != 1 else ""
    return Decision(name, "narrowed", new,
                    f"narrowed from {_fmt(p.low)}..{_fmt(p.high)}: {top} widened by {MARGIN:.0%} of their "
                    f"span{space} (min {MIN_MARGIN:.0%} of the range){snapped}")


def decide(name: str, p: Param, values: list[Any], k: int) -> Decision:
    """Lock, narrow or keep one parameter given the top-k trials' values of it."""
    if not values:
        return Decision(name, "wide", p, "kept wide: no top trial has a value for it")
    if isinstance(p, CategoricalParam):
        return _narrow_choices(name, p, values, k)
    return _narrow_range(name, p, values, k)


def _conditioned(decisions: list[Decision]) -> list[Decision]:
    """Each decision with its parameter's ``when`` carried into Stage 2 (module docstring)."""
    done: dict[str, Decision] = {}
    for d in decisions:
        when: dict[str, list[Any]] = {}
        dropped = None
        for key, values in (d.param.when or {}).items():
            cond = done[key]  # a condition names a parameter listed before
            if cond.action == "dropped":
                dropped = f"dropped: searched only with {key}, which stage 2 does not search"
            elif cond.action == "locked":
                if not any(same_value(cond.value, v) for v in values):
                    dropped = f"dropped: searched only when {key} is one of {values}, locked to {_fmt(cond.value)}"
            else:
                left = [v for v in values if any(same_value(v, c) for c in cond.param.choices)]  # type: ignore[union-attr]
                if not left:
                    dropped = f"dropped: searched only when {key} is one of {values}, no longer among its choices"
                when[key] = left
        if dropped is not None:
            d = Decision(d.name, "dropped", d.param, dropped)
        elif d.action == "locked" and when:
            d = Decision(d.name, "narrowed", CategoricalParam(type="categorical", choices=[d.value], when=when),
                         f"{d.why}; kept under space with its condition {when}")
        else:
            d = replace(d, param=d.param.model_copy(update={"when": when or None}))
        done[d.name] = d
    return list(done.values())


def narrow(parent: StudySpec, top: Sequence[FrozenTrial], into: str | None = None,
           n_trials: int | None = None) -> Narrowing:
    """The Stage-2 spec from ``parent`` and its top trials (best first)."""
    values = {name: [t.params[name] for t in top if name in t.params] for name in parent.space}
    # a conditional parameter is judged on the top trials that have it ("all 3 top trials chose")
    decisions = _conditioned([decide(name, p, values[name], len(values[name])) for name, p in parent.space.items()])
    numbers = [t.number for t in top]
    data = dump_spec(parent)
    # stage 1's starting configs (enqueue, one-factor neighbours) need not lie in the narrowed space
    data.pop("enqueue", None)
    data.pop("one_factor_levels", None)
    data.update(
        study=into or stage2_name(parent.study),
        fixed={**parent.fixed, **{d.name: d.value for d in decisions if d.action == "locked"}},
        space={d.name: _param_data(d.param) for d in decisions if d.action not in ("locked", "dropped")},
        parent={"study": parent.study, "trials": numbers},
        n_trials=n_trials or parent.n_trials,
    )
    return Narrowing(parent, parse_spec(data, f"stage 2 of {parent.study}"), numbers, decisions,
                     [t.number for t in top if missed(t)])


def narrow_study(study: optuna.Study, top: int = 5, into: str | None = None,
                 n_trials: int | None = None) -> Narrowing:
    """:func:`narrow` with the spec stored in ``study`` and its top ``top`` COMPLETE trials."""
    parent = study_spec(study)
    if parent is None:
        raise HpoError(f"study '{study.study_name}' has no hpo spec stored (fix: narrow a study run by hpo optimize)")
    done = complete_trials(study)
    if len(done) < 2:
        raise HpoError(f"study '{study.study_name}' has {len(done)} COMPLETE trial(s); narrowing needs at least 2 "
                       "(fix: run more trials with hpo optimize)")
    return narrow(parent, rank(done, study.directions)[0][:top], into, n_trials)


def _param_data(p: Param) -> dict[str, Any]:
    return p.model_dump(mode="json", exclude_defaults=True)


def _flow(key: str, value: Any) -> str:
    """``key: value`` on one line, in YAML flow style."""
    text = yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False, width=10**6).strip()
    return text[1:-1]


def spec_yaml(n: Narrowing) -> str:
    """The Stage-2 spec as YAML with the rules on top and one comment per parameter."""
    k = len(n.trials)
    head = [
        f"# Stage 2 of study {n.parent.study}: narrowed by `hpo narrow` around its top {k} COMPLETE trials",
        f"# {n.trials} (best first). Categorical/bool parameters they all agree on are locked into fixed;",
        f"# numeric ranges are the top-{k} min..max widened by {MARGIN:.0%} of that span each side (in log",
        f"# space for log parameters; at least {MIN_MARGIN:.0%} of the old range), clipped to the Stage-1",
        "# bounds and snapped outward to integers/steps; parameters whose top-k values span",
        f"# >= {KEEP_WIDE:.0%} of the old range stay wide.",
    ]
    data = dump_spec(n.spec)
    body = {key: v for key, v in data.items() if key not in ("fixed", "space", "parent")}
    lines = head + [yaml.safe_dump(body, sort_keys=False, width=10**6).rstrip()]
    why = {d.name: d.why for d in n.decisions}
    lines.append("fixed:" if n.spec.fixed else "fixed: {}")
    for key, value in n.spec.fixed.items():
        lines.append(f"  {_flow(key, value)}" + (f"  # {why[key]}" if key in why else ""))
    lines.append("space:" if n.spec.space else "space: {}")
    for key, p in n.spec.space.items():
        lines.append(f"  {_flow(key, _param_data(p))}  # {why[key]}")
    lines += [f"# {d.name}: {d.why}" for d in n.decisions if d.action == "dropped"]
    lines.append("parent:")
    lines += [f"  {_flow(key, value)}" for key, value in data["parent"].items()]
    return "\n".join(lines) + "\n"


def write_spec(n: Narrowing, path: str | Path) -> Path:
    """Write :func:`spec_yaml` to ``path`` after checking it reads back as the same spec."""
    path = Path(path)
    text = spec_yaml(n)
    if dump_spec(parse_spec(yaml.safe_load(text), str(path))) != dump_spec(n.spec):
        raise AssertionError(f"{path}: the emitted YAML does not round-trip")  # a bug in spec_yaml
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
