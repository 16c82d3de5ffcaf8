"""hpo: persistent, resumable Optuna studies for language-model training runs.

The public API, importable from ``hpo`` itself::

    import hpo

    spec = hpo.load_spec("search_spaces/ngpt_ttt.yaml")
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
    "optimize": "hpo.run.loop",
    "run": "hpo.run.loop",
    "open_session": "hpo.run.session",
    "Session": "hpo.run.session",
    # specs
    "load_spec": "hpo.run.session",
    "read_spec": "hpo.specs.files",
    "parse_spec": "hpo.specs.models",
    "StudySpec": "hpo.specs.models",
    "FloatParam": "hpo.specs.models",
    "IntParam": "hpo.specs.models",
    "CategoricalParam": "hpo.specs.models",
    "Component": "hpo.specs.models",
    "Curve": "hpo.specs.models",
    "Target": "hpo.specs.models",
    "CommandSpec": "hpo.specs.models",
    # the training function's side
    "Reporter": "hpo.run.protocol",
    "NullReporter": "hpo.run.protocol",
    "StopTrial": "hpo.run.protocol",
    "TrialReporter": "hpo.run.reporter",
    "CommandObjective": "hpo.run.command",
    # pruners
    "KillRulePruner": "hpo.policy.pruners",
    "TimeCapPruner": "hpo.policy.pruners",
    "AnyPruner": "hpo.policy.pruners",
    "build_pruner": "hpo.policy.pruners",
    # reading studies
    "build_report": "hpo.analysis.report",
    "study_spec": "hpo.analysis.study_info",
    # errors
    "HpoError": "hpo.errors",
    "SpecError": "hpo.errors",
}

__all__ = sorted(_API)
__version__ = "0.1.0"

if TYPE_CHECKING:
    from hpo.run.command import CommandObjective
    from hpo.errors import HpoError, SpecError
    from hpo.run.loop import optimize, run
    from hpo.run.protocol import NullReporter, Reporter, StopTrial
    from hpo.policy.pruners import AnyPruner, KillRulePruner, TimeCapPruner, build_pruner
    from hpo.analysis.report import build_report
    from hpo.run.reporter import TrialReporter
    from hpo.run.session import Session, load_spec, open_session
    from hpo.specs.files import read_spec
    from hpo.specs.models import (CategoricalParam, CommandSpec, Component, Curve, FloatParam, IntParam, StudySpec,
                                  Target, parse_spec)
    from hpo.analysis.study_info import study_spec


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
