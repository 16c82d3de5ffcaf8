"""The objective protocol: what a training function sees of ``hpo``.

A training function is ``train(config: dict, report: Reporter) -> dict[str, float]``.
It calls ``report(step, val_loss=..., tokens=..., **metrics)`` after each evaluation.
When the trial must end (pruned, target reached, budget spent) ``report`` raises
:class:`StopTrial`, a ``BaseException`` so that a training loop's ``except Exception``
cannot swallow it; the training code never imports optuna nor handles its exceptions.
"""

from __future__ import annotations

from typing import Any, Protocol


class StopTrial(BaseException):
    """Raised by ``report`` to end a training loop; caught by ``hpo`` around the objective."""

    def __init__(self, reason: str, *, pruned: bool, mistake: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pruned = pruned
        self.mistake = mistake  # a spec or objective mistake every trial would repeat


class Reporter(Protocol):
    """What a training function may call."""

    def __call__(self, step: int, **metrics: float) -> None: ...

    def checkpoint(self, state: dict[str, Any]) -> None:
        """Store a resumable training state (model, optimizer, step, RNG, seconds)."""
        ...

    def restore(self) -> dict[str, Any] | None:
        """The newest checkpoint of this trial, or of the failed trial it retries."""
        ...


class NullReporter:
    """A reporter for running a training function bare (no study): records the curve."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def __call__(self, step: int, **metrics: float) -> None:
        self.history.append({"step": step, **metrics})

    def checkpoint(self, state: dict[str, Any]) -> None:
        pass

    def restore(self) -> dict[str, Any] | None:
        return None
