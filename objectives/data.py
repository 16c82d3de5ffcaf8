"""Language-model data: token splits (prepared once, memory-mapped) and batches.

``dataset`` (the objective's config key) is one of:

- a named corpus of ``objectives.prepare`` (``kjv``, the CPU presets' default; ``pydoc``):
  UTF-8 bytes, prepared once into the local cache (the first use prepares it);
- a path or glob of local **text** files: read and tokenised to bytes in-process;
- a path or glob of **token shards** ending in ``.bin``, FineWeb-style as modded-nanogpt reads
  them: a header of 256 little-endian int32 (``[0]`` the magic 20240520, ``[1]`` the version 1,
  ``[2]`` the number of tokens), then that many ``uint16`` GPT-2 token ids. Shards whose file
  name contains ``val`` form the validation split (``fineweb_val_000000.bin``), the others the
  training split; with no ``val`` shard the last 10 % of the tokens are held out. The vocabulary
  is GPT-2's 50257 ids, padded to 50304 (a multiple of 128) as in modded-nanogpt.

Nothing is downloaded at training time. Splits are memory-mapped (or held once per process for
local text), so the many trials of a study share them.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from objectives.prepare import CORPORA, VAL_FRACTION, is_prepared, prepare, prepared_dir

VAL_SEED = 1234  # the validation batches are the same for every trial of every study
SHARD_MAGIC, SHARD_VERSION, SHARD_HEADER_INTS = 20240520, 1, 256
GPT2_VOCAB_PADDED = 50304  # GPT-2's 50257 ids, padded to a multiple of 128


@dataclass(frozen=True)
class Splits:
    """Train and validation token streams of one dataset, and its vocabulary size."""

    train: np.ndarray
    val: np.ndarray
    vocab_size: int = 256


_CACHE: dict[str, Splits] = {}


def load_splits(dataset: str = "kjv") -> Splits:
    """The train/val token splits of ``dataset`` (see the module docstring), loaded once per process.

    Args:
        dataset: a named corpus, a path/glob of text files, or a path/glob of ``.bin`` shards.
    """
    key = dataset if dataset in CORPORA else _cache_key(dataset)
    if key not in _CACHE:
        if dataset in CORPORA:
            splits = _load_prepared(dataset)
        elif all(f.endswith(".bin") for f in _local_files(dataset)):
            splits = _load_shards(_local_files(dataset))
        else:
            splits = _load_text_files(_local_files(dataset))
        if len(splits.train) < 1000 or len(splits.val) < 100:
            raise ValueError(f"dataset {dataset!r} has only {len(splits.train)} train / {len(splits.val)} val tokens "
                             "(fix: give at least ~10 KB of text)")
        _CACHE[key] = splits
    return _CACHE[key]


def _load_prepared(name: str) -> Splits:
    """A named corpus from the cache, prepared first (one progress line on stderr) when missing."""
    if not is_prepared(name):
        prepare(name, log=lambda line: print(line, file=sys.stderr, flush=True))
    d = prepared_dir(name)
    return Splits(train=np.memmap(d / "train.bin", dtype=np.uint8, mode="r"),
                  val=np.memmap(d / "val.bin", dtype=np.uint8, mode="r"), vocab_size=256)


def _load_text_files(files: list[str]) -> Splits:
    """Local text files, joined with newlines, as UTF-8 bytes; the last 10 % is validation."""
    text = b"\n".join(open(f, "rb").read().rstrip(b"\n") for f in files)
    tokens = np.frombuffer(text, dtype=np.uint8)
    cut = int(len(tokens) * (1 - VAL_FRACTION))
    return Splits(train=tokens[:cut], val=tokens[cut:], vocab_size=256)


def read_shard(path: str) -> np.ndarray:
    """The ``uint16`` tokens of one FineWeb-style shard, memory-mapped after its header.

    Args:
        path: a ``.bin`` file as described in the module docstring.
    """
    header = np.fromfile(path, dtype="<i4", count=SHARD_HEADER_INTS)
    if len(header) < SHARD_HEADER_INTS or header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION:
        raise ValueError(f"{path} is not a token shard (header magic {SHARD_MAGIC}, version {SHARD_VERSION}; "
                         "fix: give modded-nanogpt's fineweb_*.bin files or a text file)")
    n = int(header[2])
    tokens = np.memmap(path, dtype="<u2", mode="r", offset=SHARD_HEADER_INTS * 4, shape=(n,))
    return tokens


def write_shard(path: str, tokens: np.ndarray) -> None:
    """Write ``tokens`` (ids < 65536) as a FineWeb-style shard (used by tests and for own data).

    Args:
        path: the ``.bin`` file to write.
        tokens: 1-D token ids.
    """
    header = np.zeros(SHARD_HEADER_INTS, dtype="<i4")
    header[:3] = SHARD_MAGIC, SHARD_VERSION, len(tokens)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype="<u2").tobytes())


def _load_shards(files: list[str]) -> Splits:
    """Training shards and ``val`` shards (by file name), concatenated once each."""
    val_files = [f for f in files if "val" in os.path.basename(f)]
    train_files = [f for f in files if f not in val_files]
    if not train_files:
        raise ValueError(f"only validation shards in {files} (fix: add the fineweb_train_*.bin shards to the glob)")
    cat = lambda fs: np.concatenate([read_shard(f) for f in fs]) if len(fs) > 1 else read_shard(fs[0])  # noqa: E731
    train = cat(train_files)
    if val_files:
        val = cat(val_files)
    else:
        cut = int(len(train) * (1 - VAL_FRACTION))
        train, val = train[:cut], train[cut:]
    return Splits(train=train, val=val, vocab_size=GPT2_VOCAB_PADDED)


def _local_files(pattern: str) -> list[str]:
    """Files matching a path or glob; a clear error when none exist."""
    files = sorted(f for f in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(f))
    if not files:
        raise ValueError(f"dataset {pattern!r} is neither a named corpus {sorted(CORPORA)} nor an existing file or glob "
                         "(fix: dataset: kjv, or a path/glob of local text files or .bin token shards)")
    return files


def _cache_key(pattern: str) -> str:
    """Cache key of a local dataset: its files with their sizes and modification times."""
    return "|".join(f"{f}:{os.path.getsize(f)}:{os.path.getmtime(f)}" for f in _local_files(pattern))


def _windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets (int64, ``len(starts)`` × ``seq_len``) at the given offsets."""
    chunk = torch.from_numpy(tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64))
    chunk = chunk.to(device, non_blocking=True)
    return chunk[:, :-1], chunk[:, 1:]


def validation_batches(
    val: np.ndarray, *, n_batches: int, batch_size: int, seq_len: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed validation batches: windows drawn once with a constant seed, identical every eval.

    Args:
        val: the validation tokens.
        n_batches: how many batches.
        batch_size: windows per batch.
        seq_len: tokens per window.
        device: where the batches live.
    """
    if len(val) <= seq_len + 1:
        raise ValueError(f"validation split ({len(val)} tokens) is shorter than seq_len+1 = {seq_len + 1} (fix: a smaller seq_len)")
    rng = np.random.default_rng(VAL_SEED)
    starts = rng.integers(0, len(val) - seq_len - 1, size=(n_batches, batch_size))
    return [_windows(val, s, seq_len, device) for s in starts]


class BatchSampler:
    """Seeded random training windows; its state (the generator's) makes a resume exact.

    Args:
        train: the training tokens.
        batch_size: windows per batch.
        seq_len: tokens per window.
        seed: the generator's seed.
        device: where batches go.
    """

    def __init__(self, train: np.ndarray, *, batch_size: int, seq_len: int, seed: int, device: torch.device) -> None:
        if len(train) <= seq_len + 1:
            raise ValueError(f"train split ({len(train)} tokens) is shorter than seq_len+1 = {seq_len + 1} (fix: a smaller seq_len)")
        self.tokens = train
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.device = device
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of inputs and targets."""
        starts = self.rng.integers(0, len(self.tokens) - self.seq_len - 1, size=self.batch_size)
        return _windows(self.tokens, starts, self.seq_len, self.device)

    def state_dict(self) -> dict[str, Any]:
        """The position in the batch stream."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the batch stream from a saved position."""
        self.rng.bit_generator.state = state["rng"]
