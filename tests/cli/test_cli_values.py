"""The command line's own edges: passwords never printed, pipes closed early, both launchers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, hpo_env
from hpo.errors import SpecError
from hpo.storage.backend import check_url, redact


@pytest.mark.parametrize(("url", "shown", "problem"), [
    ("postgresql://u:Zq9@xK@127.0.0.1/db", "postgresql://u:***@127.0.0.1/db", "unescaped @"),
    ("postgresql://u:Zq9/xK@127.0.0.1/db", "postgresql://u:***@127.0.0.1/db", None),
    ("postgresql://u:Zq9xK@127.0.0.1:port/db", "postgresql://u:***@127.0.0.1:port/db", "the port is not a number"),
    ("postgresql+psycopg://postgres@127.0.0.1/test", "postgresql+psycopg://postgres@127.0.0.1/test", None),
])
def test_redaction_never_shows_any_part_of_a_password(url: str, shown: str, problem: str | None) -> None:
    assert redact(url) == shown
    if problem is None:
        assert check_url(url) == url
        return
    with pytest.raises(SpecError, match=problem) as err:
        check_url(url)
    assert "Zq9" not in str(err.value) and "xK" not in str(err.value)


def _study(tmp_path: Path) -> None:
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "my_objective.py").write_text((ROOT / "objectives" / "synthetic.py").read_text())
    spec = {"study": "here", "objective": "my_objective:train", "metrics": {"val_loss": "minimize"},
            "n_trials": 2, "fixed": {"steps": 2}, "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1}}}
    (tmp_path / "search_spaces" / "here.yaml").write_text(yaml.safe_dump(spec))


def test_the_console_script_finds_an_objective_in_the_working_directory(tmp_path: Path) -> None:
    """``hpo`` (the console script) imports ``my_objective`` from the working directory as
    ``python -m hpo`` does; then ``hpo show | head -1`` ends quietly."""
    script = shutil.which("hpo", path=os.path.dirname(sys.executable))
    assert script, "the hpo console script is installed beside the interpreter (pip install -e .)"
    _study(tmp_path)
    env = hpo_env()
    env["PYTHONPATH"] = str(ROOT)  # hpo itself, not the working directory
    proc = subprocess.run([script, "optimize", "--study", "here"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    piped = subprocess.run(f"'{script}' show --study here | head -1", shell=True, cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert piped.stdout.count("\n") == 1 and "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """Many lines into a pipe whose reader has gone: no BrokenPipeError traceback, exit 0."""
    code = ("import sys; from hpo import cli; from hpo.commands import studies; "
            "studies.take_action = lambda a: [print('x' * 100) for _ in range(100000)] and 0; "
            "sys.exit(cli.main(['studies']))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=hpo_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.read(10)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    assert proc.returncode == 0
