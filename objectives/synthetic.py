"""A synthetic learning curve: a fast, deterministic stand-in for tests of the service.

The loss decays like a power law whose floor and speed depend on the config, so samplers
and pruners have something to learn; it sleeps nothing and trains nothing. Use the nGPT
objective (``objectives.ngpt_ttt``) for anything that claims to be about real training.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Callable


def train(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    lr = float(config.get("lr", 0.01))
    width = float(config.get("width", 64))
    steps = int(config.get("steps", 20))
    fail_at = config.get("fail_at_step")
    rng = random.Random(int(config.get("seed", 0)))
    floor = 2.0 + 0.5 * abs(math.log10(lr / 0.01)) + 32.0 / width
    speed = 0.3 + 0.2 * min(lr / 0.01, 3.0)
    tokens_per_step = int(config.get("batch_size", 16)) * int(config.get("seq_len", 64))
    seconds_per_step = float(config.get("seconds_per_step", 0.01)) * width / 64
    start = time.perf_counter()
    loss = float("nan")
    restore = getattr(report, "restore", None)
    state = restore() if restore else None
    first = 1 if state is None else int(state["step"]) + 1
    every = int(config.get("checkpoint_every", 0))
    for step in range(first, steps + 1):
        if fail_at is not None and step == int(fail_at):
            raise RuntimeError(f"synthetic failure at step {step}")
        time.sleep(float(config.get("sleep_per_step", 0.0)))
        loss = floor + 4.0 * step ** (-speed) + rng.gauss(0, float(config.get("noise", 0.0)))
        report(step, val_loss=loss, val_ppl=math.exp(loss), tokens=step * tokens_per_step,
               train_seconds=step * seconds_per_step)
        if every and step % every == 0:
            report.checkpoint({"step": step})
    return {"val_loss": loss, "train_seconds": steps * seconds_per_step,
            "wall_seconds": time.perf_counter() - start}
