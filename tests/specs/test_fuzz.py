"""Generated mistakes: malformed specs and command lines, each one line, exit 2, nothing left behind.

From a fixed seed the test builds well over 100 cases out of a catalogue of mutations of a
valid spec (wrong types, negative or unknown sampler and pruner options read from their
constructors, bad ranges and steps, YAML duplicates, nesting, alias bombs, encodings...) and
of bad command-line values (counts, seconds, ports, storage URLs, typo'd databases for the
read-only commands). Each runs in-process through ``hpo.cli.main`` (a few through a real
``python -m hpo``) and must end with exit code 2, exactly one line on stderr, no traceback
and the working directory as it was.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import random
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from conftest import run_hpo
from hpo.cli import main
from hpo.specs.options import SIGNED
from hpo.policy.pruners import REGISTRY as PRUNERS
from hpo.policy.samplers import SAMPLERS

SEED = 17
BASE: dict[str, Any] = {
    "study": "fuzz", "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
    "n_trials": 4, "fixed": {"steps": 3},
    "space": {"opt": {"type": "categorical", "choices": ["sgd", "adam"]},
              "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
              "width": {"type": "int", "low": 16, "high": 64, "step": 16},
              "mom": {"type": "float", "low": 0.5, "high": 0.9, "when": {"opt": "sgd"}}},
}
Case = tuple[str, list[str], "str | bytes | None"]  # (id, argv with SPEC for the file, spec file content)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def _with(**top: Any) -> str:
    return _dump({**BASE, **top})


def _param(name: str, entry: Any) -> str:
    return _dump({**BASE, "space": {**BASE["space"], name: entry}})


def _simple(annotation: Any) -> set[str]:
    return {p.strip() for p in str(annotation).split("|")}


def _option_mistakes(factory: Callable[..., Any], rng: random.Random) -> list[tuple[str, Any]]:
    """(option, bad value) pairs for a constructor: wrong types, negatives, unknown names."""
    out: list[tuple[str, Any]] = [(f"no_such_{rng.randrange(1000)}", 1)]
    for name, p in inspect.signature(factory).parameters.items():
        kinds = _simple(p.annotation)
        if name in ("self", "search_space") or not kinds or not kinds <= {"int", "float", "bool", "None"}:
            continue
        if kinds & {"int", "float"}:
            out.append((name, rng.choice(["ten", "high", [1], {"a": 1}])))
            if name not in SIGNED:
                out.append((name, -rng.randint(1, 50)))
            out.append((name, float("inf")))
        if "bool" in kinds:
            out.append((name, "maybe"))
    return out


def spec_cases(rng: random.Random) -> list[Case]:
    texts: list[str | bytes] = [_with(n_trials=v) for v in ["ten", 0, -3, 1.5, []]]
    texts += [_with(metrics=v) for v in [[], "val_loss", {"val_loss": "min"}, {}]]
    texts += [_with(study=v) for v in ["", [1], {"a": 1}]]
    texts += [_with(objective=v) for v in ["nocolon", "os:system", "builtins:eval", "a:b:c", ":train",
                                           "objectives.nothere:train", "objectives.synthetic:nope",
                                           "subprocess:run", "json:loads"]]
    texts += [_with(trial_budget_seconds=v) for v in [float("inf"), float("nan"), -1, 0, "soon"]]
    texts += [_with(one_factor_levels=v) for v in [1, 11, "x"]]
    texts += [_with(**{f"colour_{rng.randrange(100)}": "red"})]
    texts += [_with(target={"metric": "val_loss", "below": float("inf")}, trial_budget_seconds=10),
              _with(target={"metric": "val_loss"}, trial_budget_seconds=10),
              _with(metrics={"time_to_target": "minimize"})]
    texts += [
        _param("x", {"type": "float", "low": 0.5, "high": 0.1}),
        _param("x", {"low": 0.1, "high": 0.5}),
        _param("x", {"type": "double", "low": 0.1, "high": 0.5}),
        _param("x", {"type": "int", "low": 0, "high": 5, "step": 10}),
        _param("x", {"type": "int", "low": 0, "high": 7, "step": 2}),
        _param("x", {"type": "float", "low": 0.0, "high": 1.0, "step": 0.3}),
        _param("x", {"type": "float", "low": 0.001, "high": 0.1, "log": True, "step": 0.001}),
        _param("x", {"type": "float", "low": 0.0, "high": 1.0, "log": True}),
        _param("x", {"type": "int", "low": 1, "high": 8, "log": True, "step": 2}),
        _param("x", {"type": "categorical", "choices": []}),
        _param("x", {"type": "categorical", "choices": ["a", "a"]}),
        _param("x", {"type": "categorical", "choices": [1.0, float("nan")]}),
        _param("x", {"type": "categorical", "choices": [[1], 2]}),
        _param("x", {"type": "categorical", "choices": ["a", "b"], "when": {"x": "a"}}),
        _param("x", {"type": "float", "low": 0, "high": 1, "when": {"nosuch": "a"}}),
        _param("x", {"type": "float", "low": 0, "high": 1, "when": {"width": 16}}),
        _param("x", {"type": "float", "low": 0, "high": 1, "when": {"opt": "rmsprop"}}),
        _param("x", {"type": "float", "low": 0, "high": 1, "tpye": "float"}),
        _param("x", {"type": "float", "low": "a", "high": 1}),
        _param("x", {"type": "int", "low": 0.5, "high": 3}),
        _param("x", [1, 2]),
        _with(enqueue=[{"lr": 5.0}]), _with(enqueue=[{"nosuch": 1}]), _with(enqueue=[{"opt": "rmsprop"}]),
        _with(enqueue="lr"), _with(fixed={"lr": 0.01}),
    ]
    for name, factory in SAMPLERS.items():
        for option, value in _option_mistakes(factory, rng):
            texts.append(_with(sampler={"name": name, "options": {option: value}}))
    texts += [_with(sampler={"name": "bayes"}), _with(sampler="tpe"), _with(sampler={"name": "grid"})]
    for name, factory in PRUNERS.items():
        if name == "patient":
            continue
        for option, value in _option_mistakes(factory, rng):
            texts.append(_with(pruners=[{"name": name, "options": {option: value}}]))
    texts += [_with(pruners=[{"name": "patient", "options": {"patience": 1, "wrapped": w}}])
              for w in [{"name": "nosuch"}, "median", {"name": "median", "options": {"n_startup_trials": -1}}]]
    texts += [_with(pruners=[{"name": "asha"}]), _with(pruners={"name": "median"})]
    good = _with()
    depth = rng.randint(60, 20000)
    bomb = good + "extra:\n  a: &a [x,x,x,x,x,x,x,x,x]\n"
    for prev, name in zip("abcdefg", "bcdefgh"):
        bomb += f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    texts += [
        good + "study: again\n",
        good.replace("val_loss: minimize", "val_loss: minimize, val_loss: maximize").replace(
            "metrics:\n  val_loss: minimize", "metrics: {val_loss: minimize, val_loss: maximize}"),
        good + "fixed2: " + "[" * depth + "]" * depth + "\n",
        bomb.replace("extra:", "fixed:").replace("fixed:\n  steps: 3\n", ""),
        good.encode("utf-16"),
        good.encode("utf-8") + b"# caf\xe9\n",
        good + "space: [unclosed\n",
        "- a list\n- not a mapping\n",
        "just text\n",
        "",
        good.replace("  steps: 3", "\tsteps: 3"),
    ]
    return [(f"spec-{i}", ["optimize", "--spec", "SPEC"], t) for i, t in enumerate(texts)]


def arg_cases(rng: random.Random) -> list[Case]:
    good = _with()
    bad_values = {
        "--n-trials": ["0", "-1", "x", "1.5", "nan"], "--timeout": ["-1", "0", "nan", "inf", "x"],
        "--heartbeat": ["-1", "x", "1.5"], "--grace": ["-5", "0", "x"], "--max-retry": ["-1", "nan"],
        "--workers": ["0", "-2", "x"],
        "--storage": ["", "journal:", "postgresql://", "sqlite://", "sqlite:///", "nonsense", "mysql+pymysql://root@h/",
                      "postgresql://u:p@ss@127.0.0.1/db", "postgresql://u:pw@127.0.0.1:port/db",
                      "journal:/proc/no/such/file"],
    }
    cases: list[Case] = []
    for flag, values in bad_values.items():
        for value in values:
            cases.append((f"optimize{flag}={value!r}", ["optimize", "--spec", "SPEC", flag, value], good))
    typo = f"typo_{rng.randrange(10**6)}"
    for storage in [f"sqlite:///{typo}.db", f"journal:{typo}.log", None]:
        extra = [] if storage is None else ["--storage", storage]
        for command in (["studies"], ["show", "--study", "x"], ["report", "--study", "x"], ["best", "--study", "x"],
                        ["pareto", "--study", "x"], ["importance", "--study", "x"], ["narrow", "--study", "x"],
                        ["plot", "--study", "x", "--kind", "history", "--out", "x.html"],
                        ["dashboard", "--port", str(rng.randint(20000, 30000))]):
            cases.append((f"{command[0]}:{storage}", [*command, *extra], None))
    cases += [(f"dashboard --port {p}", ["dashboard", "--port", p], None) for p in ["0", "99999", "-1", "x"]]
    cases += [(f"report --top {v}", ["report", "--study", "x", "--top", v], None) for v in ["0", "-1", "x"]]
    cases += [("best --trial -1", ["best", "--study", "x", "--trial", "-1"], None),
              ("plot --kind nosuch", ["plot", "--study", "x", "--kind", "nosuch", "--out", "a.html"], None),
              ("report --format xml", ["report", "--study", "x", "--format", "xml"], None),
              ("show without --study", ["show"], None), ("optimize without spec", ["optimize"], None),
              ("unknown command", ["frobnicate"], None), ("unknown flag", ["studies", "--colour"], None),
              ("copy from a typo", ["copy", "--from", f"sqlite:///{typo}.db", "--to", "sqlite:///b.db"], None),
              ("missing spec file", ["optimize", "--spec", "nosuch.yaml"], None)]
    return cases


CASES = [*spec_cases(random.Random(SEED)), *arg_cases(random.Random(SEED + 1))]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _run(case: Case, root: Path) -> tuple[int, str]:
    _, argv, content = case
    spec = root / "spec.yaml"
    spec.unlink(missing_ok=True)
    if content is not None:
        spec.write_bytes(content if isinstance(content, bytes) else content.encode())
    argv = [str(spec) if a == "SPEC" else a for a in argv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def test_at_least_100_generated_mistakes_each_one_line_exit_2_nothing_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    assert len(CASES) >= 100
    failures = []
    for case in CASES:
        before = _files(tmp_path) - {"spec.yaml"}
        code, err = _run(case, tmp_path)
        left = _files(tmp_path) - {"spec.yaml"} - before
        lines = err.splitlines()
        if code != 2 or len(lines) != 1 or "Traceback" in err or left or "(fix:" not in err:
            failures.append(f"{case[0]}: exit {code}, left {sorted(left)}: {err.strip()[:300]}")
    assert not failures, f"{len(failures)} of {len(CASES)}:\n" + "\n".join(failures)


@pytest.mark.parametrize("index", random.Random(SEED + 2).sample(range(len(CASES)), 2))
def test_a_few_through_a_real_process(index: int, tmp_path: Path) -> None:
    _, argv, content = CASES[index]
    if content is not None:
        (tmp_path / "spec.yaml").write_bytes(content if isinstance(content, bytes) else content.encode())
    argv = [str(tmp_path / "spec.yaml") if a == "SPEC" else a for a in argv]
    proc = run_hpo(*argv, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and re.search(r"\(fix: .*\)$", proc.stderr.strip())
    assert _files(tmp_path) <= {"spec.yaml"}
