"""A per-trial watchdog: a training function that stops reporting is ended, not waited for.

A hung objective keeps its trial's heartbeat alive (the heartbeat runs in its own thread),
so nothing else would ever reclaim it. The watchdog allows ``seconds`` of wall-clock silence
(from the trial's start, then from each report) and then raises :class:`TrialHung` in the
training function, which fails the trial with the reason. It uses ``SIGALRM``, so it works
in the main thread of a Unix process and interrupts Python code and blocking waits (sleep,
I/O); a call stuck inside C code is interrupted only when that call returns. Elsewhere
(another thread, no ``SIGALRM``) it does nothing.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class TrialHung(BaseException):
    """Raised in the training function when it has been silent for too long."""


class Watchdog:
    """Arm with :meth:`__enter__`, re-arm at each report with :meth:`kick`, disarm on exit.

    Args:
        seconds: the wall-clock silence allowed; None or 0 disables the watchdog.
        what: how the reason names the allowance, e.g. ``"4 x the 75 s budget"``.
    """

    def __init__(self, seconds: float | None, what: str = "") -> None:
        self.seconds = seconds or 0.0
        self.what = what
        self.fired = False
        self._active = (self.seconds > 0 and hasattr(signal, "SIGALRM")
                        and threading.current_thread() is threading.main_thread())
        self._previous: object = None

    @property
    def reason(self) -> str:
        allowance = f" ({self.what})" if self.what else ""
        return (f"watchdog: no report for {self.seconds:g} s of wall-clock time{allowance}: the objective "
                "hung or is far slower than its budget (fix: find where it blocks, or raise --watchdog)")

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        self.fired = True
        raise TrialHung(self.reason)

    def kick(self) -> None:
        """A report arrived: the silence starts again."""
        if self._active:
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __enter__(self) -> Watchdog:
        if self._active:
            self._previous = signal.signal(signal.SIGALRM, self._fire)
            self.kick()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)  # type: ignore[arg-type]
