"""Spec files: finding one, reading it (YAML, JSON, or a W&B sweep file as its translation).

:func:`read_spec` gives the validated :class:`~hpo.specs.models.StudySpec` of a file and nothing
more; :func:`hpo.run.session.load_spec` also builds its sampler and pruners and checks its
objective, as a run needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hpo.errors import SpecError
from hpo.specs import wandb_sweep
from hpo.specs.models import CommandSpec, StudySpec, parse_spec
from hpo.specs.safe_yaml import read_text, read_yaml


def read_spec_file(path: Path) -> Any:
    """The data of a spec file: YAML within :mod:`hpo.specs.safe_yaml`'s limits, or JSON for ``.json``;
    a :class:`SpecError` line if unreadable.

    Args:
        path: the spec file.
    """
    if path.suffix != ".json":
        return read_yaml(path)
    if not path.is_file():
        raise SpecError(f"{path}: file not found (fix: check --study/--spec; specs live in search_spaces/)")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: line {e.lineno}: not valid JSON: {e.msg} (fix: the syntax)") from None


def read_spec(path: str | Path) -> StudySpec:
    """Read and validate a spec file (a W&B sweep file as its translation, with a note per
    approximated field); a command objective's working directory is taken relative to the file.

    Args:
        path: the spec file.
    """
    path = Path(path)
    data = read_spec_file(path)
    if wandb_sweep.is_sweep(data):
        translation = wandb_sweep.translate(data, path)
        for key in translation.approximate:
            print(f"{path}: note: {translation.notes[key]}", file=sys.stderr)
        data = translation.spec
    spec = parse_spec(data, str(path))
    if isinstance(spec.objective, CommandSpec):
        spec = spec.model_copy(update={"objective": spec.objective.anchored(path.parent)})
    return spec


def find_spec(study: str | None, spec_path: str | None, root: Path | None = None) -> Path:
    """``--spec PATH`` wins; ``--study NAME`` means ``search_spaces/NAME.yaml``.

    Args:
        study: the study's name (``--study``).
        spec_path: an explicit spec file (``--spec``).
        root: the directory holding ``search_spaces/`` (default: the working directory).
    """
    if spec_path:
        return Path(spec_path)
    if not study:
        raise SpecError("command line: --study: missing (fix: give --study NAME, for search_spaces/NAME.yaml, "
                        "or --spec PATH)")
    return (root or Path.cwd()) / "search_spaces" / f"{study}.yaml"
