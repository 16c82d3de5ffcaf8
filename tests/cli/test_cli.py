"""The command line as a table: every command listed, its help, an unknown command, and the
options each command parses reaching the service by name."""

from __future__ import annotations

import inspect
import pkgutil
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
import yaml

import hpo.commands
from hpo import cli
from hpo.cli import main
from hpo.run.session import open_session

SPEC: dict[str, Any] = {
    "study": "syn",
    "objective": "objectives.synthetic:train",
    "metrics": {"val_loss": "minimize"},
    "n_trials": 4,
    "fixed": {"steps": 2},
    "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
}
RUN_FLAGS = ["--heartbeat", "7", "--grace", "40", "--max-retry", "5", "--artifacts", "ckpts", "--watchdog", "2.5"]
RUN_VALUES = dict(heartbeat=7, grace=40, max_retry=5, artifacts="ckpts", watchdog=2.5)
PLAN_FLAGS = ["--top", "4", "--into", "syn_b", "--design", "none", "--runs", "12", "--levels", "4"]
PLAN_VALUES = dict(top=4, into="syn_b", design="none", runs=12, levels=4)


class Stop(Exception):
    """Raised by a recorded service call that must not go on."""


def record(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, calls: list[dict[str, Any]],
           returns: Any = None) -> None:
    """Replace ``module.name`` by a stand-in that binds each call to the real function's
    signature (a renamed or unknown parameter is a TypeError, as in the real call) and records it."""
    real: Callable[..., Any] = getattr(module, name)

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(real).bind(*args, **kwargs)
        calls.append(dict(bound.arguments))
        if isinstance(returns, BaseException):
            raise returns
        return returns

    monkeypatch.setattr(module, name, stand_in)


def session_options(call: dict[str, Any]) -> dict[str, Any]:
    """The options a service function passes on to :func:`hpo.run.session.open_session`, checked
    against its signature."""
    options = call.get("session_kwargs", {})
    inspect.signature(open_session).bind(None, None, **options)
    return options


@pytest.fixture
def spec_file(workdir: Path) -> Path:
    path = workdir / "search_spaces" / "syn.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return path


def test_the_table_lists_every_command_module() -> None:
    modules = {m.name for m in pkgutil.iter_modules(hpo.commands.__path__)} - {"options"}
    assert {c.__name__.rsplit(".", 1)[1] for c in cli._COMMANDS.values()} == modules
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == list(cli._COMMANDS)  # type: ignore[arg-type]
    assert list(cli._COMMANDS)[:3] == ["optimize", "studies", "show"]


@pytest.mark.parametrize("name", list(cli._COMMANDS))
def test_each_command_help_exits_0(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: hpo {name} ") and "--help" in out


def test_top_level_help_lists_every_command_with_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, command in cli._COMMANDS.items():
        assert f"{name} {' '.join(command.HELP.split())}" in out, name


def test_an_unknown_command_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimise", "--study", "x"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("error: command line: command: invalid choice: 'optimise'")
    assert "(fix: see hpo --help)" in captured.err


def test_no_command_module_imports_the_cli() -> None:
    for module in cli._COMMANDS.values():
        assert "hpo.cli" not in Path(module.__file__).read_text(), module.__name__  # type: ignore[arg-type]


def test_two_stage_hands_run_and_plan_options_by_name(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hpo.run.two_stage

    calls: list[dict[str, Any]] = []
    record(monkeypatch, hpo.run.two_stage, "run_two_stage", calls)  # None: stopped before the end
    argv = ["optimize", "--study", "syn", "--two-stage", "--n-trials", "6", "--timeout", "90", *RUN_FLAGS, *PLAN_FLAGS]
    assert main(argv) == 0
    [call] = calls
    assert call["spec"].study == "syn" and call["storage_url"] is None
    assert (call["n_trials"], call["timeout"]) == (6, 90.0)
    assert {k: call[k] for k in PLAN_VALUES} == PLAN_VALUES
    assert session_options(call) == RUN_VALUES


def test_optimize_hands_run_options_to_open_session(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hpo.run.session

    calls: list[dict[str, Any]] = []
    record(monkeypatch, hpo.run.session, "open_session", calls, returns=Stop())
    with pytest.raises(Stop):
        main(["optimize", "--spec", str(spec_file), *RUN_FLAGS])
    [call] = calls
    assert {k: call[k] for k in RUN_VALUES} == RUN_VALUES
    assert call["source"] == str(spec_file)


def test_ray_hands_its_options_by_name(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hpo.run.ray_backend

    calls: list[dict[str, Any]] = []
    record(monkeypatch, hpo.run.ray_backend, "run_on_ray", calls, returns=0)
    argv = ["optimize", "--study", "syn", "--ray", "auto", "--workers", "3", "--n-trials", "8", *RUN_FLAGS]
    assert main(argv) == 0
    assert main(["optimize", "--study", "syn", "--ray"]) == 0
    given, default = calls
    assert given["address"] == "auto" and given["argv"] == argv
    assert {k: given[k] for k in ("workers", "n_trials", "heartbeat", "grace", "max_retry")} == dict(
        workers=3, n_trials=8, heartbeat=7, grace=40, max_retry=5)
    assert default["address"] == "local" and default["workers"] is None  # no --workers: as many as Ray holds


def test_narrow_and_rerun_hand_their_options_by_name(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hpo.run.finalists
    import hpo.analysis.study_info
    import hpo.run.two_stage
    from hpo.specs.models import parse_spec

    url = f"sqlite:///{workdir / 'studies.db'}"
    optuna.create_study(study_name="syn", storage=url)
    plans: list[dict[str, Any]] = []
    record(monkeypatch, hpo.run.two_stage, "make_plan", plans, returns=Stop())
    with pytest.raises(Stop):
        main(["narrow", "--study", "syn", "--storage", url, *PLAN_FLAGS])
    [plan] = plans
    assert {k: plan[k] for k in PLAN_VALUES} == PLAN_VALUES and plan["reuse"] is False

    reruns: list[dict[str, Any]] = []
    monkeypatch.setattr(hpo.analysis.study_info, "study_spec", lambda study: parse_spec(SPEC, "test"))
    record(monkeypatch, hpo.run.finalists, "run_finalists", reruns)
    assert main(["rerun", "--study", "syn", "--storage", url, "--top", "2", "--seeds", "4", *RUN_FLAGS]) == 0
    [rerun] = reruns
    assert (rerun["storage_url"], rerun["top"], rerun["seeds"], rerun["dry_run"]) == (url, 2, 4, False)
    assert session_options(rerun) == RUN_VALUES


def test_a_renamed_service_parameter_is_a_type_error(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CLI hands over by name no longer fits a service whose parameter was renamed:
    a TypeError at the call, not a flag silently dropped."""
    import hpo.run.session

    def renamed(spec: Any, storage_url: str | None = None, *, heartbeat: int = 10, grace: int | None = None,
                retries: int = 3, artifacts: str | None = None, source: str = "spec",
                watchdog: float = 4.0) -> None:
        raise AssertionError("not reached")

    monkeypatch.setattr(hpo.run.session, "open_session", renamed)
    with pytest.raises(TypeError, match="max_retry"):
        main(["optimize", "--spec", str(spec_file)])


@pytest.mark.parametrize("argv", [["narrow", "--study", "x", "--top", "1"], ["narrow", "--study", "x", "--runs", "0"],
                                  ["rerun", "--study", "x", "--seeds", "0"], ["rerun", "--study", "x", "--top", "0"],
                                  ["optimize", "--study", "x", "--finalists", "-1"],
                                  ["storage-proxy", "--threads", "0"]])
def test_counts_out_of_range_are_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: command line: {argv[-2]}: ") and "(fix: give " in err[0]
