"""Seed 002's train.py, small: an MLP classifier on scikit-learn's digits, in the W&B sweep shape.

* ``get_default_config()``: every default in one place;
* ``train(config)``: merges the config over the defaults and logs each epoch with ``wandb.log``;
* ``sweep_train()``: the sweep agent's entry point, ``train(dict(wandb.config))``.

Standalone, command-line overrides work as before (W&B or not installed):
    python train.py --learning_rate=0.1 --n_embd=32
Under a W&B sweep (or hpo, whose ``wandb`` stand-in takes the real one's place) each run is
    python train.py --learning_rate=0.1 --n_embd=32 ...   (the sweep's ${args})
"""

import ast
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: BLAS threads only contend
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinynet import MLP, SGD, digits  # noqa: E402

try:
    import wandb
except ImportError:  # runs without W&B as well
    wandb = None


def get_default_config() -> dict:
    return {"learning_rate": 0.05, "n_layer": 1, "n_embd": 32, "weight_decay": 0.0, "batch_size": 32,
            "epochs": 8, "seed": 0}


def train(config: dict | None = None) -> float:
    config = {**get_default_config(), **(config or {})}
    x, y = digits()
    rng = np.random.default_rng(config["seed"])
    order = rng.permutation(len(x))
    train_idx, val_idx = order[:1400], order[1400:]
    model = MLP([64, *[config["n_embd"]] * config["n_layer"], 10], seed=config["seed"])
    opt = SGD(model.params, config["learning_rate"], momentum=0.9, weight_decay=config["weight_decay"])
    batch = int(config["batch_size"])
    start = time.perf_counter()
    for epoch in range(1, config["epochs"] + 1):
        for i in range(len(train_idx) // batch):
            idx = rng.permutation(train_idx)[:batch]
            train_loss = model.train_step(x[idx], y[idx], opt)
            if wandb is not None and i % 10 == 0:
                wandb.log({"train/loss": train_loss})
        val_loss = model.evaluate(x[val_idx], y[val_idx])
        val_acc = float((model.forward(x[val_idx])[-1].argmax(1) == y[val_idx]).mean())
        print(f"epoch {epoch}: train_loss={train_loss:.4f} val_loss={val_loss:.4f} val_acc={val_acc:.3f}")
        if wandb is not None:
            wandb.log({"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc,
                       "train_seconds": time.perf_counter() - start})
    return val_loss


def sweep_train() -> None:
    """The entry point for wandb sweep agents: hyperparameters arrive in wandb.config."""
    wandb.init(config=get_default_config())
    train(dict(wandb.config))
    wandb.finish()


def overrides(argv: list[str]) -> dict:
    """``--name=value`` arguments (configurator style) as a config dict."""
    out = {}
    for arg in argv:
        name, _, text = arg.removeprefix("--").partition("=")
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


if __name__ == "__main__":
    if wandb is None:
        train(overrides(sys.argv[1:]))
    else:
        wandb.init(config={**get_default_config(), **overrides(sys.argv[1:])})
        train(dict(wandb.config))
        wandb.finish()
