"""The ngpt_ttt training objective run bare: reports, clocks, schedules, divergence, resume, presets.

Schedules as the references define them: modded-nanogpt's learning rate is constant, then over the
last ``cooldown_frac`` of the steps ``lr·(1 − t) + 0.15·t``; nGPT's decays as ``½(1 + cos πt)`` to
0; modded-nanogpt's Muon momentum rises linearly 0.85 → 0.95 over 300 steps and falls back over the
last 50; nGPT clips the global gradient norm at 1.0.
"""

from __future__ import annotations

import copy
import io
import itertools
import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from hpo.run.protocol import NullReporter, StopTrial
from objectives.ngpt_ttt import DEFAULTS, lr_multiplier, muon_momentum, resolve_config, train

ROOT = Path(__file__).resolve().parents[2]
TINY: dict[str, Any] = {
    "n_layer": 1, "d_model": 32, "n_head": 2, "seq_len": 32, "batch_size": 8,
    "val_batches": 2, "val_batch_size": 8, "warmup_steps": 1, "threads": 1, "device": "cpu",
}  # one thread: a model this small gains nothing from two, and loses a lot on a busy machine
RESULT_KEYS = {
    "val_loss", "val_ppl", "best_val_loss", "tokens", "train_seconds", "cpu_seconds", "norm_seconds", "wall_seconds", "steps",
    "diverged", "n_params",
}


class Recorder(NullReporter):
    """A bare reporter that keeps checkpoints, can hand one back, and can stall to test the clock."""

    def __init__(self, resume_from: dict[str, Any] | None = None, stall: float = 0.0) -> None:
        super().__init__()
        self.saved: list[dict[str, Any]] = []
        self.resume_from = resume_from
        self.stall = stall
        self.cpu_in_report = 0.0

    def __call__(self, step: int, **metrics: float) -> None:
        super().__call__(step, **metrics)
        start, end = time.process_time(), time.perf_counter() + self.stall
        while time.perf_counter() < end:  # busy: CPU seconds too, which neither clock may count
            pass
        self.cpu_in_report += time.process_time() - start

    def checkpoint(self, state: dict[str, Any]) -> None:
        self.saved.append(copy.deepcopy(state))

    def restore(self) -> dict[str, Any] | None:
        return self.resume_from


def test_bare_run_learns_and_reports_every_val_freq() -> None:
    rep = NullReporter()
    out = train({**TINY, "max_steps": 70, "val_freq": 20}, rep)
    steps = [h["step"] for h in rep.history]
    assert steps == [20, 40, 60, 70]  # every val_freq steps and at the final step
    tokens = [h["tokens"] for h in rep.history]
    assert tokens == [s * 8 * 32 for s in steps]
    seconds = [h["train_seconds"] for h in rep.history]
    assert all(b > a > 0 for a, b in itertools.pairwise(seconds))
    cpu = [h["cpu_seconds"] for h in rep.history]
    assert all(b > a > 0 for a, b in itertools.pairwise(cpu))
    losses = [h["val_loss"] for h in rep.history]
    assert losses[-1] < losses[0] - 0.5 and losses[0] < math.log(256)
    assert all(h["val_ppl"] == pytest.approx(math.exp(h["val_loss"])) for h in rep.history)
    assert set(out) == RESULT_KEYS
    assert out["steps"] == 70 and out["diverged"] == 0 and out["tokens"] == tokens[-1]
    assert out["val_loss"] == losses[-1] and out["best_val_loss"] == min(losses)
    assert out["train_seconds"] == seconds[-1] < out["wall_seconds"] and out["n_params"] > 0
    assert out["cpu_seconds"] == cpu[-1] and out["norm_seconds"] == rep.history[-1]["norm_seconds"] > 0


def test_the_normalised_clock_counts_cpu_seconds_in_reference_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the yardstick runs 2x slower (a slowed CPU), each interval counts half."""
    from objectives import ngpt_ttt

    ratios = []
    for slowdown in (1.0, 2.0):
        monkeypatch.setattr(ngpt_ttt, "reference_seconds", lambda s=slowdown: ngpt_ttt.REFERENCE_NOMINAL * s)
        rep = NullReporter()
        train({**TINY, "max_steps": 20, "val_freq": 10}, rep)
        ratios.append([h["norm_seconds"] / h["cpu_seconds"] for h in rep.history])
    assert ratios[0] == pytest.approx([1.0, 1.0]) and ratios[1] == pytest.approx([0.5, 0.5])
    assert 0.002 < ngpt_ttt.reference_seconds() < 1.0  # the real one: a short fixed workload


def test_the_yardstick_is_a_training_step_that_leaves_the_run_alone() -> None:
    """The unit of norm_seconds: one fixed training step, its cost rising with the threads' work,
    and no trace on the global RNGs (a run with it is the run without it)."""
    from objectives import ngpt_ttt

    torch.manual_seed(123)
    before = torch.get_rng_state()
    one = min(ngpt_ttt.reference_seconds() for _ in range(3))
    assert torch.equal(torch.get_rng_state(), before)
    y = ngpt_ttt.YARDSTICK
    assert (y["d_model"], y["n_layer"], y["batch_size"], y["seq_len"]) == (64, 2, 16, 128)  # the CPU preset's step
    assert one > 0.002  # a real forward, backward and Muon step, not a no-op


def test_both_clocks_stop_while_reporting_and_validating() -> None:
    rep = Recorder(stall=0.4)
    start = time.process_time()
    out = train({**TINY, "max_steps": 40, "val_freq": 10}, rep)
    cpu_total = time.process_time() - start
    assert len(rep.history) == 4
    assert out["wall_seconds"] - out["train_seconds"] > 4 * 0.4
    assert rep.cpu_in_report > 0.1 and cpu_total - out["cpu_seconds"] > rep.cpu_in_report  # not training


def test_lr_schedules_follow_the_references() -> None:
    assert [lr_multiplier(s, 100, "constant", 0.6) for s in (1, 50, 100)] == [1.0, 1.0, 1.0]
    # cooldown over the last 60 of 100 steps: 1 up to step 40, then lr·(1 − t) + 0.15·t
    assert lr_multiplier(40, 100, "cooldown", 0.6) == 1.0
    assert lr_multiplier(70, 100, "cooldown", 0.6) == pytest.approx(0.5 + 0.5 * 0.15)
    assert lr_multiplier(100, 100, "cooldown", 0.6) == pytest.approx(0.15)
    assert lr_multiplier(50, 100, "cosine", 0.6) == pytest.approx(0.5)
    assert lr_multiplier(100, 100, "cosine", 0.6) == pytest.approx(0.0, abs=1e-12)


def test_momentum_warms_up_and_cools_down() -> None:
    assert muon_momentum(0, 1000, 0.95, 300) == pytest.approx(0.85)
    assert muon_momentum(150, 1000, 0.95, 300) == pytest.approx(0.90)
    assert muon_momentum(300, 1000, 0.95, 300) == pytest.approx(0.95)
    assert muon_momentum(975, 1000, 0.95, 300) == pytest.approx(0.90)  # halfway down the last 50
    assert muon_momentum(1000, 1000, 0.95, 300) == pytest.approx(0.85)
    assert muon_momentum(10, 1000, 0.95, 0) == 0.95  # 0: constant


def test_gradients_are_clipped_to_grad_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda ps, max_norm: calls.append(max_norm) or real(ps, max_norm))
    train({**TINY, "max_steps": 3, "val_freq": 3, "warmup_steps": 0}, NullReporter())
    assert calls == [1.0] * 3
    calls.clear()
    train({**TINY, "max_steps": 3, "val_freq": 3, "warmup_steps": 0, "grad_clip": 0}, NullReporter())
    assert calls == []


def test_warmup_steps_are_undone() -> None:
    """Warm-up steps only warm kernels: the run afterwards is identical to one without them."""
    runs = []
    for warmup in (0, 4):
        rep = NullReporter()
        train({**TINY, "max_steps": 20, "val_freq": 10, "warmup_steps": warmup}, rep)
        runs.append([h["val_loss"] for h in rep.history])
    assert runs[0] == runs[1]


def test_divergence_reports_nan_and_returns_diverged() -> None:
    rep = NullReporter()
    out = train({**TINY, "max_steps": 200, "val_freq": 50, "lr": 1e6, "adam_lr": 1e6}, rep)
    assert out["diverged"] == 1.0 and out["steps"] < 50
    last = rep.history[-1]
    assert math.isnan(last["val_loss"]) and math.isnan(last["val_ppl"]) and last["step"] == out["steps"]
    assert not last["train_loss"] < 10 * math.log(256)


def test_stop_trial_ends_the_run_and_is_not_swallowed() -> None:
    class Stopper(NullReporter):
        def __call__(self, step: int, **metrics: float) -> None:
            super().__call__(step, **metrics)
            if len(self.history) == 2:
                raise StopTrial("target reached", pruned=False)

    rep = Stopper()
    with pytest.raises(StopTrial):
        train({**TINY, "max_steps": 100, "val_freq": 10}, rep)
    assert [h["step"] for h in rep.history] == [10, 20]


def test_checkpoint_resume_reproduces_the_uninterrupted_run() -> None:
    cfg = {**TINY, "max_steps": 60, "val_freq": 10, "checkpoint_every": 2, "lazy_proj_freq": 3,
           "variance_reduction": True, "cautious_wd": True, "weight_decay": 0.1}
    full = Recorder()
    train(cfg, full)
    assert [s["step"] for s in full.saved] == [20, 40, 60]
    state = full.saved[0]
    buffer = io.BytesIO()  # a checkpoint survives torch.save / torch.load(weights_only=True)
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    resumed = Recorder(resume_from=state)
    out = train(cfg, resumed)
    assert [h["step"] for h in resumed.history] == [30, 40, 50, 60]
    expected = {h["step"]: h for h in full.history}
    for h in resumed.history:
        assert h["val_loss"] == pytest.approx(expected[h["step"]]["val_loss"], abs=1e-6)
        assert h["tokens"] == expected[h["step"]]["tokens"]
        assert h["train_seconds"] > state["train_seconds"] and h["cpu_seconds"] > state["cpu_seconds"]
    assert out["steps"] == 60 and out["tokens"] == full.history[-1]["tokens"]


def test_local_text_dataset_trains(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"record {i}: alpha beta gamma delta\n" for i in range(400)))
    rep = NullReporter()
    out = train({**TINY, "dataset": str(path), "max_steps": 20, "val_freq": 10}, rep)
    assert out["diverged"] == 0 and rep.history[-1]["val_loss"] < rep.history[0]["val_loss"]


@pytest.mark.parametrize(("config", "message"), [
    ({"learning_rate": 0.1}, "unknown ngpt_ttt config keys ['learning_rate'] (fix: remove them"),
    ({"optimizer": "sgd"}, "optimizer must be one of ['muon', 'adamw'], got 'sgd' (fix: optimizer: muon)"),
    ({"lr_schedule": "linear"}, "lr_schedule must be one of ['constant', 'cooldown', 'cosine']"),
    ({"lazy_proj_freq": 0}, "lazy_proj_freq must be ≥ 1, got 0 (fix: lazy_proj_freq: 1)"),
    ({"cooldown_frac": 1.5}, "cooldown_frac must be in [0, 1], got 1.5 (fix: cooldown_frac: 0.6)"),
    ({"grad_clip": -1}, "grad_clip must be ≥ 0"),
])
def test_bad_config_is_one_line_naming_key_and_fix(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        resolve_config(config)
    assert message in str(info.value) and "\n" not in str(info.value)


def _spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "search_spaces" / name).read_text())


@pytest.mark.parametrize("name", ["ngpt_ttt.yaml", "ngpt_ttt_gpu.yaml"])
def test_spec_names_only_known_config_keys(name: str) -> None:
    spec = _spec(name)
    assert spec["objective"] == "objectives.ngpt_ttt:train"
    assert set(spec["space"]) <= set(DEFAULTS)
    resolve_config({**spec["fixed"], **{k: DEFAULTS[k] for k in spec["space"]}})
    assert not set(spec["fixed"]) & set(spec["space"])


def test_space_defaults_lie_inside_the_cpu_space() -> None:
    """The objective's defaults for searched parameters are points of the space (the "default config")."""
    for key, p in _spec("ngpt_ttt.yaml")["space"].items():
        value = DEFAULTS[key]
        if p["type"] == "categorical":
            assert value in p["choices"], key
        else:
            assert p["low"] <= value <= p["high"], key


def _gpu_preset(**overrides: Any) -> dict[str, Any]:
    """The GPU preset's fixed values (and the defaults of its searched keys), overridden."""
    spec = _spec("ngpt_ttt_gpu.yaml")
    return {**spec["fixed"], **{k: DEFAULTS[k] for k in spec["space"]}, **overrides}


def test_gpu_preset_code_path_on_a_shrunken_copy() -> None:
    """The GPU preset as is (its data, compile flag off, warm-up, checkpoints, schedules) at
    2 x 64 instead of 11 x 768: the same code path in seconds, not minutes."""
    fixed = _spec("ngpt_ttt_gpu.yaml")["fixed"]
    assert (fixed["n_layer"], fixed["d_model"]) == (11, 768)  # the seed's shape stays in the preset
    cfg = _gpu_preset(n_layer=2, d_model=64, n_head=2, seq_len=64, batch_size=2, val_batches=1, val_batch_size=2,
                      max_steps=2, val_freq=1, warmup_steps=1, device="cpu", threads=1, compile=False)
    rep = Recorder()
    out = train(cfg, rep)
    assert out["steps"] == 2 and out["diverged"] == 0
    assert [h["step"] for h in rep.history] == [1, 2] and all(math.isfinite(h["val_loss"]) for h in rep.history)


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU benchmark: the full 11 x 768 preset needs CUDA")
def test_gpu_benchmark_full_preset_trains_on_cuda() -> None:
    """The full 11 x 768 preset on a GPU: compiled, bf16, 20 steps, finite, and its step time printed."""
    cfg = _gpu_preset(device="cuda", max_steps=20, val_freq=10, val_batches=2)
    rep = NullReporter()
    out = train(cfg, rep)
    assert out["steps"] == 20 and out["diverged"] == 0 and out["n_params"] > 100e6
    print(f"GPU preset: {out['train_seconds'] / 20 * 1e3:.1f} ms/step, val_loss {out['val_loss']:.3f}")
