"""The ``ngpt_ttt`` objective: train nGPT with Muon (or AdamW) and report the validation curve.

``train(config, report)`` is what ``hpo`` calls (spec ``objective: objectives.ngpt_ttt:train``);
it can also run bare with any callable reporter, e.g. ``hpo.protocol.NullReporter``. It reports
``val_loss``, ``val_ppl``, ``tokens``, ``train_seconds`` (and ``train_loss``) every ``val_freq``
steps and at the last step, on fixed validation batches. It never decides anything about the
target or the budget: ``report`` may raise ``hpo.protocol.StopTrial`` to end the run, which this
module never catches.

``train_seconds`` is the time-to-target clock, modded-nanogpt speedrun style: it runs only while
training, stops during validation and checkpointing (with a CUDA sync before each reading), and
excludes ``warmup_steps`` warm-up steps. Those warm-up steps run the real training step (to warm
kernels, allocator and ``torch.compile``) and are then undone: model, optimiser, batch stream and
RNG go back to their initial state, so the excluded time buys no learning.

A diverged run is reported at once as ``val_loss=nan`` (hpo prunes the trial with a reason; the
actual ``train_loss`` goes along); run bare, the function then returns with ``diverged=1``.
Diverged means a non-finite training loss or one above ``DIVERGED_LOSS`` (ten times the loss of
a uniform guess): nGPT's re-projection keeps the weights finite, so a huge learning rate shows as
an exploding loss (millions of nats) rather than as NaN, and such a run never comes back.

Checkpointing: when the reporter has ``restore()``, a returned state resumes the run at its step;
every ``checkpoint_every`` validations ``report.checkpoint(state)`` receives model, optimiser,
batch-stream and RNG states with step, tokens and elapsed ``train_seconds``.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from objectives.data import VOCAB_SIZE, BatchSampler, load_splits, validation_batches
from objectives.model import NGPT, NGPTConfig
from objectives.muon import Muon

# The CPU study's defaults (search_spaces/ngpt_ttt.yaml); the GPU preset overrides the sizes.
DEFAULTS: dict[str, Any] = {
    "dataset": "pydoc",  # "pydoc" | "wikitext2" | path or glob of local text files
    "seq_len": 128,
    "batch_size": 16,
    "n_layer": 2,
    "d_model": 128,
    "n_head": 4,
    "max_steps": 1500,
    "val_freq": 20,
    "val_batches": 4,
    "val_batch_size": 32,  # fixed, not batch_size: every trial is judged on the same windows
    "warmup_steps": 3,
    "optimizer": "muon",  # "muon" (hidden matrices; AdamW for the rest) | "adamw" (everything)
    "orthog": "newton_schulz",  # "newton_schulz" | "polar_express"
    "lr": 0.03,  # Muon
    "adam_lr": 0.01,  # AdamW: embeddings, head, gains; all parameters when optimizer=adamw
    "momentum": 0.95,
    "variance_reduction": False,
    "cautious_wd": False,
    "weight_decay": 0.0,  # on the Muon matrices, × lr; nGPT itself uses none
    "lazy_proj_freq": 1,  # re-project the matrices onto the sphere every k steps
    "seed": 0,
    "device": "auto",  # "auto" (cuda if available) | "cpu" | "cuda" | "cuda:1" ...
    "threads": None,  # torch intra-op threads; None leaves torch's default
    "checkpoint_every": 0,  # call report.checkpoint every k validations; 0 = never
    "compile": False,  # torch.compile the model (its compile time falls in the warm-up steps)
}

Report = Callable[..., None]

DIVERGED_LOSS = 10 * math.log(VOCAB_SIZE)  # nats per byte; a uniform guess scores log(256) ≈ 5.5


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """``DEFAULTS`` overridden by ``config``; unknown keys are an error (they would be silently ignored)."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown ngpt_ttt config keys {unknown}; known: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **config}
    if cfg["optimizer"] not in ("muon", "adamw"):
        raise ValueError(f"optimizer must be 'muon' or 'adamw', got {cfg['optimizer']!r}")
    for key in ("val_freq", "lazy_proj_freq", "max_steps", "val_batches"):
        if int(cfg[key]) < 1:
            raise ValueError(f"{key} must be ≥ 1, got {cfg[key]!r}")
    return cfg


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizers(model: NGPT, cfg: dict[str, Any]) -> list[torch.optim.Optimizer]:
    """Muon for the block matrices and AdamW for the rest, or AdamW for everything.

    No weight decay on the AdamW side: embeddings and head are normalised, gains are gains.
    """
    adamw = {"lr": float(cfg["adam_lr"]), "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0}
    if cfg["optimizer"] == "adamw":
        return [torch.optim.AdamW(model.parameters(), **adamw)]
    hidden = model.hidden_matrices()
    hidden_ids = {id(p) for p in hidden}
    muon = Muon(
        hidden,
        lr=float(cfg["lr"]),
        momentum=float(cfg["momentum"]),
        orthog=str(cfg["orthog"]),
        variance_reduction=bool(cfg["variance_reduction"]),
        weight_decay=float(cfg["weight_decay"]),
        cautious_wd=bool(cfg["cautious_wd"]),
    )
    rest = [p for p in model.parameters() if id(p) not in hidden_ids]
    return [muon, torch.optim.AdamW(rest, **adamw)]


class TrainClock:
    """Seconds spent training: runs between ``start`` and ``stop``, syncing CUDA at each edge."""

    def __init__(self, device: torch.device, elapsed: float = 0.0) -> None:
        self.device = device
        self.elapsed = elapsed
        self._since: float | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        self._sync()
        self._since = time.perf_counter()

    def stop(self) -> None:
        if self._since is not None:
            self._sync()
            self.elapsed += time.perf_counter() - self._since
        self._since = None


def _to_cpu(obj: Any) -> Any:
    """A deep copy of a nested state with every tensor detached and copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def capture_state(model: NGPT, optimizers: list[torch.optim.Optimizer], sampler: BatchSampler) -> dict[str, Any]:
    """Everything that determines the rest of a run, as CPU copies (also a checkpoint's payload)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # plain types: loadable with weights_only
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return _to_cpu({
        "model": model.state_dict(),
        "optimizers": [opt.state_dict() for opt in optimizers],
        "sampler": sampler.state_dict(),
        "rng": rng,
    })


def load_state(state: dict[str, Any], model: NGPT, optimizers: list[torch.optim.Optimizer], sampler: BatchSampler) -> None:
    """Put model, optimisers, batch stream and RNGs back to a captured state."""
    model.load_state_dict(state["model"])
    for opt, opt_state in zip(optimizers, state["optimizers"], strict=True):
        opt.load_state_dict(opt_state)
    sampler.load_state_dict(state["sampler"])
    torch.set_rng_state(state["rng"]["torch"])
    name, keys, pos, has_gauss, gauss = state["rng"]["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(state["rng"]["python"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def train(config: dict[str, Any], report: Report) -> dict[str, float]:
    """Train nGPT as configured, reporting each validation; return the run's summary."""
    wall_start = time.perf_counter()
    cfg = resolve_config(config)
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    device = pick_device(str(cfg["device"]))
    seed = int(cfg["seed"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    # --- data: byte-level splits, a seeded training stream, fixed validation batches
    splits = load_splits(str(cfg["dataset"]))
    seq_len, batch_size = int(cfg["seq_len"]), int(cfg["batch_size"])
    sampler = BatchSampler(splits.train, batch_size=batch_size, seq_len=seq_len, seed=seed, device=device)
    val_set = validation_batches(
        splits.val, n_batches=int(cfg["val_batches"]), batch_size=int(cfg["val_batch_size"]),
        seq_len=seq_len, device=device,
    )

    # --- model and optimisers
    model_cfg = NGPTConfig(
        vocab_size=VOCAB_SIZE, seq_len=seq_len, n_layer=int(cfg["n_layer"]),
        n_head=int(cfg["n_head"]), d_model=int(cfg["d_model"]),
    )
    model = NGPT(model_cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    forward = torch.compile(model) if cfg["compile"] else model
    optimizers = build_optimizers(model, cfg)
    lazy_proj_freq = int(cfg["lazy_proj_freq"])
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else contextlib.nullcontext
    )

    def train_step(step: int) -> float:
        """Forward, backward and (if the loss is finite) an optimiser step; returns the loss."""
        x, y = sampler.next()
        with autocast():
            loss = forward(x, y)
        loss.backward()
        value = loss.item()
        if math.isfinite(value):
            for opt in optimizers:
                opt.step()
            if step % lazy_proj_freq == 0:
                model.normalize_weights()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        return value

    @torch.no_grad()
    def evaluate() -> float:
        """Mean loss over the fixed validation batches."""
        losses = []
        for x, y in val_set:
            with autocast():
                losses.append(forward(x, y).float())
        return torch.stack(losses).mean().item()

    # --- warm-up steps, then back to the initial state (or to a checkpoint to resume from)
    initial = capture_state(model, optimizers, sampler)
    for i in range(int(cfg["warmup_steps"])):
        train_step(i + 1)
    restore = getattr(report, "restore", None)
    resumed = restore() if callable(restore) else None
    load_state(resumed or initial, model, optimizers, sampler)
    run = {"step": 0, "tokens": 0, "train_seconds": 0.0, "best_val_loss": math.inf, "validations": 0, "val_loss": math.nan}
    if resumed:
        run.update({k: resumed[k] for k in run})

    # --- the training loop: the clock runs except during validation and checkpointing
    checkpoint_every, max_steps, val_freq = int(cfg["checkpoint_every"]), int(cfg["max_steps"]), int(cfg["val_freq"])
    clock = TrainClock(device, elapsed=float(run["train_seconds"]))
    diverged = False
    clock.start()
    while run["step"] < max_steps:
        run["step"] += 1
        train_loss = train_step(run["step"])
        run["tokens"] += batch_size * seq_len
        diverged = not train_loss < DIVERGED_LOSS  # also true for NaN
        if not (diverged or run["step"] % val_freq == 0 or run["step"] == max_steps):
            continue
        clock.stop()
        run["val_loss"] = math.nan if diverged else evaluate()
        run["train_seconds"] = clock.elapsed
        diverged = diverged or not math.isfinite(run["val_loss"])
        if not diverged:
            run["best_val_loss"] = min(run["best_val_loss"], run["val_loss"])
        report(
            run["step"], val_loss=run["val_loss"], val_ppl=math.exp(min(run["val_loss"], 700.0)),
            tokens=float(run["tokens"]), train_seconds=clock.elapsed, train_loss=train_loss,
        )
        if diverged:
            break
        run["validations"] += 1
        checkpoint = getattr(report, "checkpoint", None)
        if checkpoint_every and run["validations"] % checkpoint_every == 0 and callable(checkpoint):
            checkpoint({**capture_state(model, optimizers, sampler), **run})
        if run["step"] < max_steps:
            clock.start()
    clock.stop()

    return {
        "val_loss": float(run["val_loss"]),
        "val_ppl": math.exp(min(float(run["val_loss"]), 700.0)),
        "best_val_loss": float(run["best_val_loss"]),
        "tokens": float(run["tokens"]),
        "train_seconds": clock.elapsed,
        "wall_seconds": time.perf_counter() - wall_start,
        "steps": float(run["step"]),
        "diverged": float(diverged),
        "n_params": float(n_params),
    }
