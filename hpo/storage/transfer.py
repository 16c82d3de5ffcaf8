"""Moving studies between storages (laptop SQLite ↔ cluster PostgreSQL), artifacts included.

A copy is never half there under the study's own name. On an RDB destination (SQLite,
PostgreSQL, MySQL) the trials go into ``NAME (copy incomplete)`` first, then the artifacts,
and only then is the study renamed to ``NAME`` in one statement; a copy that was killed
leaves that clearly named study behind, and the same command resumes it (the trials it
already holds are kept when they still match the source, else it starts over). A journal
file cannot rename a study: there the copy is made under ``NAME`` with the study system
attribute ``hpo:copy_incomplete`` set until it is done, and a retry deletes such a study
and copies again.

Checkpoints are copied only if :func:`hpo.storage.artifacts.safe_load` accepts them: a store is
writable by others, and a refused checkpoint is not spread to another one.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial

from hpo import _optuna
from hpo._optuna import CHECKPOINT_ATTR, COPYING_ATTR
from hpo.storage.artifacts import CHECKPOINT_PREFIX, CheckpointRefused, open_artifact_store, safe_load
from hpo.errors import HpoError
from hpo.storage.backend import open_storage, redact, resolve_url

PARTIAL_SUFFIX = " (copy incomplete)"


def artifact_ids(study: optuna.Study) -> list[str]:
    """The artifacts a study still holds: every one its study or trials record, except
    checkpoints superseded by a newer one of the same trial (removed from the store when
    the newer one was saved)."""
    storage = _optuna.storage_of(study)
    ids = {meta.artifact_id for meta in get_all_artifact_meta(study)}
    for t in study.get_trials(deepcopy=False):
        current = (t.system_attrs.get(CHECKPOINT_ATTR) or {}).get("artifact_id")
        for meta in get_all_artifact_meta(t, storage=storage):
            superseded = meta.filename.startswith(CHECKPOINT_PREFIX) and meta.artifact_id != str(current)
            if not superseded:
                ids.add(meta.artifact_id)
    return sorted(ids)


def checkpoint_ids(study: optuna.Study) -> set[str]:
    """The artifacts that trials point at as their checkpoint (what a retry would load)."""
    return {str(t.system_attrs[CHECKPOINT_ATTR]["artifact_id"]) for t in study.get_trials(deepcopy=False)
            if isinstance(t.system_attrs.get(CHECKPOINT_ATTR), dict)}


def copy_artifacts(ids: list[str], src: FileSystemArtifactStore, dst: FileSystemArtifactStore,
                   checkpoints: set[str] = frozenset()) -> tuple[int, int]:
    """Copy artifacts between stores; a checkpoint (``checkpoints``) only if it loads safely.

    Args:
        ids: the artifact ids to copy.
        src: the store they are in.
        dst: the store they go to.
        checkpoints: those of ``ids`` that are checkpoints.

    Returns:
        (copied, refused): how many were copied, how many checkpoints were refused.
    """
    copied = refused = 0
    for artifact_id in ids:
        try:
            with src.open_reader(artifact_id) as reader:
                data = reader.read()
        except optuna.artifacts.exceptions.ArtifactNotFound:
            raise HpoError(f"artifact {artifact_id} is missing from the source store "
                           "(fix: point --artifacts-from at the store the study was run with)") from None
        if artifact_id in checkpoints:
            try:
                safe_load(data)
            except CheckpointRefused:
                refused += 1
                continue
        dst.write(artifact_id, io.BytesIO(data))
        copied += 1
    return copied, refused


def _names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def _same_trial(a: FrozenTrial, b: FrozenTrial) -> bool:
    return (a.number, a.state, a.values, a.params, a.intermediate_values) == \
        (b.number, b.state, b.values, b.params, b.intermediate_values)


def _start(src_study: optuna.Study, dst: BaseStorage, name: str, partial: str, existing: list[str]) -> optuna.Study:
    """The destination study to copy into: a resumable partial copy, or a new one."""
    rdb = isinstance(dst, RDBStorage)
    target = partial if rdb else name
    if target in existing:
        found = optuna.load_study(study_name=target, storage=dst)
        done = found.get_trials(deepcopy=False)
        ours = _optuna.study_system_attrs(found).get(COPYING_ATTR)
        source = src_study.get_trials(deepcopy=False)
        resumable = (rdb and ours and found.directions == src_study.directions and len(done) <= len(source)
                     and all(_same_trial(x, y) for x, y in zip(done, source)))
        if resumable:
            return found
        if not ours:
            raise HpoError(f"study '{target}' already exists in the destination and is not an unfinished copy "
                           "(fix: copy to another storage or delete it there first)")
        dst.delete_study(_optuna.study_id(found))  # an unfinished copy of another state of the source: start over
    study = optuna.create_study(study_name=target, storage=dst, directions=src_study.directions)
    dst.set_study_system_attr(_optuna.study_id(study), COPYING_ATTR, True)
    return study


def copy_study(src: BaseStorage, dst: BaseStorage, name: str, src_store: FileSystemArtifactStore,
               dst_store: FileSystemArtifactStore | None, existing: list[str]) -> tuple[int, int, int]:
    """Copy one study (see the module docstring for how an interrupted copy is resumed).

    Args:
        src: the source storage.
        dst: the destination storage.
        name: the study's name, the same in both.
        src_store: the source artifact store.
        dst_store: the destination artifact store (None: the same store, nothing to copy).
        existing: the study names in ``dst``.

    Returns:
        (trials, artifacts copied, checkpoints refused).
    """
    src_study = optuna.load_study(study_name=name, storage=src)
    partial = name + PARTIAL_SUFFIX
    study = _start(src_study, dst, name, partial, existing)
    sid = _optuna.study_id(study)
    for key, value in _optuna.study_system_attrs(src_study).items():
        if key != COPYING_ATTR:
            dst.set_study_system_attr(sid, key, value)
    for key, value in src_study.user_attrs.items():
        dst.set_study_user_attr(sid, key, value)
    trials = src_study.get_trials(deepcopy=False)
    for trial in trials[len(study.get_trials(deepcopy=False)):]:
        dst.create_new_trial(sid, template_trial=trial)
    copied = refused = 0
    if dst_store is not None:
        copied, refused = copy_artifacts(artifact_ids(src_study), src_store, dst_store, checkpoint_ids(src_study))
    dst.set_study_system_attr(sid, COPYING_ATTR, False)
    if isinstance(dst, RDBStorage):
        _optuna.rename_study(dst, sid, name)
    return len(trials), copied, refused


def copy_studies(
    from_url: str,
    to_url: str,
    names: list[str] | None = None,
    artifacts_from: str | Path | None = None,
    artifacts_to: str | Path | None = None,
) -> list[tuple[str, int, int, int]]:
    """Copy studies (all, or ``names``); returns (study, trials, artifacts, refused checkpoints) per study."""
    src, dst = open_storage(from_url, create=False), open_storage(to_url)
    available = _names(src)
    names = names or [n for n in available if not _is_partial(n, src)]
    missing = [n for n in names if n not in available]
    if missing:
        raise HpoError(f"no study {missing} in {redact(resolve_url(from_url))} (fix: `hpo studies --storage ...`)")
    existing = _names(dst)
    clash = [n for n in names if n in existing and not _unfinished(dst, n)]
    if clash:
        raise HpoError(f"study {clash} already exists in {redact(resolve_url(to_url))} "
                       "(fix: copy to another storage or delete it there first)")
    src_store, dst_store = open_artifact_store(artifacts_from), open_artifact_store(artifacts_to or artifacts_from)
    src_base, dst_base = _optuna.artifact_base(src_store), _optuna.artifact_base(dst_store)
    same_store = src_base is not None and dst_base is not None and Path(src_base).resolve() == Path(dst_base).resolve()
    return [(name, *copy_study(src, dst, name, src_store, None if same_store else dst_store, existing))
            for name in names]


def _attrs(storage: BaseStorage, name: str) -> dict[str, Any]:
    return storage.get_study_system_attrs(storage.get_study_id_from_name(name))


def _unfinished(storage: BaseStorage, name: str) -> bool:
    """A study under its final name that is an unfinished copy (journal destinations)."""
    return bool(_attrs(storage, name).get(COPYING_ATTR))


def _is_partial(name: str, storage: BaseStorage) -> bool:
    """A partial copy made by an interrupted ``hpo copy`` (not copied on by "all studies")."""
    return name.endswith(PARTIAL_SUFFIX) and bool(_attrs(storage, name).get(COPYING_ATTR))
