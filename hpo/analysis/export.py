"""``hpo best --export``: the best trial as files a person can keep and re-run.

Like the seeds' ``best_model/`` with its metadata, the export directory holds:

* ``config.yaml``: the whole config the training function got (the spec's ``fixed`` plus
  the trial's params), usable as-is as the ``fixed:`` section of a new spec;
* ``metrics.json``: study, trial, objective values by name, every recorded metric, params,
  the last report's metrics, times, and where the checkpoint came from;
* the trial's newest checkpoint (system attr ``hpo:checkpoint``, see :mod:`hpo.storage.artifacts`),
  when it has one, downloaded from the artifact store under its original file name, and only
  if ``torch.load(weights_only=True)`` accepts it: the store is writable by others, so a
  checkpoint that would need a full unpickle is refused (one line, and no file is left).

"Best" in a multi-objective study is the Pareto-front trial best in ``metric`` (default:
the first objective); ``trial`` picks any trial by number instead.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial

from hpo.analysis import display
from hpo.storage.artifacts import CHECKPOINT_ATTR, CheckpointRefused, artifact_dir, open_artifact_store, safe_load
from hpo._optuna import REACHED_ATTR, storage_of, trial_id
from hpo.storage.bulk import read_trials
from hpo.errors import HpoError
from hpo.analysis.ranking import rank
from hpo._optuna import trial_metrics
from hpo.analysis.study_info import metric_names, objective, study_spec


def pick_trial(study: optuna.Study, metric: str | None = None, number: int | None = None) -> FrozenTrial:
    """Trial ``number``, or the best COMPLETE trial (see the module docstring); full attrs and curve."""
    trials = read_trials(study)
    if number is not None:
        found = [t for t in trials if t.number == number]
        if not found:
            raise HpoError(f"--trial {number}: study '{study.study_name}' has trials 0..{len(trials) - 1} "
                           "(fix: pick one from `hpo report`)")
        return storage_of(study).get_trial(trial_id(found[0]))
    _, k = objective(study, metric)
    directions = [d.name.lower() for d in study.directions]
    ranked, fronts = rank(trials, directions)
    front = [t for t in ranked if fronts.get(t.number) == 1]
    if not front:
        raise HpoError(f"study '{study.study_name}' has no COMPLETE trial yet (fix: run `hpo optimize` first)")
    sign = 1.0 if directions[k] == "minimize" else -1.0
    best = min(front, key=lambda t: (sign * t.values[k], t.number))
    return storage_of(study).get_trial(trial_id(best))


def trial_config(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """What the training function received: the spec's fixed values, then the trial's params."""
    spec = study_spec(study)
    return {**(spec.fixed if spec else {}), **trial.params}


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def outcome_text(study: optuna.Study, trial: FrozenTrial) -> str | None:
    """Whether the trial reached the study's target and when, or that its time is censored."""
    attrs = {**trial.user_attrs, **dict(zip(metric_names(study), trial.values or []))}
    if REACHED_ATTR not in attrs:
        return None
    spec = study_spec(study)
    return display.outcome_sentence(attrs, spec.target.describe() if spec is not None and spec.target else None)


def trial_metadata(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """Everything known about one trial, JSON-ready."""
    curve = trial_metrics(trial.system_attrs)
    last_step = max(curve) if curve else None
    return {
        "study": study.study_name,
        "outcome": outcome_text(study, trial),
        "trial": trial.number,
        "state": trial.state.name,
        "values": dict(zip(metric_names(study), map(_json_value, trial.values or []))),
        "directions": [d.name.lower() for d in study.directions],
        "metrics": {k: _json_value(v) for k, v in trial.user_attrs.items()},
        "params": trial.params,
        "config": trial_config(study, trial),
        "last_report": None if last_step is None else {"step": last_step, **curve[last_step]},
        "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
        "checkpoint": trial.system_attrs.get(CHECKPOINT_ATTR),
    }


def download_checkpoint(study: optuna.Study, trial: FrozenTrial, artifacts: str | os.PathLike[str] | None,
                        out_dir: Path) -> Path | None:
    """The trial's newest checkpoint as ``out_dir/<its original file name>``; None without one.

    Args:
        study: the trial's study.
        trial: the trial (a retry points at its parent's checkpoint).
        artifacts: the artifact store directory (None: ``$HPO_ARTIFACTS`` or ``artifacts/``).
        out_dir: where the file goes.

    Raises:
        HpoError: when the artifact cannot be read, or is refused by
            :func:`hpo.storage.artifacts.safe_load` (then nothing is left in ``out_dir``).
    """
    ref = trial.system_attrs.get(CHECKPOINT_ATTR)
    if not ref:
        return None
    artifact_id = ref["artifact_id"]
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=storage_of(study))
    # A retried trial points at its parent's checkpoint, whose metadata is the parent's.
    name = next((m.filename for m in metas if m.artifact_id == artifact_id), None)
    path = out_dir / Path(name or f"checkpoint-step{ref.get('step')}.pt").name
    partial = path.with_name(path.name + ".partial")
    try:
        optuna.artifacts.download_artifact(artifact_store=open_artifact_store(artifacts), file_path=str(partial),
                                           artifact_id=artifact_id)
    except Exception as e:  # noqa: BLE001 - a missing file in any store backend is one line
        partial.unlink(missing_ok=True)
        raise HpoError(f"trial {trial.number}: checkpoint artifact {artifact_id} (step {ref.get('step')}) cannot be "
                       f"read from the artifact store {artifact_dir(artifacts)}: {type(e).__name__} "
                       "(fix: --artifacts DIR where the run stored it, or $HPO_ARTIFACTS)") from None
    try:
        safe_load(partial)
    except CheckpointRefused as e:
        partial.unlink()
        raise HpoError(f"trial {trial.number}: checkpoint artifact {artifact_id} (step {ref.get('step')}) refused, "
                       f"not exported: {e} (fix: a checkpoint may hold only tensors, numbers, strings, lists, "
                       "tuples and dicts; see hpo.storage.artifacts)") from None
    partial.replace(path)
    return path


def export_trial(study: optuna.Study, trial: FrozenTrial, out_dir: str | os.PathLike[str],
                 artifacts: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write config.yaml, metrics.json and the checkpoint (if any, from the artifact store
    at ``artifacts``) of ``trial`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = trial_metadata(study, trial)
    values = ", ".join(f"{k}={v:.6g}" for k, v in meta["values"].items() if v is not None)
    state = f"{trial.state.name}: {values}" if values else trial.state.name
    outcome = f"# {meta['outcome']}\n" if meta["outcome"] else ""
    header = (f"# trial {trial.number} of study {study.study_name} ({state})\n{outcome}"
              "# the full training config; paste it as the fixed: section of a spec to re-run it\n")
    written = {"config": out / "config.yaml", "metrics": out / "metrics.json"}
    written["config"].write_text(header + yaml.safe_dump(meta["config"], sort_keys=False))
    checkpoint, problem = None, None
    if trial.system_attrs.get(CHECKPOINT_ATTR):
        try:
            checkpoint = download_checkpoint(study, trial, artifacts, out)
            written["checkpoint"] = checkpoint
        except HpoError as e:  # the config and metrics are still worth having
            problem = e
    meta["checkpoint_file"] = checkpoint.name if checkpoint else None
    if problem is not None:
        meta["checkpoint_problem"] = str(problem)
    written["metrics"].write_text(json.dumps(meta, indent=2, default=str) + "\n")
    if problem is not None:
        raise problem
    return written
