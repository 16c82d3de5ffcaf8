"""The public API: every name in ``hpo.__all__`` resolves, ``import hpo`` stays light, and the
analysis modules run without the trial machinery."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hpo
from conftest import hpo_env

# The modules that run trials: reading a study must never import them (nor torch).
ANALYSIS = ("study_info", "report", "tables", "export", "pareto", "plots", "importance", "ranking", "display", "dashboard")


def _imported_by(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], env=hpo_env(), capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_every_public_name_resolves() -> None:
    assert hpo.__all__ and len(set(hpo.__all__)) == len(hpo.__all__)
    for name in hpo.__all__:
        assert getattr(hpo, name) is not None, name
    from hpo import StopTrial, StudySpec, load_spec, optimize  # the from-import form too

    assert callable(optimize) and callable(load_spec) and issubclass(StopTrial, BaseException)
    assert "optimize" in dir(hpo) and StudySpec.__name__ == "StudySpec"
    with pytest.raises(AttributeError):
        hpo.no_such_name  # noqa: B018


def test_import_hpo_imports_neither_optuna_nor_torch() -> None:
    loaded = _imported_by("import hpo")
    assert not {"torch", "optuna", "pydantic"} & loaded
    assert not {m for m in loaded if m.startswith("hpo.")}


@pytest.mark.parametrize("module", ANALYSIS)
def test_analysis_does_not_import_the_run_machinery(module: str) -> None:
    loaded = _imported_by(f"import hpo.analysis.{module}")
    assert f"hpo.analysis.{module}" in loaded
    running = {m for m in loaded if m.startswith("hpo.run") or m == "torch"}
    assert not running, sorted(running)
