"""hpo: persistent, resumable Optuna studies for language-model training runs.

The public API, importable from ``hpo`` itself::

    import hpo

    spec = hpo.load_spec("search_spaces/ngpt.yaml")
    study = hpo.optimize(spec, "sqlite:///studies.db", n_trials=20)

Names are imported on first use, so ``import hpo`` stays cheap (no Optuna, no pydantic)
until a name is needed.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

# Optuna imports tqdm.auto, which in a Jupyter kernel without ipywidgets warns "IProgress not
# found" on import; hpo shows no tqdm widget in notebooks, so the warning only adds noise.
warnings.filterwarnings("ignore", message="IProgress not found")

# name -> the module that defines it
_API = {
    # running studies
    "optimize": "hpo.loop",
    "run": "hpo.loop",
    "open_session": "hpo.session",
    "Session": "hpo.session",
    # specs
    "load_spec": "hpo.spec",
    "parse_spec": "hpo.spec",
    "StudySpec": "hpo.spec",
    "FloatParam": "hpo.spec",
    "IntParam": "hpo.spec",
    "CategoricalParam": "hpo.spec",
    "Component": "hpo.spec",
    "Curve": "hpo.spec",
    "Target": "hpo.spec",
    "CommandSpec": "hpo.spec",
    # the training function's side
    "Reporter": "hpo.protocol",
    "NullReporter": "hpo.protocol",
    "StopTrial": "hpo.protocol",
    "TrialReporter": "hpo.reporter",
    "CommandObjective": "hpo.command",
    # pruners
    "KillRulePruner": "hpo.pruners",
    "TimeCapPruner": "hpo.pruners",
    "AnyPruner": "hpo.pruners",
    "build_pruner": "hpo.pruners",
    # reading studies
    "build_report": "hpo.report",
    "study_spec": "hpo.study_info",
    # errors
    "HpoError": "hpo.errors",
    "SpecError": "hpo.errors",
}

__all__ = sorted(_API)
__version__ = "0.1.0"

if TYPE_CHECKING:
    from hpo.command import CommandObjective
    from hpo.errors import HpoError, SpecError
    from hpo.loop import optimize, run
    from hpo.protocol import NullReporter, Reporter, StopTrial
    from hpo.pruners import AnyPruner, KillRulePruner, TimeCapPruner, build_pruner
    from hpo.report import build_report
    from hpo.reporter import TrialReporter
    from hpo.session import Session, open_session
    from hpo.spec import (CategoricalParam, CommandSpec, Component, Curve, FloatParam, IntParam, StudySpec, Target,
                          load_spec, parse_spec)
    from hpo.study_info import study_spec


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'hpo' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
