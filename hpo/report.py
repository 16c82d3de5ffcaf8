"""The end-of-sweep report: ranked trials, counts, compute spent and saved, top-1 per axis.

One bulk read of the study (no curves, see :mod:`hpo.bulk`) feeds everything, so a
10,000-trial study reports in 2-3 s end to end (``benchmarks/report_speed.py``).

Ranking: COMPLETE trials best first (for a multi-objective study by non-domination front,
the Pareto front first, then by the first objective), then every other trial by number
with an empty rank.

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
from collections import Counter
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.study._multi_objective import _fast_non_domination_rank
from optuna.trial import FrozenTrial, TrialState

from hpo.bulk import last_reports, read_trials
from hpo.errors import HpoError
from hpo.study_info import metric_names, objective

KNOWN_ATTRS = ("reached_target", "time_to_target", "tokens", "train_seconds", "wall_seconds")
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
    top1: dict[str, dict[str, Any]] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)


def build_report(
    study: optuna.Study,
    axes: Sequence[str] = (),
    metric: str | None = None,
    limit: int | None = None,
) -> Report:
    """Read ``study`` once and assemble the report (``limit``: keep the N best-ranked rows)."""
    trials = read_trials(study)
    names = metric_names(study)
    directions = [d.name.lower() for d in study.directions]
    ranked, fronts = rank_trials(trials, directions)
    unrecorded = [t for t in trials if any(_unrecorded(t, names, k) for k in LAST_REPORT_ATTRS)]
    last = last_reports(study, unrecorded)
    rows = [trial_row(t, names, fronts.get(t.number), last.get(t.number, {})) for t in ranked]
    columns = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "reason"] + ["reason"]
    rows = [{**{k: r.get(k) for k in columns}, "rank": i + 1 if r["state"] == "COMPLETE" else None}
            for i, r in enumerate(rows)]
    pareto = sorted(n for n, f in fronts.items() if f == 1) if len(names) > 1 else None
    return Report(
        study=study.study_name,
        metrics=names,
        directions=directions,
        counts=dict(sorted(Counter(t.state.name for t in trials).items())),
        compute=compute_accounting(rows),
        pareto_front=pareto,
        top1=top1_per_axis(ranked, names, directions, list(axes), objective(study, metric)[0]),
        trials=rows[:limit] if limit else rows,
    )


def _oriented(values: Sequence[float], directions: Sequence[str]) -> list[float]:
    """Values turned into losses (lower is better)."""
    return [v if d == "minimize" else -v for v, d in zip(values, directions)]


def rank_trials(trials: list[FrozenTrial], directions: list[str]) -> tuple[list[FrozenTrial], dict[int, int]]:
    """COMPLETE trials best first, then the rest by number; front (1 = Pareto) per COMPLETE trial."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    rest = [t for t in trials if t.state != TrialState.COMPLETE or t.values is None]
    if not done:
        return rest, {}
    losses = np.array([_oriented(t.values, directions) for t in done], dtype=float)
    if len(directions) > 1:
        front = _fast_non_domination_rank(np.nan_to_num(losses, nan=np.inf)) + 1
    else:
        front = np.ones(len(done), dtype=int)
    order = sorted(range(len(done)), key=lambda i: (front[i], losses[i][0], done[i].number))
    return [done[i] for i in order] + rest, {done[i].number: int(front[i]) for i in order}


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
    values = t.values or [None] * len(names)
    row.update(zip(names, values))
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
    """Why the trial ended as it did: fail reason, stop reason, or the pruner's evidence."""
    attrs = t.user_attrs
    if attrs.get("fail_reason"):
        return str(attrs["fail_reason"])
    if attrs.get("stop_reason"):
        return str(attrs["stop_reason"])
    prune = attrs.get("prune_reason")
    if isinstance(prune, dict):
        from hpo.reporter import prune_text  # imports the spec models: only on this rare path

        return prune_text(prune, int(prune.get("step", -1)))
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


def compute_accounting(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds and tokens spent by all finished trials and saved by pruning (module docstring)."""
    finished = [r for r in rows if r["state"] in FINISHED]
    seconds_spent, seconds_saved = _spent_saved(finished, ("train_seconds", "wall_seconds"))
    tokens_spent, tokens_saved = _spent_saved(finished, ("tokens",))
    return {
        "seconds_spent": seconds_spent,
        "seconds_saved": seconds_saved,
        "tokens_spent": tokens_spent,
        "tokens_saved": tokens_saved,
        "pruned": sum(r["state"] == "PRUNED" for r in finished),
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


def top1_per_axis(
    ranked: list[FrozenTrial],
    names: list[str],
    directions: list[str],
    axes: list[str],
    metric: str,
) -> dict[str, dict[str, Any]]:
    """Per named parameter: the best trial for each of its values, and the best value (top-1).

    Like the seeds' phase-1 aggregation: which embedding ratio wins, judged by the best
    trial that used it, by objective ``metric``. Only COMPLETE trials count.
    """
    if not axes:
        return {}
    k, sign = names.index(metric), (1.0 if directions[names.index(metric)] == "minimize" else -1.0)
    done = [t for t in ranked if t.state == TrialState.COMPLETE and t.values is not None]
    known = sorted({p for t in ranked for p in t.params})
    out: dict[str, dict[str, Any]] = {}
    for axis in axes:
        if axis not in known:
            raise HpoError(f"--axes {axis}: no trial has this parameter (fix: one of {', '.join(known) or 'none'})")
        used = [t for t in done if axis in t.params]  # best first: ``ranked`` is sorted
        if not used:
            continue
        dist = used[0].distributions[axis]
        continuous = isinstance(dist, FloatDistribution) and dist.step is None
        best: dict[Any, tuple[FrozenTrial, int]] = {}
        for t, label in zip(used, _axis_labels([t.params[axis] for t in used], continuous)):
            champion, n = best.get(label, (t, 0))
            if sign * t.values[k] < sign * champion.values[k]:
                champion = t
            best[label] = (champion, n + 1)
        groups = [{axis: label, metric: t.values[k], "trial": t.number, "n_trials": n}
                  for label, (t, n) in best.items()]
        groups.sort(key=lambda g: (sign * g[metric], g["trial"]))
        winner = next(t for t in used if t.number == groups[0]["trial"])
        out[axis] = {axis: groups[0][axis], "trial": winner.number, "by": metric,
                     **dict(zip(names, winner.values)), "params": dict(winner.params), "by_value": groups}
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


def render_table(report: Report) -> str:
    import pandas as pd  # only the table needs it (0.5-1 s to import)

    objectives = ", ".join(f"{d} {m}" for m, d in zip(report.metrics, report.directions))
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items()) or "no trials"
    c = report.compute
    lines = [
        f"study {report.study}: {objectives}",
        f"trials: {counts}",
        f"compute: {_num(c['seconds_spent'], ',.1f')} s spent, {_num(c['seconds_saved'], ',.1f')} s saved by "
        f"pruning {c['pruned']} trials; tokens: {_num(c['tokens_spent'], ',.0f')} spent, "
        f"{_num(c['tokens_saved'], ',.0f')} saved "
        "(saved = median COMPLETE trial minus the pruned trial's own)",
    ]
    if report.pareto_front is not None:
        lines.append(f"pareto front: trials {', '.join(map(str, report.pareto_front)) or '-'}")
    df = pd.DataFrame(report.trials)
    if not df.empty:
        df = df.dropna(axis=1, how="all")
        lines += ["", df.to_string(index=False, max_colwidth=70, float_format=lambda v: f"{v:.5g}",
                                   na_rep="")]
    for axis, top in report.top1.items():
        lines += ["", f"top-1 {axis} = {_short(top[axis])} (trial {top['trial']}, by best {top['by']}):",
                  pd.DataFrame(top["by_value"]).to_string(index=False, float_format=lambda v: f"{v:.5g}")]
    return "\n".join(lines) + "\n"
