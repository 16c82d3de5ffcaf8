"""Checkpoints in Optuna's artifact store: newest wins, refused ones are said (retries: test_retries)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import optuna
import pytest
import torch

from hpo.storage.artifacts import CHECKPOINT_ATTR, Checkpoints, open_artifact_store
from hpo.errors import HpoError
from hpo.storage.backend import open_storage


def _setup(tmp_path: Path) -> tuple[optuna.Study, optuna.storages.BaseStorage, Path]:
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    return optuna.create_study(study_name="ckpt", storage=storage), storage, tmp_path / "store"


def test_save_load_keeps_only_the_newest(tmp_path: Path) -> None:
    study, storage, store_dir = _setup(tmp_path)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    ckpt = Checkpoints(open_artifact_store(store_dir), storage, trial._trial_id)
    assert ckpt.load() is None
    first = ckpt.save({"step": 3, "w": torch.ones(2), "rng": torch.get_rng_state()})
    second = ckpt.save({"step": 6, "w": torch.full((2,), 2.0)})
    state = ckpt.load()
    assert state["step"] == 6 and torch.equal(state["w"], torch.full((2,), 2.0))
    assert not (store_dir / first).exists() and (store_dir / second).exists()
    assert storage.get_trial(trial._trial_id).system_attrs[CHECKPOINT_ATTR] == {"artifact_id": second, "step": 6}


def test_s3_store_is_lazy_and_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only construction is tested here (no S3 is reachable): nothing is imported or contacted
    before the first checkpoint; without boto3 that first use is one line."""
    monkeypatch.setitem(sys.modules, "boto3", None)  # as without the extra
    store = open_artifact_store("s3://ckpts/team/ngpt/")
    assert (store.bucket, store.key("abc")) == ("ckpts", "team/ngpt/abc")
    with pytest.raises(HpoError, match=r'^--artifacts s3://ckpts/team/ngpt/: needs boto3 \(fix: pip install'):
        store.write("abc", io.BytesIO(b"x"))
