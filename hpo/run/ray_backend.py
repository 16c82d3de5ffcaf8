"""``hpo optimize --ray [ADDRESS]``: a study's workers as Ray tasks on every node of a cluster.

A backend only: it places workers, it does not run trials. Each worker is the same
``python -m hpo optimize`` command as a ``--workers`` process (:mod:`hpo.run.workers`), started
by a Ray task on its node, so the trial loop, the study lock, heartbeats and retries are the
ones every worker uses and ``--n-trials`` stays the study's total. Placement: one worker per
GPU (``num_gpus=1``) on a GPU node, ``cpus_per_worker`` of the spec (default 1) per worker on a
CPU node, each task pinned softly to its node. A worker whose Ray worker process or node dies
is started again by Ray (``max_retries``); the trial it was running is failed and re-queued
from its checkpoint by the heartbeat (or, on the same node, the dead-process check) like any
dead worker's.

The driver prints the progress (one line per finished trial, from the storage) and the
summary; what the workers said besides their progress comes after, each line once.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.errors import SpecError

if TYPE_CHECKING:  # a Ray task imports this module: it stays light
    from hpo.specs.models import StudySpec

LOCAL = "local"
FINISHED = ("COMPLETE", "PRUNED", "FAIL")  # trial state names
POLL_SECONDS = 0.5
MAX_RETRIES = 3  # times Ray starts a lost worker again; rounds of workers the driver starts again
# A worker's own progress and study line: the driver prints the progress for all of them.
PROGRESS_LINE = re.compile(r"^(\[\d+/\d+\] trial \d+ |study \S+ in \S+$)")
FIX_EXTRA = 'pip install -e ".[ray]"'


@dataclass(frozen=True)
class Slot:
    """One worker's place: its node and what it asks Ray for."""

    node_id: str
    num_gpus: float
    num_cpus: float
    threads: int  # OMP_NUM_THREADS: the CPUs per GPU on a GPU node, else its CPU share


def plan_slots(nodes: list[dict[str, Any]], cpus_per_worker: float, limit: int | None = None) -> list[Slot]:
    """Workers for the alive ``nodes`` of ``ray.nodes()``: one per GPU on a GPU node, else
    ``floor(CPUs / cpus_per_worker)``; taken round-robin over the nodes up to ``limit``.

    Args:
        nodes: ``ray.nodes()`` entries (``NodeID``, ``Alive``, ``Resources``).
        cpus_per_worker: the spec's CPU share of one worker on a CPU node.
        limit: at most this many workers (None: as many as the cluster holds).
    """
    per_node: list[list[Slot]] = []
    for node in nodes:
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        cpus, gpus = res.get("CPU", 0), int(res.get("GPU", 0))
        if gpus:
            per_node.append([Slot(node["NodeID"], 1, 0, max(1, int(cpus // gpus)))] * gpus)
        else:
            n = int(cpus / cpus_per_worker + 1e-9)
            per_node.append([Slot(node["NodeID"], 0, cpus_per_worker, max(1, int(cpus_per_worker)))] * n)
    slots = [s for rank in range(max(map(len, per_node), default=0))
             for node in per_node if rank < len(node) for s in [node[rank]]]
    return slots if limit is None else slots[:limit]


def worker_argv(argv: list[str]) -> list[str]:
    """The ``hpo optimize`` arguments of one worker: the driver's without ``--ray`` and ``--workers``."""
    from hpo.run.workers import without_workers

    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--ray":
            i += 1 if i + 1 < len(argv) and not argv[i + 1].startswith("-") else 0
        elif not argv[i].startswith("--ray="):
            out.append(argv[i])
        i += 1
    return without_workers(out)


def workers_given(argv: list[str]) -> bool:
    return any(a == "--workers" or a.startswith("--workers=") for a in argv)


# --- on a node ---------------------------------------------------------------------------------
def worker_main(parent: int, argv: list[str]) -> int:
    """``python -m hpo.run.ray_backend PARENT ARGS``: ``python -m hpo ARGS`` that dies with ``PARENT``,
    the Ray worker that started it, so a lost node leaves no worker running on (Linux).

    The process becomes ``python -m hpo ARGS`` (``exec``, same process): the death signal
    stays set across it. Returns only if ``PARENT`` is gone already (1).

    Args:
        parent: the process ID of the Ray worker that started this one.
        argv: the worker's ``hpo`` arguments.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the heartbeat still fails its trials
        pass
    if os.getppid() != parent:
        return 1  # the parent died before the line above
    os.execv(sys.executable, [sys.executable, "-m", "hpo", *argv])


def run_worker(argv: list[str], cwd: str, env: dict[str, str], index: int, threads: int) -> tuple[int, list[str]]:
    """The body of one Ray task: ``python -m hpo optimize ...`` on this node until the study is full.

    Args:
        argv: the worker's arguments (:func:`worker_argv`).
        cwd: the driver's working directory (the spec, relative paths); every node must see it.
        env: the driver's ``HPO_*`` variables.
        index: the worker's number (``$HPO_WORKER``).
        threads: its CPU threads (``OMP_NUM_THREADS``); Ray sets ``CUDA_VISIBLE_DEVICES``.

    Returns:
        The exit code and the lines it printed besides its progress.
    """
    import ray

    from hpo.run.workers import worker_env

    node = ray.get_runtime_context().get_node_id()
    host = env.get("HPO_HOST") or socket.gethostname()
    if not os.path.isdir(cwd):
        return 2, [f"error: command line: --ray: {cwd} does not exist on {host} "
                   "(fix: run from a directory every node sees, e.g. a shared file system)\n"]
    proc_env = {**worker_env(index, 1, 0, cores=threads), **env, "HPO_HOST": f"{host}/ray-{node[:8]}"}
    proc = subprocess.Popen([sys.executable, "-m", "hpo.run.ray_backend", str(os.getpid()), *argv], cwd=cwd,
                            env=proc_env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    said: list[str] = []
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            if not PROGRESS_LINE.match(line):
                said.append(line)
        return proc.wait(), said
    except KeyboardInterrupt:  # ray.cancel: stop like Ctrl-C (the trial is failed and re-queued)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(), said


# --- on the driver -----------------------------------------------------------------------------
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SpecError(f"command line: --ray: Ray is not installed (fix: {FIX_EXTRA})") from None
    return ray


def _check_address(address: str) -> None:
    """``local``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``, and for the last two something
    listening there (Ray itself would retry for minutes)."""
    if address == "auto" and os.environ.get("RAY_ADDRESS", "auto") != "auto":
        address = os.environ["RAY_ADDRESS"]  # what Ray will use
    if address in (LOCAL, "auto"):
        return
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = rest.rstrip("/").rpartition(":")
    if "://" in rest or not host or not port.isdigit():
        raise SpecError(f"command line: --ray: '{address}' is not auto, ray://HOST:PORT or HOST:PORT "
                        "(fix: e.g. --ray auto on a cluster node, --ray ray://head:10001 from outside)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as e:
        raise SpecError(f"command line: --ray: nothing answers at {host}:{port} ({e.strerror or e}) "
                        "(fix: start the cluster with `ray start --head`, or check the address)") from None


def connect(address: str) -> Any:
    """``ray.init`` for ``address``; ``local`` starts a Ray on this machine, bound to 127.0.0.1."""
    _check_address(address)
    if address == LOCAL:
        # Ray's switch for a one-machine Ray (its default on macOS and Windows): every process
        # on 127.0.0.1, none reachable from the network.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = _import_ray()
    sigterm = signal.getsignal(signal.SIGTERM)
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address == LOCAL:
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SpecError(f"command line: --ray: cannot connect to {address}: {first} "
                        "(fix: `ray start --head` first, or set RAY_ADDRESS / give the address)") from None
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # ray.init takes SIGTERM; Ctrl-C semantics stay hpo's
    return ray


def _check_storage(url: str, n_nodes: int) -> None:
    from hpo.storage.backend import JOURNAL_PREFIX, redact

    if n_nodes > 1 and (url.startswith("sqlite") or url.startswith(JOURNAL_PREFIX)):
        raise SpecError(f"command line: --ray: the cluster has {n_nodes} nodes but the storage {redact(url)} "
                        "is one machine's file (fix: --storage postgresql+psycopg://... or the grpc://HOST:PORT "
                        "of `hpo storage-proxy`)")


def run_on_ray(spec: StudySpec, address: str, argv: list[str], *, storage: str | None, n_trials: int | None,
               timeout: float | None, workers: int | None, heartbeat: int, grace: int | None,
               max_retry: int) -> int:
    """Run the study's workers on the Ray cluster at ``address`` until it holds its total.

    Args:
        spec: the study's spec (its objective is imported on the nodes, not here).
        address: ``local``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT`` (``--ray``).
        argv: the driver's ``hpo optimize`` arguments (a worker's are these without ``--ray``
            and ``--workers``: :func:`worker_argv`).
        storage: the storage URL (``--storage``; None: the default).
        n_trials: the study's total (None: the spec's ``n_trials``).
        timeout: ``--timeout``: no trial starts after this many seconds.
        workers: at most this many workers (None: as many as the cluster holds).
        heartbeat: heartbeat interval in seconds (0: off); the driver fails dead workers' trials.
        grace: seconds without heartbeat before a trial is dead (None: 4x ``heartbeat``).
        max_retry: times a dead trial is re-queued.
    """
    from hpo.run.retries import RetryFromCheckpoint
    from hpo.run.reaping import stale_trial_callback
    from hpo.run.session import load_study
    from hpo.storage.backend import JOURNAL_PREFIX, open_storage, redact, resolve_url

    ray = connect(address)
    try:
        url = resolve_url(storage)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        _check_storage(url, len(nodes))
        beats: dict[str, Any] = {}
        if heartbeat > 0 and not url.startswith(JOURNAL_PREFIX):  # the driver fails dead workers' trials too
            beats = dict(heartbeat_interval=heartbeat, grace_period=grace or 4 * heartbeat,
                         heartbeat_stale_trial_callback=stale_trial_callback(RetryFromCheckpoint(max_retry)))
        study = load_study(spec, open_storage(url, **beats))  # create it once, before the workers race
        driver = Driver(ray, study, n_trials or spec.n_trials, spec.cpus_per_worker or 1,
                        worker_argv(argv), watch_running=bool(beats), timeout=timeout)
        slots = driver.slots(workers)
        print(f"study {spec.study} in {redact(url)}: {len(slots)} workers on "
              f"{len({s.node_id for s in slots})} of {len(nodes)} Ray nodes", file=sys.stderr, flush=True)
        return driver.run(slots)
    finally:
        ray.shutdown()


class Driver:
    """Starts the workers, prints a line per finished trial, and sees the study to its total.

    A worker stops when the study holds its total, counting running trials; if one of those
    was a lost worker's, the driver fails it by its heartbeat (so it is re-queued) and starts
    workers again for what is left.

    Args:
        ray: the connected ``ray`` module.
        study: the study, on a storage with heartbeats when ``watch_running``.
        total: the study's total (``--n-trials``).
        cpus_per_worker: the spec's CPU share of a worker on a CPU node.
        argv: a worker's ``hpo optimize`` arguments.
        watch_running: whether running trials can be judged by heartbeat (else they are left).
        timeout: ``--timeout``: workers stop starting trials after it, and no more are started.
    """

    def __init__(self, ray: Any, study: Any, total: int, cpus_per_worker: float, argv: list[str],
                 watch_running: bool, timeout: float | None = None) -> None:
        from hpo.run.progress import Progress
        from hpo.run.loop import COUNTED

        self.ray, self.study, self.total, self.argv = ray, study, total, argv
        self.cpus_per_worker, self.watch_running = cpus_per_worker, watch_running
        self.counts = {state.name for state in COUNTED}  # toward the total: all but FAIL
        trials = study.get_trials(deepcopy=False)
        self.seen = {t.number for t in trials if t.state.name in FINISHED}
        self.progress = Progress(study, total, sys.stderr)
        self.codes: list[int] = []
        self.said: list[str] = []
        self.started = 0
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def tally(self, trials: list[Any]) -> tuple[int, int, int]:
        """Trials counted toward the total, waiting, and running, in one snapshot."""
        names = [t.state.name for t in trials]
        return sum(n in self.counts for n in names), names.count("WAITING"), names.count("RUNNING")

    def slots(self, want: int | None) -> list[Slot]:
        """Places for the workers still useful: at most one per trial left to run."""
        counted, waiting, _ = self.tally(self.study.get_trials(deepcopy=False))
        useful = max(1, waiting + self.total - counted)
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        slots = plan_slots(nodes, self.cpus_per_worker, min(want or useful, useful))
        if not slots:
            raise SpecError(f"command line: --ray: no node has a GPU or {self.cpus_per_worker:g} CPUs for "
                            "a worker (fix: lower cpus_per_worker in the spec, or add nodes)")
        return slots

    def submit(self, slots: list[Slot]) -> list[Any]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        env = {k: v for k, v in os.environ.items() if k.startswith("HPO_")}
        task = self.ray.remote(run_worker)
        refs = [task.options(num_gpus=s.num_gpus, num_cpus=s.num_cpus, max_retries=MAX_RETRIES,
                             retry_exceptions=False,
                             scheduling_strategy=NodeAffinitySchedulingStrategy(s.node_id, soft=True))
                .remote(self.argv, os.getcwd(), env, self.started + i, s.threads)
                for i, s in enumerate(slots)]
        self.started += len(refs)
        return refs

    def show(self, trials: list[Any]) -> None:
        """A progress line for each trial finished since the last call (``trials``: one snapshot)."""
        for t in sorted((t for t in trials if t.state.name in FINISHED and t.number not in self.seen),
                        key=lambda t: t.datetime_complete or t.datetime_start):
            self.seen.add(t.number)
            self.progress.finished(t)

    def collect(self, ready: list[Any]) -> None:
        for ref in ready:
            try:
                code, lines = self.ray.get(ref)
            except self.ray.exceptions.RayError as e:
                code, lines = 1, [f"error: a Ray worker was lost {MAX_RETRIES + 1} times: {type(e).__name__}\n"]
            self.codes.append(code)
            self.said.extend(lines)

    def run(self, slots: list[Slot]) -> int:
        from hpo.run.reaping import fail_stale_trials

        pending, rounds = self.submit(slots), 1
        try:
            while True:
                ready: list[Any] = []
                if pending:
                    ready, pending = self.ray.wait(pending, num_returns=len(pending), timeout=POLL_SECONDS)
                else:
                    time.sleep(POLL_SECONDS)
                self.collect(ready)
                fail_stale_trials(self.study)  # no-op without heartbeats
                trials = self.study.get_trials(deepcopy=False)
                self.show(trials)
                counted, waiting, running = self.tally(trials)
                if counted >= self.total and not waiting and not running:
                    self.stop(pending)  # the study is full: workers left only print their summaries
                    break
                if pending:
                    continue
                if any(self.codes) or (self.deadline is not None and time.monotonic() >= self.deadline):
                    break
                if rounds > MAX_RETRIES:
                    self.codes.append(1)
                    self.said.append(f"error: workers were started {rounds} times and the study still lacks "
                                     "trials (fix: re-run the same command to continue)\n")
                    break
                if waiting or counted < self.total:
                    pending, rounds = self.submit(self.slots(None)), rounds + 1
                elif not self.watch_running:
                    break  # running trials of workers elsewhere, or lost ones no heartbeat can tell
        except KeyboardInterrupt:
            self.stop(pending)
            print("interrupted: the running trials are marked FAIL; re-run the same command to continue",
                  file=sys.stderr)
            return 130
        for line in dict.fromkeys(self.said):  # each line once, in order (a bad objective: one error, not N)
            sys.stderr.write(line)
        from hpo.analysis.tables import summary  # pandas: not needed before the end

        print(summary(self.study))
        return max(self.codes, key=abs, default=0)

    def stop(self, pending: list[Any]) -> None:
        """Cancel ``pending`` workers (each stops like Ctrl-C: its trial is failed and re-queued)."""
        for ref in pending:
            self.ray.cancel(ref)
        self.ray.wait(pending, num_returns=len(pending), timeout=30)


if __name__ == "__main__":
    sys.exit(worker_main(int(sys.argv[1]), sys.argv[2:]))
