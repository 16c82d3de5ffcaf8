"""Nothing executes from data: a planted checkpoint is refused, never unpickled, everywhere
hpo reads one (a retry's restore, ``best --export``, ``copy``)."""

from __future__ import annotations

import io
import json
import pickle
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import torch
from made_studies import add_best_with_checkpoint, known_study
from optuna.trial import TrialState

from conftest import hpo_env, run_hpo
from hpo.storage.artifacts import CHECKPOINT_ATTR, REFUSED_ATTR, Checkpoints, open_artifact_store
from hpo.cli import main
from hpo.storage.backend import open_storage
from test_workers import _checkpointed_running, _spec, _wait


class _Planted:
    """Unpickling this calls ``open(path, "w")``: it creates the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (self.path, "w")


def plant(path: Path, evidence: Path) -> None:
    """Overwrite the checkpoint file ``path`` with a torch file whose unpickling creates ``evidence``,
    after checking that a full unpickle really would."""
    buffer = io.BytesIO()
    torch.save({"step": 999, "payload": _Planted(evidence)}, buffer)
    pickle.loads(pickle.dumps(_Planted(evidence)))  # the payload works when unpickled for real
    assert evidence.exists()
    evidence.unlink()
    path.write_bytes(buffer.getvalue())


def _trial(tmp_path: Path) -> tuple[optuna.Study, optuna.trial.Trial, Checkpoints, Path]:
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    ckpt = Checkpoints(open_artifact_store(tmp_path / "store"), storage, trial._trial_id)
    return study, trial, ckpt, tmp_path / "store"


def test_plain_state_with_rng_states_round_trips(tmp_path: Path) -> None:
    _, _, ckpt, _ = _trial(tmp_path)
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"step": 3, "w": torch.ones(2), "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                                                    "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
                                                    "generator": np.random.default_rng(1).bit_generator.state}}
    ckpt.save(state)
    back = ckpt.load()
    assert back is not None and ckpt.refused is None
    assert back["rng"]["generator"] == state["rng"]["generator"] and back["rng"]["python"] == random.getstate()


def test_planted_and_unsafe_checkpoints_are_refused_with_one_line(tmp_path: Path) -> None:
    study, trial, _, store = _trial(tmp_path)
    heard: list[str] = []
    ckpt = Checkpoints(open_artifact_store(store), study._storage, trial._trial_id, on_refused=heard.append)
    artifact_id = ckpt.save({"step": 2})
    evidence = tmp_path / "evidence"
    plant(store / artifact_id, evidence)
    assert ckpt.load() is None and not evidence.exists()
    reason = study._storage.get_trial(trial._trial_id).user_attrs[REFUSED_ATTR]
    assert heard == [reason] == [ckpt.refused] and "\n" not in reason
    assert f"checkpoint {artifact_id} (step 2) refused, the trial starts fresh" in reason
    assert "builtins.open" in reason or "io.open" in reason, reason
    (store / artifact_id).write_bytes(b"\x00truncated")
    assert ckpt.load() is None and "refused" in ckpt.refused
    buffer = io.BytesIO()
    torch.save({"step": 2, "array": np.zeros(3)}, buffer)  # numpy arrays are not plain types
    (store / artifact_id).write_bytes(buffer.getvalue())
    assert ckpt.load() is None and "refused" in ckpt.refused
    (store / artifact_id).unlink()
    assert ckpt.load() is None and "missing from the artifact store" in ckpt.refused


def test_a_retry_refuses_a_planted_checkpoint_and_starts_fresh(workdir: Path) -> None:
    """The real path: a CLI study checkpoints, is stopped mid-trial, its checkpoint is replaced
    by a planted one, and the re-run's retry restores nothing, runs nothing and starts at step 1."""
    _spec(workdir, "planted", n_trials=1, sleep_per_step=0.15, checkpoint_every=2)
    url = f"sqlite:///{workdir / 'studies.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "hpo", "optimize", "--study", "planted"], cwd=workdir,
                            env=hpo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder: list[optuna.trial.FrozenTrial] = []
    _wait(lambda: (workdir / "studies.db").exists()
          and bool((t := _checkpointed_running(url, "planted", proc.pid)) and not holder.append(t)))
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    artifact_id = optuna.load_study(study_name="planted", storage=open_storage(url)).trials[0] \
        .system_attrs[CHECKPOINT_ATTR]["artifact_id"]
    evidence = workdir / "evidence"
    plant(workdir / "artifacts" / artifact_id, evidence)
    again = run_hpo("optimize", "--study", "planted", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert not evidence.exists(), "the planted pickle ran"
    study = optuna.load_study(study_name="planted", storage=open_storage(url))
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert f"checkpoint {artifact_id} (step " in retry[0].user_attrs[REFUSED_ATTR]
    assert min(retry[0].intermediate_values) == 1, "a refused checkpoint means a fresh start"


def _planted_best(tmp_path: Path) -> tuple[str, str, Path]:
    """A known study whose best trial's checkpoint in ``tmp_path/store`` has been replaced by a
    planted one; returns (storage URL, artifact id, the file its unpickling would create)."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = known_study(url)
    add_best_with_checkpoint(study, tmp_path / "store", tmp_path)
    artifact_id = study.best_trial.system_attrs[CHECKPOINT_ATTR]["artifact_id"]
    plant(tmp_path / "store" / artifact_id, tmp_path / "evidence")
    return url, artifact_id, tmp_path / "evidence"


def test_best_export_refuses_a_planted_checkpoint(tmp_path: Path, capsys: object) -> None:
    url, _, evidence = _planted_best(tmp_path)
    out = tmp_path / "out"
    code = main(["best", "--study", "known", "--storage", url, "--export", str(out),
                 "--artifacts", str(tmp_path / "store")])
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert code == 1 and len(err.strip().splitlines()) == 1 and "refused, not exported" in err, err
    assert not evidence.exists()
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "metrics.json"]
    assert "refused" in json.loads((out / "metrics.json").read_text())["checkpoint_problem"]


def test_copy_does_not_spread_a_planted_checkpoint(tmp_path: Path, capsys: object) -> None:
    url, artifact_id, evidence = _planted_best(tmp_path)
    assert main(["copy", "--from", url, "--to", f"sqlite:///{tmp_path / 'b.db'}", "--artifacts-from",
                 str(tmp_path / "store"), "--artifacts-to", str(tmp_path / "other")]) == 0
    assert "0 artifact files, 1 checkpoints refused" in capsys.readouterr().out  # type: ignore[attr-defined]
    assert not evidence.exists() and not (tmp_path / "other" / artifact_id).exists()
