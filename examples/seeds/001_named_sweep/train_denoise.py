"""Seed 001's experiment, small: a denoising autoencoder on scikit-learn's digits.

Reports each epoch's test loss and training seconds through hpo_report (JSON lines; no-ops
when run bare), and the final metrics the seed's sweep collected at the end:

    python train_denoise.py --learning_rate=0.02 --batch_size=64 --init_scale=0.05 --epochs=12
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hpo_report  # noqa: E402  (the copy beside the examples; hpo also puts its own on PYTHONPATH)
import numpy as np  # noqa: E402
from tinynet import MLP, SGD, digits  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--learning_rate", type=float, default=0.02)
parser.add_argument("--batch_size", type=int, default=64)
parser.add_argument("--init_scale", type=float, default=0.05)
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--hidden", type=int, default=32)
parser.add_argument("--noise", type=float, default=0.3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

x, _ = digits()
rng = np.random.default_rng(args.seed)
order = rng.permutation(len(x))
train, test = x[order[:1500]], x[order[1500:]]
noisy_test = test + args.noise * np.random.default_rng(1).normal(size=test.shape)
# init_scale is about the weights' standard deviation (MLP scales by 1/sqrt(fan-in), here 64)
model = MLP([64, args.hidden, 64], loss="mse", init_scale=args.init_scale * 8, seed=args.seed)
opt = SGD(model.params, args.learning_rate, momentum=0.9)
seconds = 0.0
for epoch in range(1, args.epochs + 1):
    start = time.perf_counter()
    for i in range(0, len(train), args.batch_size):
        clean = train[rng.permutation(len(train))[: args.batch_size]]
        train_loss = model.train_step(clean + args.noise * rng.normal(size=clean.shape), clean, opt)
    seconds += time.perf_counter() - start
    test_loss = model.evaluate(noisy_test, test)
    print(f"epoch {epoch}: train_loss={train_loss:.5f} test_loss={test_loss:.5f} ({seconds:.2f}s)")
    hpo_report.report(epoch, test_loss=test_loss, train_loss=train_loss, train_seconds=seconds)
hpo_report.result(final_test_loss=test_loss, training_time_seconds=seconds)
