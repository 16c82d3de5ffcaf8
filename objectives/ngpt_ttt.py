"""The ``ngpt_ttt`` objective: train nGPT with Muon (or AdamW) and report the validation curve.

``train(config, report)`` is what ``hpo`` calls (spec ``objective: objectives.ngpt_ttt:train``);
it can also run bare with any callable reporter, e.g. ``hpo.run.protocol.NullReporter``. It reports
``val_loss``, ``val_ppl``, ``tokens``, ``train_seconds``, ``cpu_seconds``, ``norm_seconds`` (and ``train_loss``)
every ``val_freq`` steps and at the last step, on fixed validation batches. It never decides
anything about the target or the budget: ``report`` may raise ``hpo.run.protocol.StopTrial`` to end
the run, which this module never catches.

Three training clocks run over the same intervals: only while training, stopped during validation
and checkpointing, and excluding ``warmup_steps`` warm-up steps.

- ``train_seconds``: wall-clock of those intervals, modded-nanogpt speedrun style (with a CUDA
  sync at each edge). The GPU preset's clock: on a dedicated GPU it measures the config.
- ``cpu_seconds``: the CPU time this process spent in them (``time.process_time()`` deltas,
  all of its threads). Other processes slow the wall-clock of a step far more than its CPU
  seconds, but on a shared virtual machine the CPU itself still runs slower when its
  neighbours are busy or the host is (the same steps cost 1.2-1.35x the CPU seconds beside
  two busy loops, and up to 2x from one quiet hour to the next: ``benchmarks/clock_noise.py``).
- ``norm_seconds``: ``cpu_seconds`` in yardstick steps. After each interval the clock times one
  fixed training step of a fixed network (:class:`Yardstick`, excluded from every clock) and
  counts the interval's CPU seconds x ``REFERENCE_NOMINAL / reference_seconds``: when the CPU
  runs 1.3x slower (busy neighbours) or is another CPU, the yardstick does too and the interval
  counts the same. ``REFERENCE_NOMINAL`` (0.125 s a yardstick step) keeps the scale the CPU
  presets' budgets were set in. The CPU presets' clock (on CUDA it equals ``cpu_seconds``: the
  GPU preset reads ``train_seconds``). The yardstick costs one step's wall time per interval.

The warm-up steps run the real training step (to warm kernels, allocator and ``torch.compile``)
and are then undone: model, optimiser, batch stream and RNG go back to their initial state, so
the excluded time buys no learning.

Per step, as the references do it (every choice a config key, see ``DEFAULTS``): gradients
clipped to a global norm of ``grad_clip`` (nGPT: 1.0); the learning rates of both optimisers
scaled by ``lr_schedule`` over ``max_steps`` (``constant``; ``cooldown``: constant, then linear
over the last ``cooldown_frac`` of the steps down to ``COOLDOWN_FLOOR`` of the base, as
modded-nanogpt; ``cosine``: to 0, as nGPT); Muon's momentum warmed up linearly from
``MOMENTUM_MIN`` over ``momentum_warmup_steps`` and cooled back to it over the last
``MOMENTUM_COOLDOWN_STEPS`` (modded-nanogpt's 0.85 → 0.95 over 300 steps, back over 50).

A diverged run is reported at once as ``val_loss=nan`` (hpo prunes the trial with a reason; the
actual ``train_loss`` goes along); run bare, the function then returns with ``diverged=1``.
Diverged means a non-finite training loss or one above ``DIVERGED_FACTOR`` (10) times the loss
of a uniform guess, log(vocabulary): nGPT's re-projection keeps the weights finite, so a huge learning rate shows as
an exploding loss (millions of nats) rather than as NaN, and such a run never comes back.

Checkpointing: when the reporter has ``restore()``, a returned state resumes the run at its step;
every ``checkpoint_every`` validations ``report.checkpoint(state)`` receives model, optimiser,
batch-stream and RNG states with step, tokens and both elapsed clocks.
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
from torch.nn.utils import clip_grad_norm_ as _yardstick_clip  # bound once: the yardstick's work is fixed

from objectives.data import BatchSampler, load_splits, validation_batches
from objectives.model import NGPT, NGPTConfig
from objectives.muon import Muon

# The CPU study's defaults (search_spaces/ngpt_ttt.yaml); the GPU preset overrides the sizes.
# Where a reference fixes a value, its value is the default unless seed 003 says otherwise.
DEFAULTS: dict[str, Any] = {
    "dataset": "kjv",  # a corpus of objectives.prepare ("kjv", "pydoc") | path/glob of text files or .bin shards
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
    "momentum": 0.95,  # after the warm-up (modded-nanogpt: 0.95)
    "momentum_warmup_steps": 300,  # from MOMENTUM_MIN (0.85) up to momentum; 0 = constant momentum
    "variance_reduction": False,  # NorMuon
    "normuon_beta2": 0.9,  # NorMuon's second-moment EMA (modded-nanogpt: 0.9)
    "cautious_wd": False,
    "weight_decay": 1.2,  # on the Muon matrices (modded-nanogpt: 1.2 with the lr² scaling)
    "cwd_lr_scaling": True,  # decay wd·lr·(lr_mul·lr) as modded-nanogpt; False: wd·lr
    "lr_schedule": "cooldown",  # "constant" | "cooldown" (modded-nanogpt) | "cosine" (nGPT), over max_steps
    "cooldown_frac": 0.6,  # the last fraction of max_steps that "cooldown" decays over (modded-nanogpt: 0.6)
    "grad_clip": 1.0,  # global gradient-norm clip (nGPT: 1.0); 0 = off
    "alpha_init": 0.15,  # nGPT's eigen learning rate α at init (seed 003's baseline; nGPT: 0.05)
    "lazy_proj_freq": 1,  # re-project the matrices onto the sphere every k steps
    "seed": 0,
    "device": "auto",  # "auto" (cuda if available) | "cpu" | "cuda" | "cuda:1" ...
    "threads": None,  # torch intra-op threads; None leaves torch's default
    "checkpoint_every": 0,  # call report.checkpoint every k validations; 0 = never
    "compile": False,  # torch.compile the model (its compile time falls in the warm-up steps)
}

Report = Callable[..., None]

LR_SCHEDULES = ("constant", "cooldown", "cosine")
COOLDOWN_FLOOR = 0.15  # modded-nanogpt's cooldown ends at 0.15 of the base learning rate
MOMENTUM_MIN = 0.85  # modded-nanogpt's momentum warm-up start and cooldown end
MOMENTUM_COOLDOWN_STEPS = 50
DIVERGED_FACTOR = 10  # diverged: a training loss above 10 × that of a uniform guess, log(vocab)


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """``DEFAULTS`` overridden by ``config``; a bad key or value is one line naming it and the fix.

    Args:
        config: the trial's config (fixed values and sampled parameters).
    """
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown ngpt_ttt config keys {unknown} (fix: remove them; known: {sorted(DEFAULTS)})")
    cfg = {**DEFAULTS, **config}
    choices = {"optimizer": ("muon", "adamw"), "orthog": ("newton_schulz", "polar_express"), "lr_schedule": LR_SCHEDULES}
    for key, allowed in choices.items():
        if cfg[key] not in allowed:
            raise ValueError(f"{key} must be one of {list(allowed)}, got {cfg[key]!r} (fix: {key}: {allowed[0]})")
    for key in ("val_freq", "lazy_proj_freq", "max_steps", "val_batches", "batch_size", "seq_len"):
        if int(cfg[key]) < 1:
            raise ValueError(f"{key} must be ≥ 1, got {cfg[key]!r} (fix: {key}: {DEFAULTS[key]})")
    for key in ("momentum_warmup_steps", "grad_clip", "weight_decay", "warmup_steps"):
        if float(cfg[key]) < 0:
            raise ValueError(f"{key} must be ≥ 0, got {cfg[key]!r} (fix: {key}: {DEFAULTS[key]})")
    for key in ("cooldown_frac", "normuon_beta2", "momentum"):
        if not 0 <= float(cfg[key]) <= 1:
            raise ValueError(f"{key} must be in [0, 1], got {cfg[key]!r} (fix: {key}: {DEFAULTS[key]})")
    return cfg


def lr_multiplier(step: int, max_steps: int, schedule: str, cooldown_frac: float) -> float:
    """The factor on every base learning rate at ``step`` (1-based) of ``max_steps``.

    Args:
        step: the step about to be taken.
        max_steps: the schedule's length (the run's cap).
        schedule: ``constant``; ``cooldown`` (1, then linear over the last ``cooldown_frac`` of
            the steps to ``COOLDOWN_FLOOR``, modded-nanogpt); ``cosine`` (½(1 + cos πt) to 0, nGPT).
        cooldown_frac: the cooldown's share of ``max_steps``.
    """
    t = min(step, max_steps) / max_steps
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "cooldown" and cooldown_frac > 0 and t > 1 - cooldown_frac:
        w = (t - (1 - cooldown_frac)) / cooldown_frac
        return (1 - w) + w * COOLDOWN_FLOOR
    return 1.0


def muon_momentum(step: int, max_steps: int, momentum: float, warmup_steps: int) -> float:
    """Muon's momentum at ``step``: warm-up from ``MOMENTUM_MIN``, then ``momentum``, then cooldown.

    Args:
        step: the step about to be taken (1-based).
        max_steps: the run's length; the last ``MOMENTUM_COOLDOWN_STEPS`` cool back down.
        momentum: the value after the warm-up.
        warmup_steps: the warm-up's length; 0 keeps ``momentum`` constant (no cooldown either).
    """
    if warmup_steps <= 0:
        return momentum
    low = min(MOMENTUM_MIN, momentum)
    if step < warmup_steps:
        return low + (step / warmup_steps) * (momentum - low)
    cooldown_start = max_steps - MOMENTUM_COOLDOWN_STEPS
    if step > cooldown_start:
        return momentum - min(1.0, (step - cooldown_start) / MOMENTUM_COOLDOWN_STEPS) * (momentum - low)
    return momentum


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizers(model: NGPT, cfg: dict[str, Any]) -> list[torch.optim.Optimizer]:
    """Muon for the block matrices and AdamW for the rest, or AdamW for everything.

    No weight decay on the AdamW side: embeddings and head are normalised, gains are gains.
    Stacked matrices (SwiGLU's ``c_fc = [W_u; W_v]``) are a Muon group of their own with
    ``split: 2``: each logical matrix is orthogonalised and scaled on its own.

    Args:
        model: the nGPT model.
        cfg: a resolved config (``resolve_config``).
    """
    adamw = {"lr": float(cfg["adam_lr"]), "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0}
    if cfg["optimizer"] == "adamw":
        return [torch.optim.AdamW(model.parameters(), **adamw)]
    hidden = model.hidden_matrices()
    stacked = model.stacked_matrices()
    groups = [{"params": [p for p in hidden if id(p) not in stacked], "split": 1}]
    for k in sorted(set(stacked.values())):
        groups.append({"params": [p for p in hidden if stacked.get(id(p)) == k], "split": k})
    muon = Muon(
        [g for g in groups if g["params"]],
        lr=float(cfg["lr"]),
        momentum=float(cfg["momentum"]),
        orthog=str(cfg["orthog"]),
        variance_reduction=bool(cfg["variance_reduction"]),
        beta2=float(cfg["normuon_beta2"]),
        weight_decay=float(cfg["weight_decay"]),
        cautious_wd=bool(cfg["cautious_wd"]),
        cwd_lr_scaling=bool(cfg["cwd_lr_scaling"]),
    )
    hidden_ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in hidden_ids]
    return [muon, torch.optim.AdamW(rest, **adamw)]


YARDSTICK = {"n_layer": 2, "n_head": 2, "d_model": 64, "seq_len": 128, "batch_size": 16, "vocab_size": 256}
REFERENCE_NOMINAL = 0.125  # the seconds one yardstick step counts: the unit of norm_seconds (see the module docstring)


class Yardstick:
    """One fixed training step, timed: the unit ``norm_seconds`` counts in.

    The CPU preset's default step (nGPT 2 x 64 on 16 x 128 bytes, Muon with Newton-Schulz, the
    gradient clip and the re-projection) on fixed random tokens, built once per process from its
    own seeds (the global RNGs are left as they were). A fixed matmul was the unit before: it
    tracked the load on one machine, but not the machine: with the instruction set capped at
    AVX2, a matmul cost 1.7x more and this training 1.1-1.3x, so the same config read 1.3x
    apart on two CPUs (``benchmarks/clock_transfer.py``). A step of the same network tracks both.
    """

    def __init__(self) -> None:
        y = YARDSTICK
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model = NGPT(NGPTConfig(vocab_size=y["vocab_size"], seq_len=y["seq_len"], n_layer=y["n_layer"],
                                         n_head=y["n_head"], d_model=y["d_model"], alpha_init=DEFAULTS["alpha_init"]))
            self.x, self.y = (torch.randint(0, y["vocab_size"], (y["batch_size"], y["seq_len"])) for _ in range(2))
        self.optimizers = build_optimizers(self.model, resolve_config({"device": "cpu"}))
        for _ in range(2):  # warm the kernels and the allocator
            self.seconds()

    def seconds(self) -> float:
        """CPU seconds of one step, now, with the current torch threads."""
        start = time.process_time()
        self.model(self.x, self.y).backward()
        _yardstick_clip(self.model.parameters(), DEFAULTS["grad_clip"])
        for opt in self.optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.model.normalize_weights()
        return time.process_time() - start


_yardstick: Yardstick | None = None


def reference_seconds() -> float:
    """CPU seconds of one :class:`Yardstick` step, now (one yardstick per process)."""
    global _yardstick
    if _yardstick is None:
        _yardstick = Yardstick()
    return _yardstick.seconds()


class TrainClock:
    """Training time on three clocks, running between ``start`` and ``stop`` (CUDA synced at each edge).

    ``elapsed`` is wall-clock (``time.perf_counter``), ``cpu`` this process's CPU time
    (``time.process_time``: every thread of it, so with N busy threads about N × wall) and
    ``norm`` that CPU time in reference units (module docstring; equal to ``cpu`` on CUDA).

    Args:
        device: the training device (CUDA is synchronised before each reading).
        elapsed: wall seconds already spent (a resumed run's).
        cpu: CPU seconds already spent.
        norm: normalised seconds already spent.
    """

    def __init__(self, device: torch.device, elapsed: float = 0.0, cpu: float = 0.0, norm: float = 0.0) -> None:
        self.device = device
        self.elapsed = elapsed
        self.cpu = cpu
        self.norm = norm
        self._since: tuple[float, float] | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        """Start both clocks."""
        self._sync()
        self._since = (time.perf_counter(), time.process_time())

    def stop(self) -> None:
        """Stop the clocks, adding the interval since ``start`` (then, on CPU, time the reference)."""
        if self._since is not None:
            self._sync()
            wall, cpu = self._since
            self.elapsed += time.perf_counter() - wall
            spent = time.process_time() - cpu
            self.cpu += spent
            scale = 1.0 if self.device.type == "cuda" else REFERENCE_NOMINAL / max(reference_seconds(), 1e-6)
            self.norm += spent * scale
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
    """Train nGPT as configured, reporting each validation; return the run's summary.

    Args:
        config: overrides of ``DEFAULTS`` (unknown keys are an error).
        report: called as ``report(step, val_loss=..., tokens=..., train_seconds=...,
            cpu_seconds=..., ...)`` at each validation; may raise to stop the run. Optional
            ``report.restore()`` / ``report.checkpoint(state)`` resume and save the run.
    """
    wall_start = time.perf_counter()
    cfg = resolve_config(config)
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    device = pick_device(str(cfg["device"]))
    seed = int(cfg["seed"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    # --- data: prepared token splits, a seeded training stream, fixed validation batches
    splits = load_splits(str(cfg["dataset"]))
    seq_len, batch_size = int(cfg["seq_len"]), int(cfg["batch_size"])
    sampler = BatchSampler(splits.train, batch_size=batch_size, seq_len=seq_len, seed=seed, device=device)
    val_set = validation_batches(
        splits.val, n_batches=int(cfg["val_batches"]), batch_size=int(cfg["val_batch_size"]),
        seq_len=seq_len, device=device,
    )
    diverged_loss = DIVERGED_FACTOR * math.log(splits.vocab_size)  # nGPT's re-projection keeps weights finite

    # --- model and optimisers
    model_cfg = NGPTConfig(
        vocab_size=splits.vocab_size, seq_len=seq_len, n_layer=int(cfg["n_layer"]),
        n_head=int(cfg["n_head"]), d_model=int(cfg["d_model"]), alpha_init=float(cfg["alpha_init"]),
    )
    model = NGPT(model_cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    forward = torch.compile(model) if cfg["compile"] else model
    optimizers = build_optimizers(model, cfg)
    base_lrs = [[group["lr"] for group in opt.param_groups] for opt in optimizers]
    muon = next((opt for opt in optimizers if isinstance(opt, Muon)), None)
    max_steps, lazy_proj_freq, grad_clip = int(cfg["max_steps"]), int(cfg["lazy_proj_freq"]), float(cfg["grad_clip"])
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else contextlib.nullcontext
    )

    def train_step(step: int) -> float:
        """Forward, backward, clip, schedules and (if the loss is finite) an optimiser step; the loss."""
        x, y = sampler.next()
        with autocast():
            loss = forward(x, y)
        loss.backward()
        value = loss.item()
        if math.isfinite(value):
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            factor = lr_multiplier(step, max_steps, str(cfg["lr_schedule"]), float(cfg["cooldown_frac"]))
            for opt, lrs in zip(optimizers, base_lrs, strict=True):
                for group, lr in zip(opt.param_groups, lrs, strict=True):
                    group["lr"] = lr * factor
            if muon is not None:
                mu = muon_momentum(step, max_steps, float(cfg["momentum"]), int(cfg["momentum_warmup_steps"]))
                for group in muon.param_groups:
                    group["momentum"] = mu
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
    run = {"step": 0, "tokens": 0, "train_seconds": 0.0, "cpu_seconds": 0.0, "norm_seconds": 0.0,
           "best_val_loss": math.inf, "validations": 0, "val_loss": math.nan}
    if resumed:
        run.update({k: resumed.get(k, v) for k, v in run.items()})

    # --- the training loop: the clocks run except during validation and checkpointing
    checkpoint_every, val_freq = int(cfg["checkpoint_every"]), int(cfg["val_freq"])
    clock = TrainClock(device, elapsed=float(run["train_seconds"]), cpu=float(run["cpu_seconds"]),
                       norm=float(run["norm_seconds"]))
    diverged = False
    clock.start()
    while run["step"] < max_steps:
        run["step"] += 1
        train_loss = train_step(run["step"])
        run["tokens"] += batch_size * seq_len
        diverged = not train_loss < diverged_loss  # also true for NaN
        if not (diverged or run["step"] % val_freq == 0 or run["step"] == max_steps):
            continue
        clock.stop()
        run["val_loss"] = math.nan if diverged else evaluate()
        run["train_seconds"], run["cpu_seconds"], run["norm_seconds"] = clock.elapsed, clock.cpu, clock.norm
        diverged = diverged or not math.isfinite(run["val_loss"])
        if not diverged:
            run["best_val_loss"] = min(run["best_val_loss"], run["val_loss"])
        report(
            run["step"], val_loss=run["val_loss"], val_ppl=math.exp(min(run["val_loss"], 700.0)),
            tokens=float(run["tokens"]), train_seconds=clock.elapsed, cpu_seconds=clock.cpu,
            norm_seconds=clock.norm, train_loss=train_loss,
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
        "cpu_seconds": clock.cpu,
        "norm_seconds": clock.norm,
        "wall_seconds": time.perf_counter() - wall_start,
        "steps": float(run["step"]),
        "diverged": float(diverged),
        "n_params": float(n_params),
    }
