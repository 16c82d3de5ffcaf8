"""The ngpt_ttt training objective run bare: reports, clock, divergence, resume, presets."""

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

from hpo.protocol import NullReporter, StopTrial
from objectives.ngpt_ttt import DEFAULTS, resolve_config, train

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = {
    "n_layer": 1, "d_model": 32, "n_head": 2, "seq_len": 32, "batch_size": 8,
    "val_batches": 2, "val_batch_size": 8, "warmup_steps": 1, "threads": 1, "device": "cpu",
}  # one thread: a model this small gains nothing from two, and loses a lot on a busy machine
RESULT_KEYS = {
    "val_loss", "val_ppl", "best_val_loss", "tokens", "train_seconds", "wall_seconds", "steps", "diverged", "n_params",
}


class Recorder(NullReporter):
    """A bare reporter that keeps checkpoints, can hand one back, and can stall to test the clock."""

    def __init__(self, resume_from: dict[str, Any] | None = None, stall: float = 0.0) -> None:
        super().__init__()
        self.saved: list[dict[str, Any]] = []
        self.resume_from = resume_from
        self.stall = stall

    def __call__(self, step: int, **metrics: float) -> None:
        super().__call__(step, **metrics)
        time.sleep(self.stall)

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
    losses = [h["val_loss"] for h in rep.history]
    assert losses[-1] < losses[0] - 0.5 and losses[0] < math.log(256)
    assert all(h["val_ppl"] == pytest.approx(math.exp(h["val_loss"])) for h in rep.history)
    assert set(out) == RESULT_KEYS
    assert out["steps"] == 70 and out["diverged"] == 0 and out["tokens"] == tokens[-1]
    assert out["val_loss"] == losses[-1] and out["best_val_loss"] == min(losses)
    assert out["train_seconds"] == seconds[-1] < out["wall_seconds"] and out["n_params"] > 0


def test_clock_stops_while_reporting_and_validating() -> None:
    rep = Recorder(stall=0.4)
    out = train({**TINY, "max_steps": 40, "val_freq": 10}, rep)
    assert len(rep.history) == 4
    assert out["wall_seconds"] - out["train_seconds"] > 4 * 0.4


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
        assert h["train_seconds"] > state["train_seconds"]
    assert out["steps"] == 60 and out["tokens"] == full.history[-1]["tokens"]


def test_local_text_dataset_trains(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"record {i}: alpha beta gamma delta\n" for i in range(400)))
    rep = NullReporter()
    out = train({**TINY, "dataset": str(path), "max_steps": 20, "val_freq": 10}, rep)
    assert out["diverged"] == 0 and rep.history[-1]["val_loss"] < rep.history[0]["val_loss"]


def test_unknown_and_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown ngpt_ttt config keys \\['learning_rate'\\]"):
        resolve_config({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="optimizer"):
        resolve_config({"optimizer": "sgd"})
    with pytest.raises(ValueError, match="lazy_proj_freq"):
        resolve_config({"lazy_proj_freq": 0})


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


@pytest.mark.slow
def test_gpu_preset_builds_and_runs_two_steps_on_cpu() -> None:
    """The 11 × 768 preset, as is except for data size: real model, two Muon steps, one validation."""
    fixed = _spec("ngpt_ttt_gpu.yaml")["fixed"]
    assert (fixed["n_layer"], fixed["d_model"]) == (11, 768)
    cfg = {**fixed, "dataset": "pydoc", "device": "cpu", "threads": 2, "compile": False, "max_steps": 2,
           "warmup_steps": 0, "batch_size": 1, "val_batches": 1, "val_batch_size": 1}
    rep = NullReporter()
    out = train(cfg, rep)
    assert out["steps"] == 2 and out["diverged"] == 0 and out["n_params"] > 100e6
    assert [h["step"] for h in rep.history] == [2] and math.isfinite(rep.history[0]["val_loss"])
