"""Checkpoints and other files of a study, through Optuna's artifact store.

A trial's newest checkpoint is recorded in its system attribute ``hpo:checkpoint``
(artifact id and step); a retried trial inherits that attribute, so it starts from the
checkpoint of the trial it retries, on this or any machine that sees the same store: a
directory every machine mounts, or an S3 bucket (``s3://BUCKET/PREFIX``, :mod:`hpo.storage.object_store`).


What a checkpoint may contain. The store is a directory every machine shares, and
optuna-dashboard can upload files into it from a browser, so a checkpoint is data from a
place others can write: it is read with ``torch.load(..., weights_only=True)``, which
unpickles only tensors, numbers, strings, bytes, ``None``/``True``/``False``, lists,
tuples, dicts (also ordered ones), sets and a few torch types (dtypes, devices, sizes), and
never calls a function named in the file. Keep RNG states as such plain types, e.g.
``torch.get_rng_state()`` (a tensor), ``random.getstate()`` (a tuple), numpy's legacy state
as ``(name, keys.tolist(), pos, has_gauss, gauss)`` and a ``Generator``'s
``bit_generator.state`` (a dict of ints); not numpy arrays or objects of your own classes.

A checkpoint that does not load that way (a planted pickle, a numpy array, a truncated
file, a missing artifact) is *refused*: :meth:`Checkpoints.load` returns None, the trial
starts fresh, and one line saying why goes on the trial as the user attribute
``checkpoint_refused`` (and to the ``on_refused`` callback).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

import optuna
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact
from optuna.storages import BaseStorage

from hpo._optuna import CHECKPOINT_ATTR, REFUSED_ATTR

CHECKPOINT_PREFIX = "checkpoint-step"
DEFAULT_DIR = "artifacts"
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")
_UNPICKLER = "WeightsUnpickler error:"


class CheckpointRefused(Exception):
    """A checkpoint that ``torch.load(weights_only=True)`` does not accept; the message says why."""


def artifact_location(path: str | Path | None = None) -> str:
    """``--artifacts`` wins, then ``$HPO_ARTIFACTS``, then ``artifacts/`` here."""
    return str(path or os.environ.get("HPO_ARTIFACTS") or DEFAULT_DIR)


def artifact_dir(path: str | Path | None = None) -> Path:
    return Path(artifact_location(path))


def open_artifact_store(path: str | Path | None = None) -> FileSystemArtifactStore:
    where = artifact_location(path)
    if where.startswith("s3://"):
        from hpo.storage.object_store import S3Store

        return S3Store(where)  # type: ignore[return-value]  # the same artifact-store protocol
    base = artifact_dir(path)
    base.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(base)


def safe_load(source: bytes | BinaryIO | str | os.PathLike[str]) -> Any:
    """A checkpoint's state through ``torch.load(weights_only=True)`` on the CPU.

    Args:
        source: the checkpoint's bytes, an open binary file or a path.

    Raises:
        CheckpointRefused: with a one-line reason for anything it does not accept.
    """
    import torch  # only when there is a checkpoint: importing it costs seconds per process

    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": we refuse or accept anyway
            return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever the file holds, the answer is one line
        raise CheckpointRefused(_reason(e)) from None


def _reason(error: Exception) -> str:
    """torch's multi-paragraph weights_only message reduced to its first informative sentence."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    tails = [line.split(_UNPICKLER, 1)[1].strip() for line in lines if _UNPICKLER in line]
    useful = [t for t in tails if t] or [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)
                                         and not line.startswith(("(1)", "(2)")) and _UNPICKLER not in line]
    detail = (useful or lines or [""])[0].split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def refusal(artifact_id: str, step: Any, why: str) -> str:
    """The one line recorded for a refused checkpoint."""
    return (f"checkpoint {artifact_id} (step {step}) refused, the trial starts fresh: {why} "
            "(a checkpoint may hold only tensors, numbers, strings, lists, tuples and dicts: "
            "it is read with torch.load(weights_only=True))")


class Checkpoints:
    """Save and load one trial's training state (``torch.save`` format, read back safely).

    Args:
        store: the artifact store the checkpoints live in.
        storage: the study's storage (the trial's attributes point at its checkpoint).
        trial_id: the storage's id of the running trial.
        on_refused: also called with the one-line reason when :meth:`load` refuses one.
    """

    def __init__(self, store: FileSystemArtifactStore, storage: BaseStorage, trial_id: int,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.store = store
        self._storage = storage
        self._trial_id = trial_id
        self._on_refused = on_refused
        self.refused: str | None = None  # why the last load() refused a checkpoint, if it did

    def save(self, state: dict[str, Any]) -> str:
        """Upload ``state`` as the trial's newest checkpoint (the one it replaces is removed,
        unless another trial uploaded it); returns its artifact id.

        Args:
            state: the training state; its ``step`` names the file.
        """
        import torch

        step = int(state.get("step", -1))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{CHECKPOINT_PREFIX}{step}.pt"
            torch.save(state, path)
            frozen = self._storage.get_trial(self._trial_id)
            artifact_id = upload_artifact(artifact_store=self.store, file_path=str(path),
                                          study_or_trial=frozen, storage=self._storage)
        previous = frozen.system_attrs.get(CHECKPOINT_ATTR)
        self._storage.set_trial_system_attr(self._trial_id, CHECKPOINT_ATTR,
                                            {"artifact_id": artifact_id, "step": step})
        if previous and _owned_by(frozen, self._storage, previous["artifact_id"]):
            self.store.remove(previous["artifact_id"])  # keep only the newest of this trial
        return artifact_id

    def load(self) -> dict[str, Any] | None:
        """The newest checkpoint's state, or None: when there is none, or when it is refused
        (then :attr:`refused` and the trial's ``checkpoint_refused`` attribute say why)."""
        self.refused = None
        pointer = self._storage.get_trial(self._trial_id).system_attrs.get(CHECKPOINT_ATTR)
        if not pointer:
            return None
        artifact_id, step = pointer.get("artifact_id"), pointer.get("step")
        try:
            with self.store.open_reader(artifact_id) as reader:
                data = reader.read()
        except optuna.artifacts.exceptions.ArtifactNotFound:
            return self._refuse(refusal(artifact_id, step, "it is missing from the artifact store"))
        try:
            state = safe_load(data)
        except CheckpointRefused as e:
            return self._refuse(refusal(artifact_id, step, str(e)))
        if not isinstance(state, dict):
            return self._refuse(refusal(artifact_id, step, f"it holds a {type(state).__name__}, not a dict"))
        return state

    def _refuse(self, reason: str) -> None:
        self.refused = reason
        self._storage.set_trial_user_attr(self._trial_id, REFUSED_ATTR, reason)
        if self._on_refused is not None:
            self._on_refused(reason)
        return None


def _owned_by(trial: optuna.trial.FrozenTrial, storage: BaseStorage, artifact_id: str) -> bool:
    """Whether this trial uploaded the artifact (a retry must not delete its parent's)."""
    return any(meta.artifact_id == artifact_id for meta in get_all_artifact_meta(trial, storage=storage))
