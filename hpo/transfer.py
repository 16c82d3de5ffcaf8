"""Moving studies between storages (laptop SQLite ↔ cluster PostgreSQL), artifacts included."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore

from hpo.artifacts import CHECKPOINT_ATTR, CHECKPOINT_PREFIX, open_artifact_store
from hpo.errors import HpoError
from hpo.storage import open_storage, redact, resolve_url

ARTIFACT_PREFIX = "artifacts:"


def artifact_ids(study: optuna.Study) -> list[str]:
    """The artifacts a study still holds: every one its study or trials record, except
    checkpoints superseded by a newer one of the same trial (removed from the store when
    the newer one was saved)."""
    keys = set(study._storage.get_study_system_attrs(study._study_id))
    for t in study.get_trials(deepcopy=False):
        current = (t.system_attrs.get(CHECKPOINT_ATTR) or {}).get("artifact_id")
        for key, meta in t.system_attrs.items():
            if not key.startswith(ARTIFACT_PREFIX):
                continue
            filename = json.loads(meta).get("filename", "") if isinstance(meta, str) else ""
            superseded = filename.startswith(CHECKPOINT_PREFIX) and key != ARTIFACT_PREFIX + str(current)
            if not superseded:
                keys.add(key)
    return sorted(k[len(ARTIFACT_PREFIX):] for k in keys if k.startswith(ARTIFACT_PREFIX))


def copy_artifacts(ids: list[str], src: FileSystemArtifactStore, dst: FileSystemArtifactStore) -> int:
    for artifact_id in ids:
        try:
            with src.open_reader(artifact_id) as reader:
                dst.write(artifact_id, reader)
        except optuna.artifacts.exceptions.ArtifactNotFound:
            raise HpoError(f"artifact {artifact_id} is missing from the source store "
                           "(fix: point --artifacts-from at the store the study was run with)") from None
    return len(ids)


def copy_studies(
    from_url: str,
    to_url: str,
    names: list[str] | None = None,
    artifacts_from: str | Path | None = None,
    artifacts_to: str | Path | None = None,
) -> list[tuple[str, int, int]]:
    """Copy studies (all, or ``names``); returns (study, trials, artifacts) per study."""
    src, dst = open_storage(from_url), open_storage(to_url)
    available = [s.study_name for s in optuna.get_all_study_summaries(src, include_best_trial=False)]
    names = names or available
    missing = [n for n in names if n not in available]
    if missing:
        raise HpoError(f"no study {missing} in {redact(resolve_url(from_url))} (fix: `hpo studies --storage ...`)")
    existing = {s.study_name for s in optuna.get_all_study_summaries(dst, include_best_trial=False)}
    clash = [n for n in names if n in existing]
    if clash:
        raise HpoError(f"study {clash} already exists in {redact(resolve_url(to_url))} "
                       "(fix: copy to another storage or delete it there first)")
    src_store, dst_store = open_artifact_store(artifacts_from), open_artifact_store(artifacts_to or artifacts_from)
    same_store = Path(src_store._base_path).resolve() == Path(dst_store._base_path).resolve()
    done = []
    for name in names:
        optuna.copy_study(from_study_name=name, from_storage=src, to_storage=dst)
        study = optuna.load_study(study_name=name, storage=src)
        ids = artifact_ids(study)
        n = 0 if same_store else copy_artifacts(ids, src_store, dst_store)
        done.append((name, len(study.trials), n))
    return done
