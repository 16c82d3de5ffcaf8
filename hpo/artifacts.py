"""Checkpoints and other files of a study, through Optuna's artifact store.

A trial's newest checkpoint is recorded in its system attribute ``hpo:checkpoint``
(artifact id and step); a retried trial inherits that attribute, so it starts from the
checkpoint of the trial it retries, on this or any machine that sees the same store: a
directory every machine mounts, or an S3 bucket (``s3://BUCKET/PREFIX``, :mod:`hpo.object_store`).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages import BaseStorage

CHECKPOINT_ATTR = "hpo:checkpoint"
CHECKPOINT_PREFIX = "checkpoint-step"
DEFAULT_DIR = "artifacts"


def artifact_location(path: str | Path | None = None) -> str:
    """``--artifacts`` wins, then ``$HPO_ARTIFACTS``, then ``artifacts/`` here."""
    return str(path or os.environ.get("HPO_ARTIFACTS") or DEFAULT_DIR)


def artifact_dir(path: str | Path | None = None) -> Path:
    return Path(artifact_location(path))


def open_artifact_store(path: str | Path | None = None) -> FileSystemArtifactStore:
    where = artifact_location(path)
    if where.startswith("s3://"):
        from hpo.object_store import S3Store

        return S3Store(where)  # type: ignore[return-value]  # the same artifact-store protocol
    base = artifact_dir(path)
    base.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(base)


class Checkpoints:
    """Save and load one trial's training state (``torch.save`` format)."""

    def __init__(self, store: FileSystemArtifactStore, storage: BaseStorage, trial_id: int) -> None:
        self._store = store
        self._storage = storage
        self._trial_id = trial_id

    def save(self, state: dict[str, Any]) -> str:
        import torch

        step = int(state.get("step", -1))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{CHECKPOINT_PREFIX}{step}.pt"
            torch.save(state, path)
            frozen = self._storage.get_trial(self._trial_id)
            artifact_id = upload_artifact(artifact_store=self._store, file_path=str(path),
                                          study_or_trial=frozen, storage=self._storage)
        previous = frozen.system_attrs.get(CHECKPOINT_ATTR)
        self._storage.set_trial_system_attr(self._trial_id, CHECKPOINT_ATTR,
                                            {"artifact_id": artifact_id, "step": step})
        if previous and _owned_by(frozen, previous["artifact_id"]):
            self._store.remove(previous["artifact_id"])  # keep only the newest of this trial
        return artifact_id

    def load(self) -> dict[str, Any] | None:
        pointer = self._storage.get_trial(self._trial_id).system_attrs.get(CHECKPOINT_ATTR)
        if not pointer:
            return None
        import torch  # only when there is a checkpoint: importing it costs seconds per process

        with self._store.open_reader(pointer["artifact_id"]) as reader:
            data = reader.read()
        # Our own file, written by torch.save above: it holds RNG states, not only tensors.
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def _owned_by(trial: optuna.trial.FrozenTrial, artifact_id: str) -> bool:
    """Whether this trial uploaded the artifact (a retry must not delete its parent's)."""
    return f"artifacts:{artifact_id}" in trial.system_attrs
