"""Past one machine: throughput through --workers, --ray and --ray + gRPC proxy, and storage
latency at 16 workers, direct PostgreSQL vs the proxy (issue 20). One run, side by side.

1. **Trials per hour** of a tiny sleep-based objective (``objectives.synthetic``, ``--steps``
   steps of ``--sleep`` s: the point is scheduling overhead, not compute) with 1, 2 and 4
   workers, ``--trials-per-worker`` trials each, random sampler, on PostgreSQL:
   one bare ``hpo optimize`` process; ``--workers N``; ``--ray`` (a local Ray started by the
   command, ``cpus_per_worker: 0.25``) with ``--workers N``; the same through ``hpo storage-proxy``.
   Trials/hour counts the study's trials from the first start to the last completion (the
   command's start-up is printed apart, as "wall"). Goal: through ``--ray``, N workers >= 0.9 N
   times the bare worker.
2. **Latency with 16 concurrent workers** on a study of ``--finished`` finished trials (40-step
   curves): median and p90 of one ``report()`` + pruning decision (hpo's reporter, median
   pruner) and of one sampler proposal (TPE, ``ask`` + the spec's suggestions), each worker
   started together after one warm-up read, direct PostgreSQL vs ``grpc://``. Goal: the proxy
   no worse than direct. Also one worker's report alone: direct (one transaction), the proxy's
   one-call ``Report``, and the public-API fallback ``CurveWriter`` uses on other storages.

    python benchmarks/scale_out.py [--pg ADMIN_URL] [--trials-per-worker 8] [--finished 5000]

Runs in a scratch database it creates on the server and drops at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from sqlalchemy import create_engine, text

from hpo.run.trial import new_reporter
from hpo.specs.space import suggest_config
from hpo._optuna import metric_key
from hpo.storage.backend import CurveWriter, open_storage

from storage_bench import STEPS, bulk_add, finished_trial, open_bench_session, percentiles, timed_reports

WORKERS = (1, 2, 4)
LATENCY_WORKERS = 16
PROPOSALS, REPORTS = 4, 10  # per latency worker; the first proposal is a warm-up, not counted


def env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def scratch_db(admin: str) -> str:
    name = f"hpo_scale_out_{uuid.uuid4().hex[:8]}"
    with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_db(admin: str, url: str) -> None:
    with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


class Proxy:
    """``hpo storage-proxy`` in front of ``url`` on a free loopback port, for a ``with`` block."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "hpo", "storage-proxy", "--storage", url, "--port", "0"],
                                     env=env(), stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()  # type: ignore[union-attr]
        found = re.search(r"grpc://127\.0\.0\.1:\d+", line)
        if not found:
            self.proc.kill()
            raise SystemExit(f"the proxy did not start: {line}")
        self.url = found.group(0)

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# --- 1. trials per hour ----------------------------------------------------------------------
def spec_file(tmp: Path, name: str, steps: int, sleep: float) -> Path:
    path = tmp / "search_spaces" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "study": name, "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
        "sampler": {"name": "random"}, "cpus_per_worker": 0.25,
        "fixed": {"steps": steps, "sleep_per_step": sleep},
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}}}, sort_keys=False))
    return path


def throughput(way: str, n: int, trials: int, db: str, storage: str, tmp: Path, steps: int,
               sleep: float) -> tuple[float, float]:
    """(trials/hour from the first trial's start to the last one's end, wall seconds of the command)."""
    name = f"{re.sub('[^a-z]+', '', way)}-{n}-{uuid.uuid4().hex[:6]}"  # "--ray + proxy" -> rayproxy
    spec_file(tmp, name, steps, sleep)
    cmd = [sys.executable, "-m", "hpo", "optimize", "--study", name, "--storage", storage,
           "--n-trials", str(trials), "--artifacts", str(tmp / "artifacts")]
    if way != "bare":
        cmd += ["--workers", str(n)]
    if way.startswith("--ray"):
        cmd += ["--ray"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=tmp, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{way} {n}: exit {done.returncode}: {done.stderr[-2000:]}")
    study = optuna.load_study(study_name=name, storage=open_storage(db))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == trials == len(study.trials), f"{way} {n}: {len(study.trials)} trials, {trials} asked"
    span = (max(t.datetime_complete for t in complete) - min(t.datetime_start for t in complete)).total_seconds()
    return trials / span * 3600, wall


def part_throughput(args: argparse.Namespace, db: str, tmp: Path) -> None:
    per_trial = args.steps * args.sleep
    print(f"1. trials/hour, {args.steps} steps x {args.sleep} s sleep (~{per_trial:g} s a trial), "
          f"{args.trials_per_worker} trials per worker, random sampler, PostgreSQL; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"   ceiling of one worker: {3600 / per_trial:.0f}/h (sleep alone)")
    print(f"{'way':<18}" + "".join(f"{f'N={n}':>10}" for n in WORKERS)
          + "".join(f"{f'N={n}/bare':>10}" for n in WORKERS[1:]) + "   wall s (start-up included)")
    bare, _ = throughput("bare", 1, args.trials_per_worker, db, db, tmp, args.steps, args.sleep)
    print(f"{'bare hpo optimize':<18}{bare:10.0f}", flush=True)
    with Proxy(db) as grpc_url:
        for way, storage in (("--workers", db), ("--ray", db), ("--ray + proxy", grpc_url)):
            rates, walls = [], []
            for n in WORKERS:
                rate, wall = throughput(way, n, n * args.trials_per_worker, db, storage, tmp, args.steps, args.sleep)
                rates.append(rate)
                walls.append(wall)
            ratios = [r / bare for r in rates[1:]]
            goal = "" if way != "--ray" else "  goal >= 0.9 N: " + ", ".join(
                f"N={n} {'met' if r >= 0.9 * n else 'NOT met'}" for n, r in zip(WORKERS[1:], ratios))
            print(f"{way:<18}" + "".join(f"{r:10.0f}" for r in rates) + "".join(f"{r:9.2f}x" for r in ratios)
                  + "   " + " / ".join(f"{w:.0f}" for w in walls) + goal, flush=True)


# --- 2. latency at 16 workers ----------------------------------------------------------------
def latency_worker(job: dict[str, Any]) -> None:
    """One of the 16: warm up, say ready, wait for "go", then time proposals and reports."""
    session = open_bench_session(job["url"], job["study"], job["artifacts"])
    session.study.get_trials(deepcopy=False)  # the first full read (a cache fills), not measured
    print("ready", flush=True)
    sys.stdin.readline()
    proposals, reports = [], []
    for p in range(PROPOSALS):
        t0 = time.perf_counter()
        trial = session.study.ask()
        suggest_config(trial, session.spec)
        if p:
            proposals.append(time.perf_counter() - t0)
        report = new_reporter(session, trial, {})
        reports += timed_reports(report, REPORTS)
        report.close()
        session.study.tell(trial, 1.0 + 3 / REPORTS)
    print(json.dumps({"proposals": proposals, "reports": reports}), flush=True)


def concurrent(url: str, name: str, tmp: Path) -> tuple[list[float], list[float]]:
    job = json.dumps({"url": url, "study": name, "artifacts": str(tmp / "artifacts")})
    procs = [subprocess.Popen([sys.executable, __file__, "--latency-worker", job],
                              env=env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(LATENCY_WORKERS)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    proposals: list[float] = []
    reports: list[float] = []
    for p in procs:
        out = json.loads(p.stdout.readline())  # type: ignore[union-attr]
        proposals += out["proposals"]
        reports += out["reports"]
        p.wait()
    return proposals, reports


def one_worker_reports(db: str, grpc_url: str, name: str, tmp: Path) -> dict[str, list[float]]:
    """One worker alone: direct RDB, the proxy's Report call, and the public-API fallback."""
    out: dict[str, list[float]] = {}
    for label, url, fallback in (("direct (1 transaction)", db, False), ("proxy Report (1 call)", grpc_url, False),
                                 ("proxy public API (2 calls)", grpc_url, True)):
        session = open_bench_session(url, name, tmp / "artifacts")
        times = out.setdefault(label, [])
        for _ in range(3):
            trial = session.study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
            report = new_reporter(session, trial, {})
            if fallback:
                report._writer._remote = None  # what CurveWriter does on any storage without write_report
            times += timed_reports(report, STEPS)
            report.close()
            stored = open_storage(db).get_trial(trial._trial_id)
            durable = len(stored.intermediate_values) == STEPS and metric_key(STEPS) in stored.system_attrs
            assert durable, "durable on return"
            session.study.tell(trial, 1.0)
        assert isinstance(report._writer, CurveWriter)
    return out


def part_latency(args: argparse.Namespace, db: str, tmp: Path) -> None:
    name = f"latency-{uuid.uuid4().hex[:6]}"
    study = optuna.create_study(study_name=name, storage=open_storage(db))
    t0 = time.perf_counter()
    bulk_add(study, [finished_trial(i) for i in range(args.finished)])
    print(f"\n2. latency, {LATENCY_WORKERS} concurrent worker processes, a study of {args.finished} finished trials "
          f"x {STEPS} steps (written in {time.perf_counter() - t0:.0f} s); TPE, median pruner; "
          f"{PROPOSALS - 1} proposals and {(PROPOSALS) * REPORTS} reports per worker; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'storage':<28}{'report median':>14}{'p90':>9}{'proposal median':>17}{'p90':>9}")
    rows = {}
    with Proxy(db) as grpc_url:
        for label, url in (("direct PostgreSQL", db), ("gRPC proxy", grpc_url)):
            proposals, reports = concurrent(url, name, tmp)
            rows[label] = (percentiles(reports), percentiles(proposals))
            (rm, r90), (pm, p90) = rows[label]
            print(f"{label:<28}{rm:12.2f}ms{r90:7.1f}ms{pm:15.1f}ms{p90:7.0f}ms", flush=True)
        (dr, _), (dp, _) = rows["direct PostgreSQL"]
        (gr, _), (gp, _) = rows["gRPC proxy"]
        print(f"goal: proxy no worse than direct: report {gr / dr:.2f}x -> {'met' if gr <= dr else 'NOT met'}, "
              f"proposal {gp / dp:.2f}x -> {'met' if gp <= dp else 'NOT met'}")
        print("\none worker alone, 3 trials x 40 reports each (all durable on return: checked)")
        for label, times in one_worker_reports(db, grpc_url, name, tmp).items():
            m, q = percentiles(times)
            print(f"{label:<28}{m:12.2f}ms{q:7.1f}ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL URL whose server this may create a scratch database on")
    parser.add_argument("--trials-per-worker", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per step")
    parser.add_argument("--finished", type=int, default=5000)
    parser.add_argument("--skip", choices=["throughput", "latency"], help="leave one part out")
    parser.add_argument("--latency-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # GrpcStorageProxy
    if args.latency_worker:
        latency_worker(json.loads(args.latency_worker))
        return
    db = scratch_db(args.pg)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.skip != "throughput":
                part_throughput(args, db, Path(tmp))
            if args.skip != "latency":
                part_latency(args, db, Path(tmp))
    finally:
        drop_db(args.pg, db)


if __name__ == "__main__":
    main()
