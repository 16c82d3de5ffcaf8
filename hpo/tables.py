"""Plain-text tables: the study list, one study's trials, the end-of-run summary."""

from __future__ import annotations

from collections import Counter

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import TrialState

SHOWN_ATTRS = ("time_to_target", "reached_target", "train_seconds", "wall_seconds", "tokens",
               "fail_reason", "stop_reason")


def state_counts(study: optuna.Study) -> str:
    counts = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trials"


def studies_table(storage: BaseStorage) -> str:
    rows = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=True):
        best = "-"
        if s.best_trial is not None:
            best = ", ".join(f"{v:.5g}" for v in s.best_trial.values)
        rows.append({"study": s.study_name, "trials": s.n_trials,
                     "directions": ",".join(d.name.lower() for d in s.directions), "best": best})
    if not rows:
        return "no studies"
    return pd.DataFrame(rows).to_string(index=False)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    df = study.trials_dataframe(attrs=("number", "state", "values", "params", "user_attrs", "duration"))
    if df.empty:
        return df
    keep = [c for c in df.columns if not c.startswith("user_attrs_") or c[len("user_attrs_"):] in SHOWN_ATTRS]
    df = df[keep].rename(columns=lambda c: c.removeprefix("params_").removeprefix("user_attrs_"))
    if "duration" in df:  # empty (all running) columns are not timedeltas
        df["duration"] = pd.to_timedelta(df["duration"]).dt.total_seconds().round(1)
    return df


def trials_table(study: optuna.Study) -> str:
    df = trials_frame(study)
    return "no trials" if df.empty else df.to_string(index=False, max_colwidth=60)


def summary(study: optuna.Study) -> str:
    lines = [f"study {study.study_name}: {state_counts(study)}"]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return lines[0] + "\nno COMPLETE trial yet"
    names = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
    best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    title = "pareto front" if len(best) > 1 or len(study.directions) > 1 else "best trial"
    lines.append(f"{title}:")
    for t in best:
        vals = ", ".join(f"{n}={v:.5g}" for n, v in zip(names, t.values))
        lines.append(f"  trial {t.number}: {vals}")
        lines.append(f"    config: {t.params}")
    return "\n".join(lines)
