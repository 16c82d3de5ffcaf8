"""Data: the offline pydoc default, local text files, the WikiText-2 offline error, batching."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from objectives.data import VAL_FRACTION, BatchSampler, load_splits, validation_batches

CPU = torch.device("cpu")


def test_pydoc_is_the_offline_default_split_90_10() -> None:
    from pydoc_data.topics import topics

    splits = load_splits("pydoc")
    raw = "\n".join(topics.values()).encode("utf-8")
    assert splits.train.dtype == np.uint8 and len(raw) > 400_000
    assert len(splits.val) == len(raw) - int(len(raw) * (1 - VAL_FRACTION))
    assert bytes(splits.train[:1000]) == raw[:1000] and bytes(splits.val[-1000:]) == raw[-1000:]
    assert load_splits("pydoc") is splits  # tokenised once per process


def test_local_text_files_by_path_and_glob(tmp_path: Path) -> None:
    lines = [f"line {i}: the quick brown fox jumps over the lazy dog" for i in range(200)]
    (tmp_path / "a.txt").write_text("\n".join(lines[:100]) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(lines[100:]) + "\n")
    one = load_splits(str(tmp_path / "a.txt"))
    text = bytes(np.concatenate([one.train, one.val])).decode()
    assert text == "\n".join(lines[:100])
    both = load_splits(str(tmp_path / "*.txt"))
    assert len(both.train) + len(both.val) > len(one.train) + len(one.val)


def test_missing_local_path_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither 'pydoc', 'wikitext2' nor an existing"):
        load_splits(str(tmp_path / "nope*.txt"))


def test_wikitext2_offline_fails_fast_with_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache, whatever this machine has
    monkeypatch.setattr("datasets.config.HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as info:
        load_splits("wikitext2")
    message = str(info.value)
    assert "wikitext2" in message and "dataset: pydoc" in message and "\n" not in message
    assert time.perf_counter() - start < 20


def test_validation_batches_are_fixed_and_shifted_by_one() -> None:
    val = load_splits("pydoc").val
    a = validation_batches(val, n_batches=3, batch_size=4, seq_len=16, device=CPU)
    b = validation_batches(val, n_batches=3, batch_size=4, seq_len=16, device=CPU)
    assert len(a) == 3 and a[0][0].shape == (4, 16) and a[0][0].dtype == torch.int64
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa[:, 1:], ya[:, :-1])
    assert not torch.equal(a[0][0], a[1][0])


def test_batch_sampler_is_seeded_and_resumable() -> None:
    train = load_splits("pydoc").train
    make = lambda seed: BatchSampler(train, batch_size=4, seq_len=16, seed=seed, device=CPU)
    s1, s2, other = make(7), make(7), make(8)
    assert torch.equal(s1.next()[0], s2.next()[0])
    assert not torch.equal(s1.next()[0], other.next()[0])
    state = s1.state_dict()
    expected = [s1.next()[0] for _ in range(3)]
    resumed = make(0)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.next()[0], e) for e in expected)
