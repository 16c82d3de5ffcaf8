"""Reading a YAML file that a person wrote, with limits: a mistake is one line, never a hang.

``yaml.safe_load`` builds no objects, but it still accepts what makes a spec wrong or
dangerous later: a key given twice (the last one silently wins), nesting deep enough to
exhaust Python's stack, aliases that expand a few hundred bytes into millions of values
when the spec is stored (a "billion laughs"), and bytes that are not UTF-8. Each of these
is refused here with one line ``FILE: where: problem (fix: ...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from hpo.errors import SpecError, first_line

MAX_DEPTH = 50  # nesting levels; a spec needs about five
MAX_VALUES = 100_000  # values after expanding aliases; a spec has a few hundred
MAX_BYTES = 1_000_000


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__()
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys and nesting deeper than :data:`MAX_DEPTH`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *base" then a key of its own overrides on purpose
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: construct_mapping says so
                if first is not None:
                    raise ConstructorError(None, None, f"key {key!r} is given twice (first on line {first}) "
                                                       "(fix: keep one)", key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _expanded_size(value: Any, sizes: dict[int, int]) -> int:
    """How many values ``value`` holds with every alias written out (memoised by identity)."""
    if not isinstance(value, (dict, list)):
        return 1
    known = sizes.get(id(value))
    if known is None:
        children = value.items() if isinstance(value, dict) else enumerate(value)
        known = 1 + sum(_expanded_size(v, sizes) for _, v in children)
        sizes[id(value)] = known
    return known


def read_text(path: Path) -> str:
    """A spec file's text: at most MAX_BYTES, UTF-8 (a UTF-16 or other file is one line)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"{path}: (file): cannot read it: {e.strerror or e} (fix: check the path and its "
                        "permissions)") from None
    if len(data) > MAX_BYTES:
        raise SpecError(f"{path}: (file): {len(data):,} bytes, more than a spec needs (limit {MAX_BYTES:,}) "
                        "(fix: check that this is the spec file)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpecError(f"{path}: (file): is UTF-16 text (fix: save it as UTF-8)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecError(f"{path}: line {line}: byte 0x{data[e.start]:02x} is not UTF-8 text "
                        "(fix: save the file as UTF-8)") from None


def read_yaml(path: str | Path) -> Any:
    """The data of a YAML file, within the limits above.

    Args:
        path: the file.

    Raises:
        SpecError: one line naming the file, where, the problem and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: file not found (fix: check --study/--spec; specs live in search_spaces/)")
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _TooDeep as e:
        raise SpecError(f"{path}: line {e.problem_mark.line + 1}: nested more than {MAX_DEPTH} levels deep "
                        "(fix: a spec needs a few levels; check the brackets)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(parse)"
        problem = getattr(e, "problem", None) or first_line(e)
        fix = "" if "(fix:" in str(problem) else " (fix: the syntax)"
        raise SpecError(f"{path}: {where}: not valid YAML: {problem}{fix}") from None
    except RecursionError:
        raise SpecError(f"{path}: (parse): nested too deeply (fix: a spec needs a few levels)") from None
    fields = data.items() if isinstance(data, dict) else [("(top level)", data)]
    sizes: dict[int, int] = {}
    for name, value in fields:
        size = _expanded_size(value, sizes)
        if size > MAX_VALUES:
            raise SpecError(f"{path}: {name}: expands to {size:,} values through YAML aliases (limit "
                            f"{MAX_VALUES:,}) (fix: write the values out, without & and * aliases)")
    return data

