"""A sampler's or pruner's keyword options from a spec, checked against its constructor.

Optuna checks some options when a sampler or pruner is built and others only when it is
first used, trials later (``TPESampler(n_startup_trials="ten")`` builds; ``sigma0: -1``
breaks CMA-ES at its first sample). :func:`check_options` checks what a YAML file can get
wrong, from the constructor's own signature: unknown names, values of the wrong type
(for annotations made of ``int``, ``float``, ``bool``, ``str``, ``None``, ``dict`` and
``list``; others are left to the constructor), and negative numbers, which no count,
size, step or spread accepts (only ``lower``, ``upper`` and ``baseline`` may be negative).
"""

from __future__ import annotations

import inspect
import math
import re
from typing import Any, Callable, Iterable

SIGNED = frozenset({"lower", "upper", "baseline"})
_SIMPLE: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "None": lambda v: v is None,
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "Sequence": lambda v: isinstance(v, list),
}
_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
          "None": "null", "dict": "a mapping", "list": "a list", "Sequence": "a list"}


class OptionError(ValueError):
    """One option's problem: ``field`` (the option's name) and a message with its fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _alternatives(annotation: Any) -> list[str] | None:
    """The simple type names of a ``A | B | None`` annotation, or None when it names others."""
    if not isinstance(annotation, str):
        annotation = getattr(annotation, "__name__", str(annotation))
    names = [re.sub(r"\[.*\]$", "", part.strip()) for part in _split_union(annotation)]
    return names if all(n in _SIMPLE for n in names) else None


def _split_union(annotation: str) -> list[str]:
    """``"dict[str, int] | None"`` → ``["dict[str, int]", "None"]`` (``|`` inside brackets kept)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(annotation):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(annotation[start:i])
            start = i + 1
    return [*parts, annotation[start:]]


def check_options(factory: Callable[..., Any], options: dict[str, Any], skip: Iterable[str] = ()) -> None:
    """Check ``options`` for ``factory`` (a class or function) before it is built.

    Args:
        factory: the sampler or pruner class (its ``__init__`` signature is read).
        options: the spec's options for it.
        skip: parameters the spec cannot give (e.g. ``search_space``, filled in by hpo).

    Raises:
        OptionError: for the first unknown, wrongly typed, negative or non-finite option.
    """
    params = {n: p for n, p in inspect.signature(factory).parameters.items()
              if n != "self" and n not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    for name, value in options.items():
        if name not in params:
            raise OptionError(name, f"unknown option (fix: one of {', '.join(params) or 'none'})")
        kinds = _alternatives(params[name].annotation)
        if kinds is not None and not any(_SIMPLE[k](value) for k in kinds):
            wanted = " or ".join(dict.fromkeys(_WORDS[k] for k in kinds))
            raise OptionError(name, f"{value!r} is not {wanted} (fix: give {wanted})")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and not math.isfinite(value):
            raise OptionError(name, f"{value} is not a finite number (fix: give a finite number)")
        if number and value < 0 and name not in SIGNED:
            raise OptionError(name, f"{value} is negative (fix: give a number >= 0)")
