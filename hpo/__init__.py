"""hpo: persistent, resumable Optuna studies for language-model training runs."""

from __future__ import annotations

from hpo.protocol import NullReporter, Reporter, StopTrial

__all__ = ["NullReporter", "Reporter", "StopTrial"]
__version__ = "0.1.0"
