"""Errors that the CLI turns into one line and a non-zero exit, never a traceback."""

from __future__ import annotations


class HpoError(Exception):
    """A user-facing problem: the message is the whole story (what, where, the fix)."""

    exit_code = 1

    def _render_traceback_(self) -> list[str]:
        """What IPython and Jupyter show instead of a traceback: the one line."""
        return [f"error: {self}"]


class SpecError(HpoError):
    """A bad spec or command line: ``file: field: problem (fix: ...)``."""

    exit_code = 2


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (its type's name if it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
