"""Data: the prepare step and its cache, local text files, FineWeb-style token shards, batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import objectives.data as data
from objectives.data import GPT2_VOCAB_PADDED, BatchSampler, load_splits, read_shard, validation_batches, write_shard
from objectives.prepare import VAL_FRACTION, main, prepare

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty corpus cache and an empty in-process split cache."""
    monkeypatch.setenv("HPO_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_CACHE", {})
    return tmp_path / "cache"


def test_prepare_writes_uint8_token_files_split_90_10_once(cache: Path) -> None:
    from pydoc_data.topics import topics

    out = prepare("pydoc")
    raw = "\n".join(topics.values()).encode("utf-8")
    train, val = (np.fromfile(out / f"{s}.bin", dtype=np.uint8) for s in ("train", "val"))
    assert out == cache / "pydoc" and len(train) + len(val) == len(raw)
    assert len(val) == len(raw) - int(len(raw) * (1 - VAL_FRACTION))
    assert bytes(train[:1000]) == raw[:1000] and bytes(val[-1000:]) == raw[-1000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["vocab_size"] == 256 and meta["dtype"] == "uint8" and meta["train_tokens"] == len(train)
    stamp = (out / "train.bin").stat().st_mtime_ns
    prepare("pydoc")
    assert (out / "train.bin").stat().st_mtime_ns == stamp  # prepared once


def test_kjv_is_real_text_from_an_installed_package(cache: Path) -> None:
    splits = load_splits("kjv")
    assert len(splits.train) > 3_500_000 and splits.vocab_size == 256
    assert bytes(splits.train[:40]).decode() == "In the beginning God created the heaven "
    assert load_splits("kjv") is splits  # loaded once per process


def test_first_use_prepares_with_one_progress_line(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load_splits("pydoc")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "preparing corpus 'pydoc'" in err[0]
    assert (cache / "pydoc" / "meta.json").is_file()


def test_prepare_command_line(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pydoc"]) == 0
    assert "pydoc: 419" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown corpus 'nope'"):
        prepare("nope")


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
    with pytest.raises(ValueError, match="neither a named corpus .* nor an existing file or glob .fix: dataset: kjv"):
        load_splits(str(tmp_path / "nope*.txt"))


def test_token_shards_fineweb_style(tmp_path: Path) -> None:
    """Header (magic 20240520, version 1, count) + uint16 ids; *val* shards validate."""
    rng = np.random.default_rng(0)
    train_a, train_b, val = (rng.integers(0, 50257, size=n) for n in (3000, 2000, 500))
    for name, toks in (("fineweb_train_000001.bin", train_a), ("fineweb_train_000002.bin", train_b),
                       ("fineweb_val_000000.bin", val)):
        write_shard(str(tmp_path / name), toks)
    assert np.array_equal(read_shard(str(tmp_path / "fineweb_val_000000.bin")), val)
    header = np.fromfile(tmp_path / "fineweb_val_000000.bin", dtype="<i4", count=256)
    assert header[:3].tolist() == [20240520, 1, 500]
    splits = load_splits(str(tmp_path / "fineweb_*.bin"))
    assert splits.vocab_size == GPT2_VOCAB_PADDED == 50304
    assert np.array_equal(splits.train, np.concatenate([train_a, train_b])) and np.array_equal(splits.val, val)
    x, y = BatchSampler(splits.train, batch_size=2, seq_len=8, seed=0, device=CPU).next()
    assert x.dtype == torch.int64 and int(x.max()) < 50257
    (tmp_path / "bad.bin").write_bytes(b"\0" * 2048)
    with pytest.raises(ValueError, match="not a token shard"):
        read_shard(str(tmp_path / "bad.bin"))


def test_validation_batches_are_fixed_and_shifted_by_one() -> None:
    val = load_splits("kjv").val
    a = validation_batches(val, n_batches=3, batch_size=4, seq_len=16, device=CPU)
    b = validation_batches(val, n_batches=3, batch_size=4, seq_len=16, device=CPU)
    assert len(a) == 3 and a[0][0].shape == (4, 16) and a[0][0].dtype == torch.int64
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa[:, 1:], ya[:, :-1])
    assert not torch.equal(a[0][0], a[1][0])


def test_batch_sampler_is_seeded_and_resumable() -> None:
    train = load_splits("kjv").train
    make = lambda seed: BatchSampler(train, batch_size=4, seq_len=16, seed=seed, device=CPU)  # noqa: E731
    s1, s2, other = make(7), make(7), make(8)
    assert torch.equal(s1.next()[0], s2.next()[0])
    assert not torch.equal(s1.next()[0], other.next()[0])
    state = s1.state_dict()
    expected = [s1.next()[0] for _ in range(3)]
    resumed = make(0)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.next()[0], e) for e in expected)
