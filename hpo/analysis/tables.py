"""Plain-text tables: the study list, one study's trials, the end-of-run summary.

All of them rank with :mod:`hpo.analysis.ranking` and print with :mod:`hpo.analysis.display`: a missed
target reads as censored, never as a time, and every table says how many trials reached it.
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from hpo.analysis import display
from hpo._optuna import CLOCK_ATTR, COPY_ATTR
from hpo.analysis.ranking import missed, rank
from hpo.analysis.study_info import metric_names, study_spec, target_text

SHOWN = ("rank", "number", "state")  # then objectives and params; then these, when present
SHOWN_ATTRS = ("reached_target", "train_seconds", "cpu_seconds", "tokens", "reason")
REASON_WIDTH = 60


def state_counts(study: optuna.Study) -> str:
    """e.g. ``3 COMPLETE, 1 PRUNED``: how many of the study's trials are in each state."""
    return display.counts_text(display.state_counts(t.state.name for t in study.get_trials(deepcopy=False)))


def _target(study: optuna.Study) -> str | None:
    try:
        return target_text(study_spec(study))
    except Exception:  # noqa: BLE001 - a table never fails on an unreadable stored spec
        return None


def reached_text(trials: list[FrozenTrial], target: str | None) -> str | None:
    """How many ranked trials reached the target, or None in a study without one."""
    ranked, _ = rank(trials, ["minimize"])  # directions do not matter for the count
    counts = display.target_counts(t.user_attrs for t in ranked)
    return None if counts is None else display.target_line(counts["reached"], counts["missed"], target)


def value_text(t: FrozenTrial, names: list[str], target: str | None = None, clock: bool = True) -> str:
    """``name=value`` for each objective, seconds to 3 digits, a missed target as censored;
    ``clock``: name the clock a time to target was read on."""
    parts = []
    for name, value in zip(names, t.values or []):
        parts.append(f"{name}={display.value_cell(name, value, t.user_attrs, missed(t), target)}")
    name = t.user_attrs.get(CLOCK_ATTR) if clock else None
    return ", ".join(parts) + (f" (clock: {name})" if name and "time_to_target" in names else "")


def studies_table(storage: BaseStorage) -> str:
    """One line per study: trials, directions, the best trial's values, how many reached the target.

    Args:
        storage: the storage holding the studies.
    """
    import pandas as pd

    rows = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        names = metric_names(study)
        ranked, _ = rank(trials, study.directions)
        best = value_text(ranked[0], names) if ranked else "-"
        counts = display.target_counts(t.user_attrs for t in ranked)
        rows.append({"study": s.study_name, "trials": len(trials),
                     "directions": ",".join(d.name.lower() for d in study.directions),
                     "reached target": f"{counts['reached']}/{sum(counts.values())}" if counts else "",
                     "best": best})
    if not rows:
        return "no studies"
    return pd.DataFrame(rows).to_string(index=False)


def trials_table(study: optuna.Study) -> str:
    """The study's trials, ranked as ``hpo report`` ranks them, in a narrow table.

    Args:
        study: the study.
    """
    import pandas as pd

    from hpo.analysis.report import display_rows, build_report

    report = build_report(study)
    if not report.trials:
        return "no trials"
    names = set(report.metrics)
    params = {p for t in study.get_trials(deepcopy=False) for p in t.params}
    keep = [k for k in report.trials[0] if k in SHOWN or k in names or k in params or k in SHOWN_ATTRS
            or k.startswith("param_")]
    rows = [{k: r.get(k) for k in keep} for r in report.trials]
    for row, full in zip(rows, report.trials):
        row.update({k: full.get(k) for k in ("censored", "censored_at", "closest") if k in full})
        if isinstance(row.get("reason"), str) and len(row["reason"]) > REASON_WIDTH:
            row["reason"] = row["reason"][: REASON_WIDTH - 1] + "…"
    return pd.DataFrame(display_rows(rows)).to_string(index=False)


def summary(study: optuna.Study) -> str:
    """The end-of-run summary: state counts, target counts, the best trial (or the Pareto front).

    Args:
        study: the study.
    """
    trials = study.get_trials(deepcopy=False)
    lines = [f"study {study.study_name}: {state_counts(study)}"]
    copies = sum(COPY_ATTR in t.user_attrs for t in trials)
    if copies:
        lines.append(f"{copies} trial(s) repeated a config already run: not trained again, marked copy_of")
    ranked, fronts = rank(trials, study.directions)
    if not ranked:
        return "\n".join([*lines, "no COMPLETE trial yet"])
    target = _target(study)
    reached = reached_text(trials, target)
    if reached:
        lines.append(reached)
    names = metric_names(study)
    best = [t for t in ranked if fronts[t.number] == 1] if len(study.directions) > 1 else ranked[:1]
    title = "pareto front" if len(study.directions) > 1 else "best trial"
    if all(missed(t) for t in best):
        title += " (none reached the target: closest)"
    lines.append(f"{title}:")
    for t in best:
        lines.append(f"  trial {t.number}: {value_text(t, names, target)}")
        lines.append(f"    config: {t.params}")
    return "\n".join(lines)


def progress_values(t: FrozenTrial, names: list[str]) -> str:
    """A finished trial's values for the progress line (empty unless COMPLETE)."""
    if t.state != TrialState.COMPLETE or t.values is None:
        return ""
    return " " + value_text(t, names, clock=False)


def best_text(study: optuna.Study) -> str:
    """``best: time_to_target=41.3 (trial 3)`` (a miss reads as censored), or the front's size."""
    ranked, fronts = rank(study.get_trials(deepcopy=False), study.directions)
    if not ranked:
        return "best: -"
    if len(study.directions) > 1:
        return f"pareto front: {sum(f == 1 for f in fronts.values())} trials"
    names = list(study.metric_names or ["value"])
    return f"best: {value_text(ranked[0], names, clock=False)} (trial {ranked[0].number})"
