"""Seed 004's ranking run, small: how to spend a character-level LM's parameters, trained to
a token budget on Python's own source.

--embedding_ratio sets the embedding width (ratio x 64), --glu_expansion the hidden width
(expansion x 16): stand-ins for the seed's embedding share and GLU expansion. Reports every
--eval_tokens through hpo_report: tokens, val_loss, val_ppl (dev perplexity), train_seconds.
SIGTERM (hpo's kill rule) ends it at once, like any Python program.

    python train_alloc.py --embedding_ratio=0.35 --glu_expansion=2.66 --total_tokens=20000
"""

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hpo_report  # noqa: E402
import numpy as np  # noqa: E402
from tinynet import SGD, CharLM, python_text  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--embedding_ratio", type=float, default=0.35)
parser.add_argument("--glu_expansion", type=float, default=2.66)
parser.add_argument("--total_tokens", type=int, default=20_000)
parser.add_argument("--eval_tokens", type=int, default=2_000)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--learning_rate", type=float, default=0.05)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

ids, vocab = python_text()
split = int(0.9 * len(ids))
model = CharLM(vocab, context=8, d_emb=max(2, round(args.embedding_ratio * 64)),
               hidden=max(4, round(args.glu_expansion * 16)), layers=1, seed=args.seed)
opt = SGD(model.params, args.learning_rate, momentum=0.9)
rng = np.random.default_rng(args.seed)
dev = model.batch(ids[split:], np.random.default_rng(99), 1000)
tokens, seconds, step = 0, 0.0, 0
print(f"{model.n_params} parameters", flush=True)
while tokens < args.total_tokens:
    start = time.perf_counter()
    model.train_step(*model.batch(ids[:split], rng, args.batch_size), opt)
    seconds += time.perf_counter() - start
    step += 1
    tokens += args.batch_size
    if tokens % args.eval_tokens < args.batch_size:
        val_loss = model.evaluate(*dev)
        print(f"step {step} tokens {tokens}: dev ppl {math.exp(val_loss):.3f}")
        hpo_report.report(step, tokens=tokens, val_loss=val_loss, val_ppl=math.exp(val_loss), train_seconds=seconds)
