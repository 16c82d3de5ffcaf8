"""Small real training for the seed examples: numpy only, on data that ships with Python and scikit-learn.

* :func:`python_text`: part of Python's own standard library source, as a character-level corpus;
* :func:`digits`: scikit-learn's 1797 8x8 digit images, read from the file the package ships
  (without importing scikit-learn, which takes seconds);
* :class:`MLP`: tanh layers, softmax cross-entropy or squared error, gradients by hand;
* :class:`CharLM`: an embedding of the previous ``context`` characters in front of an MLP;
* :class:`SGD`: SGD with momentum and weight decay, in place.

Nothing here knows about hpo: the training scripts next to it run bare as well.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

STDLIB_FILES = ("textwrap.py", "argparse.py", "string.py", "shlex.py")


def python_text(limit: int = 150_000) -> tuple[np.ndarray, int]:
    """(ids of the characters, vocabulary size) of a few standard library modules' source."""
    root = Path(os.__file__).parent
    data = np.frombuffer(b"".join((root / f).read_bytes() for f in STDLIB_FILES)[:limit], dtype=np.uint8)
    vocab, ids = np.unique(data, return_inverse=True)
    return ids.astype(np.int64), len(vocab)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """(images scaled to [0, 1] as 64-vectors, labels)."""
    package = importlib.util.find_spec("sklearn").submodule_search_locations[0]
    with gzip.open(Path(package) / "datasets" / "data" / "digits.csv.gz") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1] / 16.0, data[:, -1].astype(np.int64)


class SGD:
    def __init__(self, params: list[np.ndarray], lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.momentum, self.weight_decay = params, lr, momentum, weight_decay
        self.velocity = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        for p, g, v in zip(self.params, grads, self.velocity):
            v *= self.momentum
            v += g + self.weight_decay * p
            p -= self.lr * v


class MLP:
    """``sizes[0]`` inputs, tanh hidden layers, ``sizes[-1]`` linear outputs."""

    def __init__(self, sizes: list[int], loss: str = "xent", init_scale: float = 1.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.W = [rng.normal(0.0, init_scale / np.sqrt(a), (a, b)) for a, b in zip(sizes, sizes[1:])]
        self.b = [np.zeros(b) for b in sizes[1:]]
        self.loss = loss

    @property
    def params(self) -> list[np.ndarray]:
        return [*self.W, *self.b]

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        acts = [x]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            x = x @ W + b
            if i < len(self.W) - 1:
                x = np.tanh(x)
            acts.append(x)
        return acts

    def loss_and_grad(self, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        if self.loss == "xent":
            p = np.exp(out - out.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            rows = np.arange(len(y))
            loss = float(-np.log(p[rows, y] + 1e-12).mean())
            p[rows, y] -= 1.0
            return loss, p / len(y)
        d = out - y
        return float((d ** 2).mean()), 2.0 * d / d.size

    def backward(self, acts: list[np.ndarray], d: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(gradients in :attr:`params` order, gradient of the input)."""
        dW, db = [], []
        for i in reversed(range(len(self.W))):
            dW.insert(0, acts[i].T @ d)
            db.insert(0, d.sum(0))
            d = d @ self.W[i].T
            if i > 0:
                d = d * (1.0 - acts[i] ** 2)
        return [*dW, *db], d

    def train_step(self, x: np.ndarray, y: np.ndarray, opt: SGD) -> float:
        acts = self.forward(x)
        loss, d = self.loss_and_grad(acts[-1], y)
        opt.step(self.backward(acts, d)[0])
        return loss

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> float:
        return self.loss_and_grad(self.forward(x)[-1], y)[0]


class CharLM:
    """Predict a character from the previous ``context`` ones."""

    def __init__(self, vocab: int, context: int, d_emb: int, hidden: int, layers: int, init_scale: float = 1.0,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.context = context
        self.E = rng.normal(0.0, init_scale, (vocab, d_emb))
        self.mlp = MLP([context * d_emb, *[hidden] * layers, vocab], "xent", init_scale, seed + 1)

    @property
    def params(self) -> list[np.ndarray]:
        return [self.E, *self.mlp.params]

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params)

    def batch(self, ids: np.ndarray, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        at = rng.integers(self.context, len(ids), size)
        return ids[at[:, None] - np.arange(self.context, 0, -1)], ids[at]

    def train_step(self, ctx: np.ndarray, y: np.ndarray, opt: SGD) -> float:
        acts = self.mlp.forward(self.E[ctx].reshape(len(ctx), -1))
        loss, d = self.mlp.loss_and_grad(acts[-1], y)
        grads, dx = self.mlp.backward(acts, d)
        dE = np.zeros_like(self.E)
        np.add.at(dE, ctx, dx.reshape(*ctx.shape, -1))
        opt.step([dE, *grads])
        return loss

    def evaluate(self, ctx: np.ndarray, y: np.ndarray) -> float:
        return self.mlp.evaluate(self.E[ctx].reshape(len(ctx), -1), y)

    def state(self) -> dict[str, np.ndarray]:
        return {f"p{i}": p for i, p in enumerate(self.params)}

    def load(self, state: dict[str, np.ndarray]) -> None:
        for i, p in enumerate(self.params):
            p[...] = state[f"p{i}"]
