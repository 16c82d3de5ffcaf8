"""What running training as a command costs, beside a training function, in one run.

(a) Per-report overhead. The same reports (val_loss, val_ppl, tokens, train_seconds, with a
    median pruner deciding after each) come from ``objectives.synthetic:train`` in-process, from
    a script printing stdout lines parsed by a regex, and from a script writing JSON lines with
    ``hpo_report``. Each is a one-trial study on a temporary SQLite file with N1 and N2 reports;
    the cost of one report is the slope (wall(N2) - wall(N1)) / (N2 - N1) of the trial's
    ``wall_seconds``, so process start-up cancels out; medians over interleaved repeats.
    Goal: a command's slope within 1 ms of the function's.
(b) Prune to gone. A script reporting every 10 ms is pruned at step 5 (threshold pruner); the
    seconds from the decision to its process group being gone (``CommandObjective.stop_seconds``),
    for a script that exits on SIGTERM and one that ignores it (``grace_seconds`` later: SIGKILL).
    Goal: under 1 s, and under grace + 1 s.
(c) Tokens/s. A small numpy LM (examples/seeds/tinynet.py) trains for --steps and reports every
    10 steps; its own tokens per wall second of its training loop (reporting I/O included), run
    bare (stdout read by this process) and as a one-trial hpo study, interleaved. Also per CPU
    second of the script (getrusage of children): on a machine busy with other work the wall
    figure moves with the load; the CPU figure says whether the script itself got slower.
    Goal: hpo/bare >= 0.99 (median of the pairs).

The machine's load average is printed at the start and the end.

    python benchmarks/command_overhead.py [--repeats 5] [--pairs 11] [--steps 400] [--grace 2]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from hpo.run.loop import run

from hpo.run.session import open_session
from hpo.specs.models import parse_spec

TINYNET = Path(__file__).resolve().parents[1] / "examples" / "seeds" / "tinynet.py"

SCRIPT_REPORTS = r'''
import json, math, os, signal, sys, time
config = json.loads(os.environ["HPO_CONFIG"])
if config.get("ignore_term"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if config["mode"] == "json":
    import hpo_report
step = 0
while step < config["steps"]:
    step += 1
    loss = 2.0 + 4.0 * step ** -0.5
    if config["mode"] == "json":
        hpo_report.report(step, val_loss=loss, val_ppl=math.exp(loss), tokens=step * 1024, train_seconds=step * 0.01)
    else:
        print(f"step {step} val_loss {loss:.6f} val_ppl {math.exp(loss):.6f} tokens {step * 1024} "
              f"train_seconds {step * 0.01:.3f}", flush=True)
    time.sleep(config.get("sleep", 0.0))
'''
PATTERN = (r"step (?P<step>\d+) val_loss (?P<val_loss>[\d.]+) val_ppl (?P<val_ppl>[\d.]+) "
           r"tokens (?P<tokens>\d+) train_seconds (?P<train_seconds>[\d.]+)")

# run beside a copy of examples/seeds/tinynet.py (tokens_per_second), which it imports as a sibling
SCRIPT_TRAIN = r'''
import os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
from tinynet import SGD, CharLM, python_text
steps = int(sys.argv[1])
ids, vocab = python_text()
model = CharLM(vocab, context=8, d_emb=32, hidden=256, layers=1)
opt, rng, batch = SGD(model.params, 0.05, 0.9), np.random.default_rng(0), 64
dev = model.batch(ids[-10000:], np.random.default_rng(1), 256)
start = time.perf_counter()
for step in range(1, steps + 1):
    model.train_step(*model.batch(ids[:-10000], rng, batch), opt)
    if step % 10 == 0:
        print(f"step {step} val_loss {model.evaluate(*dev):.4f} tokens {step * batch} "
              f"elapsed {time.perf_counter() - start:.6f}", flush=True)
'''
TRAIN_PATTERN = r"step (?P<step>\d+) val_loss (?P<val_loss>[\d.]+) tokens (?P<tokens>\d+) elapsed (?P<elapsed>[\d.]+)"


def _study(tmp: Path, name: str, objective: Any, fixed: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"study": name, "objective": objective, "metrics": {"val_loss": "minimize"}, "n_trials": 1,
            "sampler": {"name": "random", "options": {"seed": 0}}, "fixed": fixed, **extra}


def _command(tmp: Path, script: str, pattern: str | None = None, **more: Any) -> dict[str, Any]:
    return {"command": [sys.executable, script], "args": None, "cwd": str(tmp), "pattern": pattern, **more}


def one_trial(tmp: Path, data: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """(the trial's user attributes, the session) of a one-trial study on a fresh SQLite file."""
    url = f"sqlite:///{tmp / (data['study'] + '.db')}"
    session = open_session(parse_spec(data, "command_overhead"), url, artifacts=str(tmp / "artifacts"))
    study = run(session, n_trials=1, out=io.StringIO())
    return study.trials[-1].user_attrs, session


def per_report(tmp: Path, repeats: int, n1: int, n2: int) -> None:
    print(f"(a) per-report overhead: slope of the trial's wall seconds between {n1} and {n2} reports, "
          f"median pruner, SQLite; {repeats} interleaved repeats")
    (tmp / "reports.py").write_text(SCRIPT_REPORTS)
    kinds = {
        "function (synthetic)": lambda n: ("objectives.synthetic:train", {"steps": n, "seconds_per_step": 0.01}),
        "command, stdout regex": lambda n: (_command(tmp, "reports.py", PATTERN), {"steps": n, "mode": "stdout"}),
        "command, JSON lines": lambda n: (_command(tmp, "reports.py"), {"steps": n, "mode": "json"}),
    }
    slopes: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(repeats):
        for i, (kind, make) in enumerate(kinds.items()):
            walls = []
            for n in (n1, n2):
                objective, fixed = make(n)
                attrs, _ = one_trial(tmp, _study(tmp, f"a{r}_{i}_{n}", objective, fixed,
                                                 pruners=[{"name": "median"}]))
                walls.append(attrs["wall_seconds"])
            slopes[kind].append((walls[1] - walls[0]) / (n2 - n1))
    base = statistics.median(slopes["function (synthetic)"])
    for kind, values in slopes.items():
        m = statistics.median(values)
        print(f"  {kind:22s} {m * 1e3:7.3f} ms/report  (runs: {' '.join(f'{v * 1e3:.3f}' for v in values)})"
              + ("" if kind.startswith("function") else f"  vs function: {(m - base) * 1e3:+.3f} ms (goal: <= +1 ms)"))


def prune_to_gone(tmp: Path, repeats: int, grace: float) -> None:
    print(f"(b) prune decision -> process group gone (threshold pruner at step 5, grace_seconds {grace:g}); "
          f"{repeats} runs each")
    (tmp / "reports.py").write_text(SCRIPT_REPORTS)
    for ignore, goal in ((False, 1.0), (True, grace + 1.0)):
        delays = []
        for r in range(repeats):
            data = _study(tmp, f"b{int(ignore)}_{r}", _command(tmp, "reports.py", PATTERN, grace_seconds=grace),
                          {"steps": 100000, "mode": "stdout", "sleep": 0.01, "ignore_term": ignore},
                          pruners=[{"name": "threshold", "options": {"upper": 0.0, "n_warmup_steps": 4}}])
            _, session = one_trial(tmp, data)
            delays.append(session.train.stop_seconds)
        what = "ignores SIGTERM" if ignore else "exits on SIGTERM"
        print(f"  script that {what:16s} median {statistics.median(delays):.3f} s, max {max(delays):.3f} s "
              f"(goal: < {goal:g} s: {'met' if max(delays) < goal else 'MISSED'})")


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _rate_bare(tmp: Path, steps: int) -> tuple[float, float]:
    """(tokens per wall second of the training loop, tokens per CPU second of the script)."""
    cpu = _child_cpu()
    out = subprocess.run([sys.executable, str(tmp / "train.py"), str(steps)],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    last = out.stdout.strip().splitlines()[-1].split()
    return float(last[5]) / float(last[7]), float(last[5]) / (_child_cpu() - cpu)  # tokens / elapsed


BUSY: list[tuple[float, float]] = []  # hpo's (CPU seconds, wall seconds) while each script ran


def _rate_hpo(tmp: Path, steps: int, index: int) -> tuple[float, float]:
    command = _command(tmp, "train.py", TRAIN_PATTERN)
    command["command"] += [str(steps)]
    cpu = _child_cpu()
    attrs, session = one_trial(tmp, _study(tmp, f"c{index}", command, {}))
    BUSY.append(session.train.busy)
    return attrs["tokens"] / attrs["elapsed"], attrs["tokens"] / (_child_cpu() - cpu)


def tokens_per_second(tmp: Path, repeats: int, steps: int) -> None:
    print(f"(c) tokens/s of a numpy char-LM ({steps} steps, batch 64, a report every 10 steps), bare vs as an "
          f"hpo command; {repeats} interleaved pairs")
    (tmp / "train.py").write_text(SCRIPT_TRAIN)
    shutil.copy(TINYNET, tmp / "tinynet.py")
    _rate_bare(tmp, 20)  # warm the file cache
    pairs, cpu_pairs, rates = [], [], {"bare": [], "hpo": []}
    for i in range(repeats):
        order = ("bare", "hpo") if i % 2 == 0 else ("hpo", "bare")
        got = {k: _rate_bare(tmp, steps) if k == "bare" else _rate_hpo(tmp, steps, i) for k in order}
        for k, v in got.items():
            rates[k].append(v[0])
        pairs.append(got["hpo"][0] / got["bare"][0])
        cpu_pairs.append(got["hpo"][1] / got["bare"][1])
        print(f"  pair {i}: bare {got['bare'][0]:8.0f}  hpo {got['hpo'][0]:8.0f} tok/s  hpo/bare {pairs[-1]:.3f}"
              f"   per CPU second of the script: hpo/bare {cpu_pairs[-1]:.3f}", flush=True)
    m = statistics.median(pairs)
    q1, _, q3 = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else (m, m, m)
    print(f"  median bare {statistics.median(rates['bare']):.0f}, hpo {statistics.median(rates['hpo']):.0f} tok/s; "
          f"hpo/bare median {m:.3f}, quartiles {q1:.3f}..{q3:.3f} (goal: >= 0.99: {'met' if m >= 0.99 else 'MISSED'}); "
          f"per CPU second {statistics.median(cpu_pairs):.3f}")
    cpu, wall = (sum(x) for x in zip(*BUSY))
    print(f"  hpo's own CPU while the scripts ran: {cpu:.2f} s in {wall:.1f} s, {100 * cpu / wall:.1f}% of one core "
          "(what it can take from training on a full machine)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n1", type=int, default=100)
    parser.add_argument("--n2", type=int, default=1000)
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--pairs", type=int, default=11, help="bare/hpo pairs for (c): its noise is other load")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        per_report(Path(tmp), args.repeats, args.n1, args.n2)
        prune_to_gone(Path(tmp), args.repeats, args.grace)
        tokens_per_second(Path(tmp), args.pairs, args.steps)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
