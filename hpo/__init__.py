"""hpo: persistent, resumable Optuna studies for language-model training runs."""

from __future__ import annotations

import warnings

from hpo.protocol import NullReporter, Reporter, StopTrial

# Optuna imports tqdm.auto, which in a Jupyter kernel without ipywidgets warns "IProgress not
# found" on import; hpo shows no tqdm widget in notebooks, so the warning only adds noise.
warnings.filterwarnings("ignore", message="IProgress not found")

__all__ = ["NullReporter", "Reporter", "StopTrial"]
__version__ = "0.1.0"
