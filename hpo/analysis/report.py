"""The end-of-sweep report: ranked trials, counts, compute spent and saved, top-1 per axis.

One bulk read of the study (no curves, see :mod:`hpo.storage.bulk`) feeds everything, so a
10,000-trial study reports in 2-3 s end to end (``benchmarks/report_speed.py``).

Ranking (:mod:`hpo.analysis.ranking`, the same everywhere): COMPLETE trials best first, every trial
that reached the target before any that missed it, then by value (several objectives:
non-dominated fronts, the Pareto front first); then every other trial by number with an
empty rank: PRUNED, FAIL and RUNNING ones, copies of a deterministic objective's configs
and seed re-runs. A row shows objective values only for a COMPLETE trial (Optuna stores a
pruned trial's last curve value as its value: that is not its objective). A missed target's
time to target is a censored ranking value: its row says ``censored`` and where it stopped.

Configs over seeds: when finalists were re-run with more seeds (``hpo rerun``), each config's
runs are grouped: median, min..max and how many reached the target, ranked by median, and
every config whose seed range overlaps the best config's is marked as inside the noise.

Compute "saved" by pruning is an estimate, defined per pruned trial as
``max(0, median(train_seconds of COMPLETE trials) - its own train_seconds)``: what it would
have cost had it run like a typical completed trial. Tokens are counted the same way.
A trial's ``train_seconds`` and ``tokens`` are its objective value of that name, else its
user attribute, else the metric in its last report (failed trials, and pruned ones whose
metric is an objective, record only that); seconds fall back on ``wall_seconds``, then on
the trial's duration.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Sequence

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from hpo.analysis import display
from hpo._optuna import (CENSORED_AT_ATTR, CLOSEST_ATTR, COPY_ATTR, OUTCOME_ATTR, REACHED_ATTR, RERUN_ATTR, SEED_ATTR,
                       TTT_ATTR)
from hpo.storage.bulk import last_reports, read_trials
from hpo.errors import HpoError
from hpo.analysis.ranking import median as seed_median, missed, over_seeds, rank, unranked
from hpo.specs.models import same_value
from hpo.analysis.study_info import metric_names, objective, study_spec, target_text

KNOWN_ATTRS = (REACHED_ATTR, TTT_ATTR, CENSORED_AT_ATTR, CLOSEST_ATTR, "tokens", "train_seconds", "wall_seconds")
REASON_ATTRS = ("fail_reason", "stop_reason", "prune_reason")
LAST_REPORT_ATTRS = ("train_seconds", "tokens")
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
MAX_AXIS_VALUES = 8
AXIS_BINS = 5


@dataclass
class Report:
    """Everything ``hpo report`` prints; ``trials`` are flat rows, best first."""

    study: str
    metrics: list[str]
    directions: list[str]
    counts: dict[str, int]
    compute: dict[str, Any]
    pareto_front: list[int] | None
    target: str | None = None  # e.g. "val_loss < 1.45"
    reached: dict[str, int] | None = None  # {"reached": k, "missed": m} of the ranked trials
    top1: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: list[dict[str, Any]] = field(default_factory=list)  # configs run over several seeds
    trials: list[dict[str, Any]] = field(default_factory=list)


def build_report(
    study: optuna.Study,
    axes: Sequence[str] = (),
    metric: str | None = None,
    limit: int | None = None,
) -> Report:
    """Read ``study`` once and assemble the report.

    Args:
        study: the study.
        axes: parameters to give the top-1 value of (seed 004's top-1 per axis).
        metric: the objective that ranks configs over seeds and axis values (default: the first).
        limit: keep the N best-ranked rows.
    """
    trials = read_trials(study)
    names = metric_names(study)
    directions = [d.name.lower() for d in study.directions]
    ranked, fronts = rank(trials, directions)
    ordered = ranked + unranked(trials)
    unrecorded = [t for t in trials if any(_unrecorded(t, names, k) for k in LAST_REPORT_ATTRS)]
    last = last_reports(study, unrecorded)
    rows = [trial_row(t, names, fronts.get(t.number), last.get(t.number, {})) for t in ordered]
    columns = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "reason"] + ["reason"]
    rows = [{**{k: r.get(k) for k in columns}, "rank": i + 1 if i < len(ranked) else None}
            for i, r in enumerate(rows)]
    pareto = sorted(n for n, f in fronts.items() if f == 1) if len(names) > 1 else None
    spec = study_spec(study)
    name, k = objective(study, metric)
    return Report(
        study=study.study_name,
        metrics=names,
        directions=directions,
        counts=display.state_counts(t.state.name for t in trials),
        compute=compute_accounting(rows, spec.clock if spec is not None else "train_seconds"),
        pareto_front=pareto,
        target=target_text(spec),
        reached=display.target_counts(t.user_attrs for t in ranked),
        top1=top1_per_axis(trials, names, directions, list(axes), name,
                           spec.enqueue[0] if spec is not None and spec.enqueue else None),
        configs=configs_over_seeds(trials, k, directions[k]),
        trials=rows[:limit] if limit else rows,
    )


def _unrecorded(t: FrozenTrial, names: list[str], key: str) -> bool:
    return key not in t.user_attrs and not (key in names and t.values is not None)


def trial_row(t: FrozenTrial, names: list[str], front: int | None, last: dict[str, Any]) -> dict[str, Any]:
    """One flat row: rank, number, front (multi-objective only), state, objective values,
    params, attributes, reason. A parameter named like a value or a known attribute becomes
    ``param_<name>``; ``last`` (the last report's metrics) fills train_seconds and tokens
    the trial did not record otherwise. The rank is filled in by :func:`build_report`.
    """
    row: dict[str, Any] = {"rank": None, "number": t.number}
    if "experiment" in t.user_attrs:  # a named enqueue entry's name
        row["experiment"] = t.user_attrs["experiment"]
    if len(names) > 1:
        row["front"] = front
    row["state"] = t.state.name
    # Only a COMPLETE trial has objective values (a PRUNED one's stored value is its curve's last).
    values = t.values if t.state == TrialState.COMPLETE and t.values else [None] * len(names)
    row.update(zip(names, values))
    if REACHED_ATTR in t.user_attrs and t.state == TrialState.COMPLETE:
        row["censored"] = missed(t)
    for name, value in t.params.items():
        row[f"param_{name}" if name in row or name in KNOWN_ATTRS else name] = value
    attrs = t.user_attrs
    for key in KNOWN_ATTRS:
        if row.get(key) is None:
            row[key] = attrs.get(key, last.get(key) if key in LAST_REPORT_ATTRS else None)
    for key in sorted(attrs):
        value = attrs[key]
        if key not in row and key not in REASON_ATTRS and _scalar(value):
            row[key] = value
    if row.get("wall_seconds") is None:
        row["wall_seconds"] = _duration(t)
    row["reason"] = reason_text(t)
    return row


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _duration(t: FrozenTrial) -> float | None:
    if t.datetime_start is None or t.datetime_complete is None:
        return None
    return (t.datetime_complete - t.datetime_start).total_seconds()


def reason_text(t: FrozenTrial) -> str | None:
    """Why the trial ended as it did: fail reason, stop reason, or the pruner's evidence; for a
    seed re-run, which trial it re-runs; for a missed target, that its time is censored."""
    attrs = t.user_attrs
    if RERUN_ATTR in attrs:
        why = f"seed re-run of trial {attrs[RERUN_ATTR]} (seed {attrs.get(SEED_ATTR)})"
        return why + (f"; {attrs['stop_reason']}" if attrs.get("stop_reason") else "")
    if missed(t) and t.state == TrialState.COMPLETE and COPY_ATTR not in attrs:
        stop = f"; {attrs['stop_reason']}" if attrs.get("stop_reason") else ""
        return (f"missed the target: time to target over {display.seconds(attrs.get(CENSORED_AT_ATTR))} s, "
                f"its value is a censored ranking value{stop}")
    if attrs.get("fail_reason"):
        return str(attrs["fail_reason"])
    if attrs.get("stop_reason"):
        return str(attrs["stop_reason"])
    prune = attrs.get("prune_reason")
    if isinstance(prune, dict):
        return display.prune_text(prune, int(prune.get("step", -1)))
    return None


def _amount(row: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _spent_saved(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> tuple[float, float | None]:
    spent = sum(a for r in rows if (a := _amount(r, keys)) is not None)
    reference = [a for r in rows if r["state"] == "COMPLETE" and (a := _amount(r, keys)) is not None]
    if not reference:
        return spent, None
    typical = median(reference)
    saved = sum(max(0.0, typical - a) for r in rows if r["state"] == "PRUNED" and (a := _amount(r, keys)) is not None)
    return spent, saved


def compute_accounting(rows: list[dict[str, Any]], clock: str = "train_seconds") -> dict[str, Any]:
    """Seconds (on the study's ``clock``) and tokens spent by all finished trials and saved by
    pruning (module docstring); copies of a deterministic objective's configs cost nothing."""
    finished = [r for r in rows if r["state"] in FINISHED and r.get(COPY_ATTR) is None]
    seconds_spent, seconds_saved = _spent_saved(finished, (clock, "train_seconds", "wall_seconds"))
    tokens_spent, tokens_saved = _spent_saved(finished, ("tokens",))
    return {
        "seconds_spent": seconds_spent,
        "seconds_saved": seconds_saved,
        "tokens_spent": tokens_spent,
        "tokens_saved": tokens_saved,
        "pruned": sum(r["state"] == "PRUNED" for r in finished),
        "clock": clock,
        "saved_means": "per pruned trial: median of COMPLETE trials minus its own, if positive",
    }


def _axis_labels(values: list[Any], continuous: bool) -> list[Any]:
    """Group label per value of an axis: the value itself, or for a continuous or crowded
    numeric axis one of ``AXIS_BINS`` equal-count bins, labelled "min..max" of its values."""
    if not _numbers(values):
        return values
    distinct = sorted(set(values))
    if len(distinct) <= (AXIS_BINS if continuous else MAX_AXIS_VALUES):
        return values
    order = sorted(values)
    first = {}
    for i, v in enumerate(order):
        first.setdefault(v, i)  # equal values share a bin
    bin_of = {v: min(first[v] * AXIS_BINS // len(order), AXIS_BINS - 1) for v in distinct}
    bins: dict[int, list[float]] = {}
    for v in distinct:
        bins.setdefault(bin_of[v], []).append(v)
    label = {b: f"{vs[0]:.4g}" if len(vs) == 1 else f"{vs[0]:.4g}..{vs[-1]:.4g}" for b, vs in bins.items()}
    return [label[bin_of[v]] for v in values]


def _numbers(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _summary(runs: list[FrozenTrial], k: int, sign: float) -> dict[str, Any]:
    """Median, min..max and target counts of one config's COMPLETE runs (seeds)."""
    values = [t.values[k] for t in runs]
    middle = seed_median(values, sign)
    holder = next(t for t in runs if t.values[k] == middle)
    out = {"median": middle, "min": min(values), "max": max(values), "n": len(runs),
           "trials": sorted(t.number for t in runs)}
    if any(REACHED_ATTR in t.user_attrs for t in runs):
        out["reached"] = sum(not missed(t) for t in runs)
        out["median_censored"] = missed(holder)
        if missed(holder):
            out[CENSORED_AT_ATTR] = holder.user_attrs.get(CENSORED_AT_ATTR)
            out[CLOSEST_ATTR] = holder.user_attrs.get(CLOSEST_ATTR)
    return out


def configs_over_seeds(trials: list[FrozenTrial], k: int, direction: str) -> list[dict[str, Any]]:
    """Configs that ran with several seeds (a trial and its ``hpo rerun`` runs), best median
    first; ``inside_noise``: the config's seed range overlaps the best config's."""
    sign = 1.0 if direction == "minimize" else -1.0
    rows = [{"config_of": root, **_summary(runs, k, sign), "diverged": diverged, "params": dict(runs[0].params)}
            for root, (runs, diverged) in over_seeds(trials).items()]
    # a config that diverged on a seed, or whose median missed the target, ranks after those that did not
    rows.sort(key=lambda r: (bool(r["diverged"]) or bool(r.get("median_censored")), sign * r["median"],
                             r["config_of"]))
    if rows:
        lo, hi = rows[0]["min"], rows[0]["max"]
        for i, r in enumerate(rows):
            r["rank"] = i + 1
            r["inside_noise"] = i > 0 and r["min"] <= hi and r["max"] >= lo
    return rows


def _one_factor(t: FrozenTrial, baseline: dict[str, Any], axis: str) -> bool:
    """Whether ``t`` is the baseline with at most ``axis`` moved (parameters the move switched
    off may be absent)."""
    return all(k == axis or (k in baseline and same_value(v, baseline[k])) for k, v in t.params.items())


def top1_per_axis(
    trials: list[FrozenTrial],
    names: list[str],
    directions: list[str],
    axes: list[str],
    metric: str,
    baseline: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per named parameter: each of its values' median ``metric`` over its runs, and the best value.

    Like seed 004's top-1 per axis, comparing like with like: with a baseline (the spec's
    ``enqueue[0]``), only the baseline and its one-factor neighbours along the axis count, so a
    value is not credited with a lucky config that differs in other parameters too; without
    one (or when that slice holds fewer than two values), every trial with the value counts.
    A value's runs are its COMPLETE trials and their seed re-runs (copies of a config count
    once); a value whose trials were all killed is listed as killed. Continuous or crowded
    numeric axes are binned.

    Args:
        trials: every trial of the study.
        names: the objective names.
        directions: the objectives' directions.
        axes: the parameters.
        metric: the objective to compare by.
        baseline: the baseline config, if the study has one.
    """
    if not axes:
        return {}
    k, sign = names.index(metric), (1.0 if directions[names.index(metric)] == "minimize" else -1.0)
    known = sorted({p for t in trials for p in t.params})
    runs = [t for t in trials if COPY_ATTR not in t.user_attrs
            and (t.state == TrialState.PRUNED or (t.state == TrialState.COMPLETE and t.values is not None))]
    out: dict[str, dict[str, Any]] = {}
    for axis in axes:
        if axis not in known:
            raise HpoError(f"--axes {axis}: no trial has this parameter (fix: one of {', '.join(known) or 'none'})")
        used = [t for t in runs if axis in t.params]
        basis = "all trials with the value"
        if baseline is not None:
            near = [t for t in used if _one_factor(t, baseline, axis)]
            if len({repr(t.params[axis]) for t in near}) >= 2:
                used, basis = near, "the baseline and its one-factor neighbours along this axis"
        if not used:
            continue
        dist = used[0].distributions[axis]
        continuous = isinstance(dist, FloatDistribution) and dist.step is None
        by_label: dict[Any, list[FrozenTrial]] = {}
        for t, label in zip(used, _axis_labels([t.params[axis] for t in used], continuous)):
            by_label.setdefault(label, []).append(t)
        groups = []
        for label, ts in by_label.items():
            done = [t for t in ts if t.state == TrialState.COMPLETE]
            killed = len(ts) - len(done)
            if done:
                summary = _summary(done, k, sign)
                groups.append({axis: label, metric: summary.pop("median"), **summary, "killed": killed})
            else:
                groups.append({axis: label, metric: None, "n": 0, "trials": sorted(t.number for t in ts),
                               "killed": killed})
        groups.sort(key=lambda g: (g[metric] is None, bool(g.get("median_censored")),
                                   0.0 if g[metric] is None else sign * g[metric], repr(g[axis])))
        if groups[0][metric] is None:
            continue
        out[axis] = {axis: groups[0][axis], "by": metric, "basis": basis, "by_value": groups}
    return out


def _json_safe(value: Any) -> Any:
    """Non-finite floats → None, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def render(report: Report, fmt: str) -> str:
    """The report as text: ``table`` for people, ``csv``/``jsonl`` rows, ``json`` everything.

    CSV and JSONL hold one row per trial; JSON and the table add counts, compute, the
    Pareto front and top-1 per axis. Non-finite numbers become null in JSON.

    Args:
        report: the report (:func:`build_report`).
        fmt: ``table``, ``csv``, ``json`` or ``jsonl``.
    """
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(report.trials[0]) if report.trials else ["number"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(report.trials)
        return out.getvalue()
    if fmt == "jsonl":
        return "".join(json.dumps(_json_safe(row)) + "\n" for row in report.trials)
    if fmt == "json":
        return json.dumps(_json_safe(vars(report))) + "\n"  # indent would force the slow pure-Python encoder
    if fmt == "table":
        return render_table(report)
    raise HpoError(f"--format {fmt}: unknown (fix: one of table, csv, json, jsonl)")


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _short(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def display_rows(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Rows as a table shows them: digits that mean something, a missed target as censored."""
    keep = [k for k in dict.fromkeys(k for r in rows for k in r)
            if k not in ("censored", CENSORED_AT_ATTR, CLOSEST_ATTR, OUTCOME_ATTR) and any(r.get(k) is not None for r in rows)]
    return [{k: display.value_cell(k, r[k], r, censored=True) if k == TTT_ATTR and r.get("censored")
             else "" if r.get(k) is None else display.cell(k, r[k]) for k in keep} for r in rows]


def configs_lines(report: Report) -> list[str]:
    if not report.configs:
        return []
    metric = report.metrics[0]
    lines = ["", f"configs over seeds (median {metric}; min..max over the seeds; "
                 "~ = its seed range overlaps #1's: not separable from it):"]
    for c in report.configs:
        reached = f", reached {c['reached']}/{c['n']}" if "reached" in c else ""
        lost = f", {c['diverged']} more diverged" if c.get("diverged") else ""
        noise = " ~" if c["inside_noise"] else ""
        lines.append(f"  #{c['rank']}{noise} trial {c['config_of']}: {_median_text(metric, c)} "
                     f"({_range_text(metric, c)}{c['n']} seeds{reached}{lost}) {c['params']}")
    return lines


def _median_text(metric: str, group: dict[str, Any]) -> str:
    """A group's median; a censored one as censored (its value is a ranking value, not a time)."""
    if group.get("median_censored"):
        return display.censored_text(group)
    return display.cell(metric, group.get("median", group.get(metric)))


def _range_text(metric: str, group: dict[str, Any]) -> str:
    """``min..max, `` of a group's runs, unless a censored value would be one of its ends."""
    if group["n"] < 2 or ("reached" in group and group["reached"] < group["n"]):
        return ""
    return f"{display.cell(metric, group['min'])}..{display.cell(metric, group['max'])}, "


def _axis_table(axis: str, top: dict[str, Any]) -> list[str]:
    metric = top["by"]
    lines = ["", f"top-1 {axis} = {_short(top[axis])} (median {metric} over its runs; {top['basis']}):"]
    for g in top["by_value"]:
        if g[metric] is None:
            lines.append(f"  {axis}={_short(g[axis])}: killed ({g['killed']} of {len(g['trials'])} trials)")
            continue
        reached = f", reached {g['reached']}/{g['n']}" if "reached" in g else ""
        killed = f", {g['killed']} killed" if g["killed"] else ""
        lines.append(f"  {axis}={_short(g[axis])}: {_median_text(metric, g)} ({_range_text(metric, g)}{g['n']} runs"
                     f"{reached}{killed}; trials {', '.join(map(str, g['trials']))})")
    return lines


def render_table(report: Report) -> str:
    import pandas as pd  # only the table needs it (0.5-1 s to import)

    objectives = ", ".join(f"{d} {m}" for m, d in zip(report.metrics, report.directions))
    counts = display.counts_text(report.counts)
    c = report.compute
    lines = [
        f"study {report.study}: {objectives}",
        f"trials: {counts}",
        f"compute: {_num(c['seconds_spent'], ',.1f')} s of {c.get('clock', 'train_seconds')} spent, "
        f"{_num(c['seconds_saved'], ',.1f')} s saved by "
        f"pruning {c['pruned']} trials; tokens: {_num(c['tokens_spent'], ',.0f')} spent, "
        f"{_num(c['tokens_saved'], ',.0f')} saved "
        "(saved = median COMPLETE trial minus the pruned trial's own)",
    ]
    if report.reached is not None:
        lines.append(display.target_line(report.reached["reached"], report.reached["missed"], report.target))
    if report.pareto_front is not None:
        lines.append(f"pareto front: trials {', '.join(map(str, report.pareto_front)) or '-'}")
    df = pd.DataFrame(display_rows(report.trials))
    if not df.empty:
        lines += ["", df.to_string(index=False, max_colwidth=70)]
    lines += configs_lines(report)
    for axis, top in report.top1.items():
        lines += _axis_table(axis, top)
    return "\n".join(lines) + "\n"

