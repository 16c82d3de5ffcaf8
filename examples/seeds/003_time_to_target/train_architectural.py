"""Seed 003's training script, small: a character-level LM on Python's own source that
validates every --val-freq steps and, with --target-loss, stops once val loss is below it.

    python train_architectural.py --target-loss 2.6 --val-freq 10 --lr 0.05

Each validation prints the seed's line and modded-nanogpt's (train_time excludes validation):
    Step 50: train=2.7311, val=2.6502
    step:50/400 val_loss:2.6502 train_time:412ms step_avg:8.24ms
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinynet import SGD, CharLM, python_text  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=400)
parser.add_argument("--target-loss", "--target_loss", type=float, default=None)
parser.add_argument("--val-freq", "--val_freq", type=int, default=20)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--momentum", type=float, default=0.9)
parser.add_argument("--batch-size", "--batch_size", type=int, default=32)
parser.add_argument("--width", type=int, default=64)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

ids, vocab = python_text()
split = int(0.9 * len(ids))
model = CharLM(vocab, context=8, d_emb=16, hidden=args.width, layers=1, seed=args.seed)
opt = SGD(model.params, args.lr, args.momentum)
rng = np.random.default_rng(args.seed)
val_batch = model.batch(ids[split:], np.random.default_rng(12345), 1000)
train_time = 0.0
for step in range(1, args.steps + 1):
    start = time.perf_counter()
    loss = model.train_step(*model.batch(ids[:split], rng, args.batch_size), opt)
    train_time += time.perf_counter() - start
    if step % args.val_freq == 0:
        val_loss = model.evaluate(*val_batch)
        print(f"Step {step}: train={loss:.4f}, val={val_loss:.4f}")
        print(f"step:{step}/{args.steps} val_loss:{val_loss:.4f} train_time:{train_time * 1000:.0f}ms "
              f"step_avg:{train_time * 1000 / step:.2f}ms")
        if args.target_loss is not None and val_loss < args.target_loss:
            print(f"TARGET REACHED: {val_loss:.4f} < {args.target_loss} at step {step}")
            print(f"Time to target: {train_time:.1f}s")
            break
