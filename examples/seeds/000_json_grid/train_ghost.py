"""Seed 000's training run, small: a character-level LM on Python's own source.

Prints a step update every --log_every batches and an evaluation line every --eval_every;
keeps the run's files in --out_dir ($HPO_CHECKPOINT_DIR under hpo): training_log.json (every
logged step) and best_model.npz (the parameters at the best eval loss so far).

    python train_ghost.py --embed_dim=16 --num_layers=2 --learning_rate=0.05 --out_dir=runs/try
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinynet import SGD, CharLM, python_text  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--embed_dim", type=int, default=16)
parser.add_argument("--num_layers", type=int, default=1)
parser.add_argument("--hidden", type=int, default=64)
parser.add_argument("--learning_rate", type=float, default=0.05)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--max_batches", type=int, default=100)
parser.add_argument("--eval_every", type=int, default=25)
parser.add_argument("--log_every", type=int, default=5)
parser.add_argument("--out_dir", default=os.environ.get("HPO_CHECKPOINT_DIR", "runs/bare"))
args = parser.parse_args()
out = Path(args.out_dir)
out.mkdir(parents=True, exist_ok=True)

ids, vocab = python_text()
split = int(0.9 * len(ids))
model = CharLM(vocab, context=8, d_emb=args.embed_dim, hidden=args.hidden, layers=args.num_layers)
opt = SGD(model.params, args.learning_rate, momentum=0.9)
rng = np.random.default_rng(0)
eval_batch = model.batch(ids[split:], np.random.default_rng(1), 1000)
log, best, seconds = [], float("inf"), 0.0
for step in range(1, args.max_batches + 1):
    start = time.perf_counter()
    loss = model.train_step(*model.batch(ids[:split], rng, args.batch_size), opt)
    seconds += time.perf_counter() - start
    entry = {"step": step, "train_loss": loss, "seconds": seconds}
    log.append(entry)
    if step % args.log_every == 0:
        print(f"step {step} | train_loss {loss:.4f}")
    if step % args.eval_every == 0:
        entry["eval_loss"] = eval_loss = model.evaluate(*eval_batch)
        print(f"eval step {step} | train_loss {loss:.4f} | eval_loss {eval_loss:.4f} | "
              f"tokens {step * args.batch_size} | {seconds:.3f}s")
        if eval_loss < best:
            best = eval_loss
            np.savez(out / "best_model.npz", step=step, eval_loss=eval_loss, **model.state())
        (out / "training_log.json").write_text(json.dumps(log))
