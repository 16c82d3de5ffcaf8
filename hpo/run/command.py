"""Command objectives: a training program run as its own process, one per trial.

A spec's ``objective:`` may be a mapping with ``command:`` instead of ``module:function``::

    objective:
      command: [python, train.py, --steps, "5000"]
      args: "--{name}={value}"     # each config entry as arguments (W&B's ${args}); null: none
      pattern: 'step:(?P<step>\\d+)/\\d+ val_loss:(?P<val_loss>[\\d.]+) train_time:(?P<train_ms>\\d+)ms'
      clock: {group: train_ms, unit: ms}   # reported in seconds as the target's clock

:class:`CommandObjective` is a training function like any other (``(config, report)``), so
the runner treats both alike. Each call starts the command in its own process group, in
``cwd`` (default: the spec file's directory) with the environment plus ``env``, and passes
the config three ways: as arguments, as JSON in ``$HPO_CONFIG`` and in the file
``$HPO_CONFIG_FILE``. The program reports without importing ``hpo``, in one of two ways:

* with ``pattern``: stdout lines matched by the regular expression; its named groups are
  the step and the metrics (``clock`` converts a clock group to seconds);
* without: JSON lines (``{"step": 10, "val_loss": 2.5}``; ``{"result": {...}}`` for final
  metrics) written to the file named in ``$HPO_REPORT_FILE`` (a FIFO), e.g. by the
  stdlib-only ``hpo_report.py`` or by any language.

A report without the curve metric (a logged training loss) is held and merged into the next
one that has it. When ``report`` stops the trial (pruned, target reached, budget spent) the
process group gets SIGTERM, ``grace_seconds`` later SIGKILL, and the stop goes on to the
runner. A non-zero exit, or no output for ``silence_timeout`` seconds, fails the trial with
the last lines of stdout and stderr in the reason. ``$HPO_CHECKPOINT_DIR`` is the trial's own
directory (``config.json`` and ``output.log``, the full output, are there too) and
``$HPO_RESUME_DIR`` that of the failed trial it retries, if that one wrote anything.
The directory :data:`SHIMS` comes first on the program's ``PYTHONPATH``: ``import
hpo_report`` works, and ``import wandb`` gets a stand-in that reports to ``hpo``.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hpo.run.protocol import StopTrial
from hpo.specs.models import CommandSpec

SHIMS = Path(__file__).resolve().parents[1] / "shims"
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0, "h": 3600.0}
OWN_FILES = ("config.json", "output.log")  # what hpo itself writes into a trial's directory
TAIL_LINES = 8


class CommandFailed(Exception):
    """A trial's program failed: non-zero exit, silence, or it could not start."""


class CommandObjective:
    """A training function ``(config, report)`` that runs :class:`CommandSpec`'s program.

    For ``benchmarks/command_overhead.py``: ``stop_seconds`` is, for the last trial that
    ``report`` stopped, the seconds from that decision to its process group being gone;
    ``busy`` is (CPU seconds of this process, wall seconds) while the last trial's program ran.
    """

    def __init__(self, spec: CommandSpec, curve: str = "val_loss", clock: str = "train_seconds") -> None:
        self.spec, self.curve, self.clock = spec, curve, clock
        self.pattern = re.compile(spec.pattern) if spec.pattern else None
        self.stop_seconds: float | None = None
        self.busy: tuple[float, float] | None = None

    def __call__(self, config: dict[str, Any], report: Any) -> dict[str, float]:
        with tempfile.TemporaryDirectory(prefix="hpo-run-") as tmp:
            return _Run(self, config, report, Path(tmp)).run()

    def command_line(self, config: dict[str, Any], config_file: Path) -> list[str]:
        """``command`` with W&B's macros expanded; the config arguments go where ``${args}``
        stands, else at the end."""
        template = (self.spec.args or "").split()
        args = [t.format(name=k, value=_text(v)) for k, v in config.items() for t in template]
        expand = {"${interpreter}": [sys.executable], "${args}": args,
                  "${args_json}": [json.dumps(config)], "${args_json_file}": [str(config_file)]}
        line = [x for item in self.spec.command for x in expand.get(item, [item])]
        return line if "${args}" in self.spec.command else line + args

    def environment(self, config: dict[str, Any], files: dict[str, Path], report: Any) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.update({k: os.path.expandvars(v) for k, v in self.spec.env.items()})
        if self.spec.shims:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHIMS), env.get("PYTHONPATH")) if p)
        spec = getattr(report, "spec", None)
        env.update(HPO_CONFIG=json.dumps(config), HPO_CONFIG_FILE=str(files["config"]),
                   HPO_REPORT_FILE=str(files["reports"]), HPO_CHECKPOINT_DIR=str(files["dir"]),
                   HPO_TRIAL=str(getattr(report, "trial_number", "")), HPO_STUDY=getattr(spec, "study", ""))
        resume = _resume_dir(getattr(report, "retried_checkpoint_dirs", []))
        if resume is not None:
            env["HPO_RESUME_DIR"] = str(resume)
        return env


def _text(value: Any) -> str:
    """A config value as one command-line word: strings as they are, numbers and bools as
    Python writes them, anything else as JSON."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return str(value)
    return json.dumps(value)


def _resume_dir(dirs: list[Path]) -> Path | None:
    """The newest retried trial's directory holding a file the program wrote itself."""
    for d in dirs:
        if d.is_dir() and any(p.name not in OWN_FILES for p in d.iterdir()):
            return d.resolve()
    return None


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


class _Run:
    """One trial's process: start it, follow its output, forward reports, end it."""

    def __init__(self, objective: CommandObjective, config: dict[str, Any], report: Any, tmp: Path) -> None:
        self.o, self.spec, self.config, self.report = objective, objective.spec, config, report
        own = getattr(report, "checkpoint_dir", None)
        self.kept = own is not None  # else the trial's files go with the temporary directory
        self.dir = Path(own).resolve() if own is not None else tmp / "run"  # absolute: the child has its own cwd
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files = {"dir": self.dir, "config": self.dir / "config.json", "reports": tmp / "reports.fifo"}
        self.events: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self.tails = {"stderr": collections.deque(maxlen=TAIL_LINES), "stdout": collections.deque(maxlen=TAIL_LINES)}
        self.pending: dict[str, float] = {}
        self.result: dict[str, float] = {}
        self.reports = 0
        self.last_output = time.monotonic()
        self.proc: subprocess.Popen[bytes] | None = None
        self.writer: int | None = None  # our own writer keeps the FIFO from reading EOF between writers
        self.pumps: list[threading.Thread] = []
        self.log = None

    def run(self) -> dict[str, float]:
        try:
            self.start()
            cpu, wall = time.process_time(), time.perf_counter()
            self.follow()
            self.o.busy = (time.process_time() - cpu, time.perf_counter() - wall)
        except StopTrial:
            decided = time.perf_counter()
            self.end()
            self.o.stop_seconds = time.perf_counter() - decided
            raise
        finally:
            self.end()  # any way out (Ctrl-C, an error): no process outlives its trial
            self.close()
        code = self.proc.returncode if self.proc else None
        if code != 0:
            raise CommandFailed(self.failure(_exit_text(code)))
        return self.result

    def start(self) -> None:
        self.files["config"].write_text(json.dumps(self.config, indent=1) + "\n")
        fifo = self.files["reports"]
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.writer = os.open(fifo, os.O_WRONLY)
        os.set_blocking(reader, True)
        self.log = open(self.dir / "output.log", "w", buffering=1, errors="replace")
        line = self.o.command_line(self.config, self.files["config"])
        try:
            self.proc = subprocess.Popen(line, cwd=self.spec.cwd, env=self.o.environment(self.config, self.files,
                                                                                         self.report),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
        except OSError as e:
            os.close(reader)
            raise CommandFailed(f"cannot start {shlex.join(line[:3])}: {e.strerror or e} "
                                f"(fix: check objective.command in the spec)") from None
        for name, fd in (("stdout", self.proc.stdout.fileno()), ("stderr", self.proc.stderr.fileno()),
                         ("reports", reader)):
            t = threading.Thread(target=self.pump, args=(name, fd), daemon=True)
            t.start()
            self.pumps.append(t)

    def pump(self, name: str, fd: int) -> None:
        """Lines of one stream onto the event queue (``\\r`` ends a line too), then None at EOF."""
        rest = b""
        try:
            while chunk := os.read(fd, 65536):
                self.last_output = time.monotonic()
                *lines, rest = re.split(rb"\r\n|\r|\n", rest + chunk)
                for line in lines:
                    if line:
                        self.events.put((name, line.decode("utf-8", "replace")))
            if rest:
                self.events.put((name, rest.decode("utf-8", "replace")))
        finally:
            if name == "reports":
                os.close(fd)
            self.events.put((name, None))

    def follow(self) -> None:
        """Handle lines until stdout, stderr and the report FIFO have all ended."""
        open_streams = {"stdout", "stderr", "reports"}
        silence = self.spec.silence_timeout
        wait = min(1.0, silence / 10) if silence else 1.0
        while open_streams:
            outputs_done = not open_streams & {"stdout", "stderr"}
            try:
                name, line = self.events.get(timeout=0.05 if outputs_done else wait)
            except queue.Empty:
                if silence is not None and time.monotonic() - self.last_output > silence:
                    raise CommandFailed(self.failure(f"no output for {silence:g} s (objective.silence_timeout): "
                                                     "ended it")) from None
                if outputs_done and self.proc.poll() is not None:
                    self.close_writer()  # the program is gone: the FIFO ends once its data is read
                continue
            if line is None:
                open_streams.discard(name)
            elif name == "reports":
                self.json_line(line)
            else:
                self.output_line(name, line)

    def output_line(self, name: str, line: str) -> None:
        self.log.write(line + "\n")
        self.tails[name].append(line)
        if self.spec.echo:
            print(line, file=sys.stderr, flush=True)
        m = self.o.pattern.search(line) if name == "stdout" and self.o.pattern else None
        if m is not None:
            try:
                values = {k: float(v) for k, v in m.groupdict().items() if v is not None}
            except ValueError:
                return
            if "step" in values:
                self.take(values.pop("step"), values)

    def json_line(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        if isinstance(record.get("result"), dict):
            self.result.update(_numbers(record["result"]))
        elif isinstance(record.get("step"), (int, float)):
            self.take(record["step"], _numbers(record))

    def take(self, step: float, metrics: dict[str, float]) -> None:
        """Forward one report to ``report`` (which may raise :class:`StopTrial`), or hold it
        until a report with the curve metric comes."""
        clock = self.spec.clock
        if clock is not None and clock.group in metrics:
            metrics[self.o.clock] = metrics.pop(clock.group) * UNITS[clock.unit]
        merged = {**self.pending, **metrics}
        if self.o.curve not in merged:
            self.pending = merged
            return
        self.pending = {}
        self.reports += 1
        if self.spec.steps == "counted":  # W&B's hyperband counts logged values, not steps
            merged["reported_step"], step = step, self.reports
        self.report(int(step), **merged)

    def end(self) -> None:
        """SIGTERM to the process group, SIGKILL ``grace_seconds`` later if any of it is left."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        if not _group_alive(self.proc, pgid):
            return
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.spec.grace_seconds
        while time.monotonic() < deadline and _group_alive(self.proc, pgid):
            time.sleep(0.01)
        if _group_alive(self.proc, pgid):
            _signal_group(pgid, signal.SIGKILL)
            self.proc.wait()

    def close_writer(self) -> None:
        if self.writer is not None:
            os.close(self.writer)
            self.writer = None

    def close(self) -> None:
        self.close_writer()
        for t in self.pumps:
            t.join(timeout=2.0)
        for stream in (self.proc.stdout, self.proc.stderr) if self.proc else ():
            stream.close()
        if self.log is not None:
            self.log.close()

    def failure(self, what: str) -> str:
        """``what``, the command, and the last lines of its stderr and stdout, on one line."""
        parts = [f"{what} ({shlex.join(self.spec.command)})"]
        if self.reports == 0 and self.o.pattern is not None:
            parts.append("no stdout line matched objective.pattern")
        parts += [f"last {name}: " + " | ".join(line[:300] for line in tail)
                  for name, tail in self.tails.items() if tail]
        if self.kept:
            parts.append(f"full output: {self.dir / 'output.log'}")
        return "; ".join(parts)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _group_alive(proc: subprocess.Popen[bytes], pgid: int) -> bool:
    """Whether a process of the group still runs (zombies do not: an orphan's is reaped by
    init, which may take its time)."""
    proc.poll()  # reap the leader: a zombie of ours would look alive
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _running_member(pgid)


def _running_member(pgid: int) -> bool:
    """A process of group ``pgid`` that is not a zombie, by ``/proc`` (else assume one)."""
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                state, _ppid, group = f.read().rsplit(b")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(group) == pgid and state != b"Z":
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
