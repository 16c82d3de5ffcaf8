"""Two-stage optimisation: a broad Stage 1, narrowing, then a designed-and-sampled Stage 2.

:func:`run_two_stage` runs Stage 1 to its budget (:mod:`hpo.run.loop`), narrows it
(:mod:`hpo.policy.narrowing`) into ``search_spaces/<study>_stage2.yaml`` unless that file exists
(then it is reused as is, so a re-run or a hand edit never re-narrows), prepares the Stage-2
study and runs it to its budget. Every step is idempotent: re-running the same command
continues wherever it stopped.

Preparing the Stage-2 study (:func:`prepare`):

* user attr ``hpo:parent`` = ``{study, trials}``: the parent study and its top trials;
* Stage-1 COMPLETE trials whose config lies inside the Stage-2 spec (same fixed values,
  params inside the new ranges) are copied in as COMPLETE trials with their curves, once
  each (system attr ``hpo:from`` names the source), so sampler and pruners start informed;
* the design's points (user attr ``hpo:design``, fixed at the first preparation) are
  enqueued unless a trial with the same params exists, so they run first; the spec's
  sampler continues after them.

The Stage-2 ``n_trials`` (a total, as everywhere in ``hpo``) = copied + design +
``FOLLOW_UP`` (a quarter) of the design's size, at least 1, for the sampler; without a
design, copied + the parent's ``n_trials``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpo import _optuna
from hpo._optuna import DESIGN_ATTR, FROM_ATTR, METRICS_PREFIX, PARENT_ATTR
from hpo.storage.bulk import read_trials
from hpo.policy.design import Design, build_design
from hpo.policy.narrowing import WEAK, Narrowing, narrow_study, stage2_name, write_spec
from hpo.analysis.pareto import complete_trials
from hpo.run.loop import counted_trials, run
from hpo.run.session import load_spec, load_study, open_session, start_configs, unheld
from hpo.specs.space import distributions, searched
from hpo.specs.files import find_spec
from hpo.specs.models import CategoricalParam, StudySpec, same_value
from hpo.storage.backend import open_storage
from hpo.analysis.study_info import study_spec

FOLLOW_UP = 0.25


@dataclass(frozen=True)
class Plan:
    """What Stage 2 will be; nothing is written until :func:`apply`."""

    parent: optuna.Study
    spec: StudySpec
    path: Path
    narrowing: Narrowing | None  # None: the Stage-2 file exists and is reused as is
    design: Design
    copied: list[int]  # Stage-1 trial numbers inside the Stage-2 space


def inside(params: dict[str, Any], parent_fixed: dict[str, Any], spec: StudySpec) -> bool:
    """Whether the config ``parent_fixed + params`` is one the Stage-2 ``spec`` can produce
    (with exactly the parameters that ``spec`` would search for it, see ``when``)."""
    config = {**parent_fixed, **params}
    dists = distributions(spec, searched(spec, config))
    if set(config) != set(spec.fixed) | set(dists):
        return False
    if not all(same_value(config[k], v) for k, v in spec.fixed.items()):
        return False
    try:  # FrozenTrial's own check that each value lies in its distribution
        create_trial(value=0.0, params={name: config[name] for name in dists}, distributions=dists)
    except (ValueError, TypeError):
        return False
    return True


def follow_up(n_design: int) -> int:
    return max(1, math.ceil(FOLLOW_UP * n_design))


def find_study(storage: BaseStorage, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def make_plan(parent: optuna.Study, *, top: int = 5, into: str | None = None, design: str = "fractional",
              runs: int = 36, levels: int | None = None, reuse: bool = True, root: Path | None = None) -> Plan:
    """The Stage-2 plan for ``parent``: its file reused if ``reuse`` and it exists, else narrowed."""
    name = into or stage2_name(parent.study_name)
    path = find_spec(name, None, root)
    narrowing = None
    if reuse and path.is_file():
        spec = load_spec(path)
    else:
        narrowing = narrow_study(parent, top, name)
        spec = narrowing.spec
    existing = find_study(_optuna.storage_of(parent), spec.study)
    stored = None if existing is None else existing.user_attrs.get(DESIGN_ATTR)
    if stored is not None:
        chosen = Design({}, stored, f"as stored in study {spec.study} at its first preparation", 0)
    elif design == "fractional":
        chosen = build_design(spec.space, runs, levels)
    else:
        chosen = Design({}, [], "none", 0)
    parent_spec = study_spec(parent)
    fixed = parent_spec.fixed if parent_spec else {}
    copied = [t.number for t in complete_trials(parent) if inside(t.params, fixed, spec)]
    if narrowing is not None:
        extra = follow_up(len(chosen.points)) if chosen.points else narrowing.parent.n_trials
        spec = spec.model_copy(update={"n_trials": len(copied) + len(chosen.points) + extra})
        narrowing = replace(narrowing, spec=spec)
    return Plan(parent, spec, path, narrowing, chosen, copied)


def _copy_trial(parent: optuna.Study, number: int, spec: StudySpec) -> FrozenTrial:
    storage = _optuna.storage_of(parent)
    src = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(_optuna.study_id(parent), number))
    params = {k: v for k, v in src.params.items() if k in spec.space}
    curves = {k: v for k, v in src.system_attrs.items() if k.startswith(METRICS_PREFIX)}
    return create_trial(state=TrialState.COMPLETE, values=src.values,
                        params=params, distributions=distributions(spec, params),
                        user_attrs=src.user_attrs, intermediate_values=src.intermediate_values,
                        system_attrs={**curves, FROM_ATTR: {"study": parent.study_name, "trial": number}})


def prepare(plan: Plan, study: optuna.Study) -> dict[str, int]:
    """Record the parent, copy the Stage-1 trials, enqueue the design; each only once."""
    if PARENT_ATTR not in study.user_attrs:
        study.set_user_attr(PARENT_ATTR, plan.spec.parent)
    if DESIGN_ATTR not in study.user_attrs:
        study.set_user_attr(DESIGN_ATTR, plan.design.points)
    have = read_trials(study)
    done = {t.system_attrs[FROM_ATTR]["trial"] for t in have if FROM_ATTR in t.system_attrs}
    todo = [n for n in plan.copied if n not in done]
    for number in todo:
        study.add_trial(_copy_trial(plan.parent, number, plan.spec))
    points = unheld(study.user_attrs[DESIGN_ATTR], read_trials(study))
    for point in points:
        study.enqueue_trial(point)
    return {"copied": len(todo), "enqueued": len(points)}


def apply(plan: Plan, storage: BaseStorage | None = None, out: TextIO = sys.stderr) -> optuna.Study:
    """Write the Stage-2 file (when newly narrowed) and prepare its study."""
    if plan.narrowing is not None:
        write_spec(plan.narrowing, plan.path)
        print(f"wrote {plan.path}", file=out)
    study = load_study(plan.spec, storage or _optuna.storage_of(plan.parent))
    did = prepare(plan, study)
    print(f"stage 2 study {plan.spec.study}: copied {did['copied']} Stage-1 trials, "
          f"enqueued {did['enqueued']} design points", file=out)
    return study


def _describe(p: Any) -> str:
    if isinstance(p, CategoricalParam):
        return "[" + ", ".join(map(repr, p.choices)) + "]"
    extra = [w for w, on in (("log", p.log), (f"step {p.step}", p.step not in (None, 1))) if on]
    return f"{p.low:g}..{p.high:g}" + (f" ({', '.join(extra)})" if extra else "")


def plan_text(plan: Plan) -> str:
    """The plan for people: what is locked/narrowed/kept, what is copied, the design points."""
    spec = plan.spec
    state = "new" if plan.narrowing is not None else "exists, reused as is"
    lines = [f"stage 2: study {spec.study}, spec {plan.path} ({state})"]
    parent = spec.parent or {}
    lines.append(f"  from the top {len(parent.get('trials', []))} COMPLETE trials of {parent.get('study', '?')}: "
                 f"{parent.get('trials', [])}")
    if plan.narrowing is not None:
        old = plan.narrowing.parent.space
        for d in plan.narrowing.decisions:
            what = f"= {d.value!r}" if d.action == "locked" else (
                f"{_describe(old[d.name])} -> {_describe(d.param)}" if d.action == "narrowed" else _describe(d.param))
            lines.append(f"  {d.action:<9}{d.name} {what}   # {d.why}")
        if plan.narrowing.missed:
            lines.append(f"warning: top trials {plan.narrowing.missed} missed the target (censored): fewer trials "
                         "reached it than --top asks for, and those rank first")
        weak = [d.name for d in plan.narrowing.decisions if d.action == "locked" and WEAK in d.why]
        if weak:
            lines.append(f"warning: {', '.join(weak)} locked {WEAK}: one trial is weak evidence (fix: --top more "
                         f"trials, or edit {plan.path} before stage 2 runs)")
    else:
        lines += [f"  space    {k} {_describe(p)}" for k, p in spec.space.items()]
    lines.append(f"  fixed: {spec.fixed}")
    lines.append(f"Stage-1 trials copied in as COMPLETE: {len(plan.copied)} {plan.copied}")
    d = plan.design
    queue = design_to_queue(plan)
    held = f"; {len(d.points) - len(queue)} held already by trials (copied or run): {len(queue)} to queue" \
        if len(queue) != len(d.points) else ""
    lines.append(f"design: {len(d.points)} points, {d.method}"
                 + (f" of the {d.full_size}-point full factorial" if d.full_size else "") + held)
    for name, values in d.levels.items():
        lines.append(f"  levels {name}: {values}")
    if d.points:
        lines.append(pd.DataFrame(d.points).to_string(index=True))
    sampled = spec.n_trials - len(plan.copied) - len(queue)
    lines.append(f"then the {spec.sampler.name} sampler: n_trials {spec.n_trials} in all "
                 f"({len(plan.copied)} copied + {len(queue)} design + {max(sampled, 0)} sampled)")
    if sampled < 1 and d.points:
        lines.append(f"warning: n_trials {spec.n_trials} leaves no room to start the design "
                     f"(fix: raise n_trials in {plan.path})")
    return "\n".join(lines)


def design_to_queue(plan: Plan) -> list[dict[str, Any]]:
    """The design points that :func:`prepare` will queue: those no trial of the Stage-2 study,
    and no Stage-1 trial it copies in, holds (:func:`hpo.run.session.unheld`)."""
    existing = find_study(_optuna.storage_of(plan.parent), plan.spec.study)
    trials = read_trials(existing) if existing is not None else []
    copied = {t.system_attrs[FROM_ATTR]["trial"] for t in trials if FROM_ATTR in t.system_attrs}
    coming = [_copy_trial(plan.parent, n, plan.spec) for n in plan.copied if n not in copied]
    return unheld(plan.design.points, [*trials, *coming])


def stage_done(study: optuna.Study, total: int) -> bool:
    """The study holds ``total`` trials and none is still queued or running."""
    busy = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    return counted_trials(study) >= total and not busy


def run_two_stage(spec: StudySpec, storage_url: str | None = None, *, n_trials: int | None = None,
                  timeout: float | None = None, top: int = 5, into: str | None = None, design: str = "fractional",
                  runs: int = 36, levels: int | None = None, out: TextIO = sys.stderr,
                  **session_kwargs: Any) -> optuna.Study | None:
    """Stage 1 to its budget, narrow (or reuse), Stage 2 to its budget; None if stopped early."""
    deadline = None if timeout is None else time.monotonic() + timeout

    def left() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    first = open_session(spec, storage_url, **session_kwargs)
    total = n_trials or spec.n_trials
    print(f"stage 1: study {spec.study}", file=out)
    run(first, n_trials=total, timeout=left(), out=out)
    if not stage_done(first.study, total) or left() == 0.0:
        print(f"stopped before stage 2 (stage 1 holds {counted_trials(first.study)}/{total} trials); "
              "re-run the same command to continue", file=out)
        return None
    plan = make_plan(first.study, top=top, into=into, design=design, runs=runs, levels=levels)
    second = open_session(plan.spec, storage_url, **session_kwargs)
    apply(plan, second.storage, out)
    print(f"stage 2: study {plan.spec.study}", file=out)
    return run(second, timeout=left(), out=out)


def start_text(spec: StudySpec, study: optuna.Study | None) -> list[str]:
    """The spec's start configs (enqueue, one-factor neighbours), then those no trial holds yet
    (:func:`hpo.run.session.unheld`: what ``optimize`` will queue)."""
    start = start_configs(spec)
    if not start:
        return []
    todo = unheld(start, [] if study is None else study.get_trials(deepcopy=False))
    how = "enqueue + one_factor_levels" if spec.one_factor_levels else "enqueue"
    return [f"first the {len(start)} start configs ({how}), {len(todo)} not queued or run yet:"] + [f"  {c}" for c in todo]


def dry_run_text(spec: StudySpec, storage_url: str | None, n_trials: int | None, two_stage: bool = True,
                 **plan_kwargs: Any) -> str:
    """The plan without training or writing: Stage 1's state and, for two stages, Stage 2 as
    it would be narrowed from the trials Stage 1 holds now."""
    storage, total = open_storage(storage_url), n_trials or spec.n_trials
    study = find_study(storage, spec.study)
    held = 0 if study is None else counted_trials(study)
    lines = [f"{'stage 1: ' if two_stage else ''}study {spec.study}: {held}/{total} trials held, "
             f"{max(total - held, 0)} to run ({spec.sampler.name} sampler over {list(spec.space)})"]
    lines += start_text(spec, study)
    if not two_stage:
        return "\n".join(lines)
    if study is None or len(complete_trials(study)) < 2:
        return "\n".join(lines + ["stage 2: narrowed after stage 1 (needs >= 2 COMPLETE trials to preview)"])
    if not stage_done(study, total):
        lines.append("stage 2 preview from the trials stage 1 holds now (it changes as stage 1 goes on):")
    return "\n".join(lines + [plan_text(make_plan(study, **plan_kwargs))])
