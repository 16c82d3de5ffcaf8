"""Several worker processes on one machine, each with its share of CPU threads or one GPU.

Each worker is the same ``hpo optimize`` command without ``--workers``: they share the
study through the storage, so ``--n-trials`` stays the study's total, and workers on other
machines join the same way (same command, same PostgreSQL or MySQL URL).

The workers' stderr comes through the parent line by line (one line per trial, not several
progress bars overwriting each other), and an ``error:`` line that another worker already
printed is dropped: a misspelled objective is one error line, not one per worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

WORKER_ENV = "HPO_WORKER"  # a worker's number, set in each worker's environment


def without_workers(argv: list[str]) -> list[str]:
    """A worker's command line: ``argv`` without ``--workers N`` (each worker is one process).

    Args:
        argv: the ``hpo optimize`` arguments as given.
    """
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def worker_env(index: int, n_workers: int, n_gpus: int, cores: int | None = None) -> dict[str, str]:
    """Environment of worker ``index``: its CPU threads and, on a CUDA machine, its GPU."""
    env = dict(os.environ)
    threads = max(1, (cores or os.cpu_count() or 1) // n_workers)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env[WORKER_ENV] = str(index)
    if n_gpus > 0:
        env["CUDA_VISIBLE_DEVICES"] = str(index % n_gpus)
    return env


class ErrorOnce:
    """Copies lines to ``out``; an ``error:`` line already copied once is dropped."""

    def __init__(self, out: IO[str]) -> None:
        self.out, self.lock = out, threading.Lock()
        self.seen: set[str] = set()

    def pump(self, stream: IO[str]) -> None:
        for line in stream:
            with self.lock:
                if line.startswith("error:"):
                    if line in self.seen:
                        continue
                    self.seen.add(line)
                self.out.write(line)
                self.out.flush()


def run_workers(argv: list[str], n_workers: int) -> int:
    """Run ``python -m hpo <argv>`` in ``n_workers`` processes; forward SIGINT/SIGTERM."""
    n_gpus = gpu_count()
    procs = [subprocess.Popen([sys.executable, "-m", "hpo", *argv], env=worker_env(i, n_workers, n_gpus),
                              stderr=subprocess.PIPE, text=True, bufsize=1)
             for i in range(n_workers)]
    errors = ErrorOnce(sys.stderr)
    pumps = [threading.Thread(target=errors.pump, args=(p.stderr,), daemon=True) for p in procs]
    for t in pumps:
        t.start()

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
        for t in pumps:
            t.join()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return max(codes, key=abs)
