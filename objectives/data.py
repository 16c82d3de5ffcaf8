"""Byte-level language-model data: text through HF ``datasets``, split, and batched.

Three sources share one code path (a ``datasets.Dataset`` with a ``text`` column):

- ``"pydoc"`` (default, offline): CPython's own ``pydoc_data.topics`` help text, ~465 K characters
  that ship with every Python, so tests and the CPU study need no network;
- ``"wikitext2"``: ``load_dataset("wikitext", "wikitext-2-raw-v1")`` from the hub or the local cache;
- a path or glob of local text files, read with the ``datasets`` "text" builder.

Tokens are UTF-8 bytes (vocabulary 256, no tokenizer download). The last 10 % of the token
stream is the validation split. Tokenised splits are cached in-process, so the many trials of a
study running in one process tokenise once.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

VOCAB_SIZE = 256
VAL_FRACTION = 0.1
VAL_SEED = 1234  # the validation batches are the same for every trial of every study
HUB_HOST = ("huggingface.co", 443)

_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class Splits:
    """Train and validation byte streams (uint8 arrays) of one dataset."""

    train: np.ndarray
    val: np.ndarray


_CACHE: dict[str, Splits] = {}


def load_splits(dataset: str = "pydoc") -> Splits:
    """The tokenised train/val splits of ``dataset``, tokenised once per process."""
    key = dataset if dataset in ("pydoc", "wikitext2") else _cache_key(dataset)
    if key not in _CACHE:
        tokens = encode_bytes(_load_text_dataset(dataset))
        if len(tokens) < 1000:
            raise ValueError(f"dataset {dataset!r} has only {len(tokens)} bytes of text; need ≥ 1000")
        cut = int(len(tokens) * (1 - VAL_FRACTION))
        _CACHE[key] = Splits(train=tokens[:cut], val=tokens[cut:])
    return _CACHE[key]


def encode_bytes(ds: Any) -> np.ndarray:
    """Join a dataset's ``text`` rows with newlines and return the UTF-8 bytes as uint8."""
    text = "\n".join(ds["text"])
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def _load_text_dataset(dataset: str) -> Any:
    """A ``datasets.Dataset`` with a ``text`` column for a dataset name or file path/glob."""
    import datasets

    if dataset == "pydoc":
        from pydoc_data.topics import topics

        return datasets.Dataset.from_dict({"text": list(topics.values())})
    if dataset == "wikitext2":
        return _load_wikitext2()
    files = _local_files(dataset)
    return datasets.load_dataset("text", data_files=files, split="train")


def _local_files(pattern: str) -> list[str]:
    """Files matching a path or glob; a clear error when none exist."""
    files = sorted(glob.glob(os.path.expanduser(pattern)))
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise ValueError(
            f"dataset {pattern!r} is neither 'pydoc', 'wikitext2' nor an existing text file or glob"
        )
    return files


def _cache_key(pattern: str) -> str:
    """Cache key of a local dataset: its files with their sizes and modification times."""
    return "|".join(f"{f}:{os.path.getsize(f)}:{os.path.getmtime(f)}" for f in _local_files(pattern))


def _load_wikitext2() -> Any:
    """WikiText-2 (raw) train+validation+test text, from the hub or, when offline, the local cache.

    When the hub is unreachable we go straight to offline mode (the ``datasets`` default retries
    for ~25 s) and, if the cache lacks the dataset, fail with one line that says what to do.
    """
    import datasets

    offline = _env_offline() or not _hub_reachable()
    try:
        with _forced_offline(offline):
            parts = datasets.load_dataset("wikitext", "wikitext-2-raw-v1")
    except Exception as exc:  # whatever went wrong, the remedy is the same
        where = "offline and not in the local cache" if offline else f"failed to load ({exc})"
        raise RuntimeError(
            f"dataset 'wikitext2' (wikitext-2-raw-v1 from the Hugging Face hub) is {where}; "
            "use dataset: pydoc or a path/glob of local text files instead"
        ) from exc
    return datasets.concatenate_datasets([parts["train"], parts["validation"], parts["test"]])


def _env_offline() -> bool:
    """Whether offline mode is asked for in the environment now (not only at import time)."""
    return any(os.environ.get(v, "").upper() in _TRUE for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP connect to the hub, so an absent network fails in seconds."""
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _forced_offline(offline: bool) -> Iterator[None]:
    """Put ``datasets`` and ``huggingface_hub`` in offline mode for the block when ``offline``.

    Both libraries read their offline flags once at import; setting the module constants is how
    a flag decided later takes effect.
    """
    import datasets.config
    import huggingface_hub.constants

    if not offline:
        yield
        return
    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _windows(tokens: torch.Tensor, starts: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets (int64, ``len(starts)`` × ``seq_len``) at the given offsets."""
    idx = starts[:, None] + torch.arange(seq_len + 1, device=tokens.device)
    chunk = tokens[idx].long()
    return chunk[:, :-1], chunk[:, 1:]


def validation_batches(
    val: np.ndarray, *, n_batches: int, batch_size: int, seq_len: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed validation batches: windows drawn once with a constant seed, identical every eval."""
    if len(val) <= seq_len + 1:
        raise ValueError(f"validation split ({len(val)} bytes) is shorter than seq_len+1 = {seq_len + 1}")
    rng = np.random.default_rng(VAL_SEED)
    tokens = torch.from_numpy(val).to(device)
    starts = rng.integers(0, len(val) - seq_len - 1, size=(n_batches, batch_size))
    return [_windows(tokens, torch.from_numpy(s).to(device), seq_len) for s in starts]


class BatchSampler:
    """Seeded random training windows; its state (the generator's) makes a resume exact."""

    def __init__(self, train: np.ndarray, *, batch_size: int, seq_len: int, seed: int, device: torch.device) -> None:
        if len(train) <= seq_len + 1:
            raise ValueError(f"train split ({len(train)} bytes) is shorter than seq_len+1 = {seq_len + 1}")
        self.tokens = torch.from_numpy(train).to(device)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of inputs and targets."""
        starts = self.rng.integers(0, len(self.tokens) - self.seq_len - 1, size=self.batch_size)
        return _windows(self.tokens, torch.from_numpy(starts).to(self.tokens.device), self.seq_len)

    def state_dict(self) -> dict[str, Any]:
        """The position in the batch stream."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the batch stream from a saved position."""
        self.rng.bit_generator.state = state["rng"]
