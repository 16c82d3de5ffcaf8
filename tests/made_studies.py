"""Studies for the results tests: hand-made ones with known trials, and synthetic sweeps run by hpo.

``run_synthetic`` goes through ``hpo.run.loop.optimize`` with ``objectives.synthetic:train`` (no sleeping,
no training), so the study carries everything a real one does: spec, curves, ``hpo:m:<step>``
metrics, prune and stop reasons.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from hpo.storage.artifacts import CHECKPOINT_ATTR, open_artifact_store
from hpo.run.loop import optimize
from hpo.analysis.study_info import SPEC_ATTR
from hpo.specs.models import StudySpec, parse_spec
from hpo._optuna import metric_key
from hpo.storage.backend import open_storage
from objectives.synthetic import train as synthetic_train

LR = FloatDistribution(1e-4, 1e-1, log=True)
WIDTH = CategoricalDistribution([64, 128])
KNOWN_SPEC = {"study": "known", "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
              "fixed": {"steps": 30, "seq_len": 64},
              "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                        "width": {"type": "categorical", "choices": [64, 128]}}}


def _trial(state: TrialState, value: float | None, lr: float, width: int, **attrs: Any) -> optuna.trial.FrozenTrial:
    curve = {1: 5.0, 2: value or 5.0}
    return optuna.create_trial(state=state, value=value, params={"lr": lr, "width": width},
                               distributions={"lr": LR, "width": WIDTH}, user_attrs=attrs,
                               intermediate_values=curve,
                               system_attrs={metric_key(s): {"val_loss": v, "tokens": 200.0 * s,
                                                             "train_seconds": 2.0 * s} for s, v in curve.items()})


def known_study(url: str, name: str = "known") -> optuna.Study:
    """Five trials whose ranking, compute and top-1 per axis are worked out by hand in the tests.

    Trial 1 has the best val_loss but missed the target (censored); trials 0 and 4 reached it."""
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="minimize")
    study.set_metric_names(["val_loss"])
    study.set_user_attr(SPEC_ATTR, {**KNOWN_SPEC, "study": name})
    prune = {"pruner": "kill_rule", "step": 2, "tokens": 400.0, "value": 4.0, "reference": 3.2, "difference": 0.8}
    study.add_trials([
        _trial(TrialState.COMPLETE, 3.0, 0.01, 64, train_seconds=10.0, tokens=1000, reached_target=True,
               time_to_target=8.0, val_ppl=20.1),
        _trial(TrialState.COMPLETE, 2.5, 0.02, 128, train_seconds=20.0, tokens=2000, reached_target=False,
               time_to_target=40.0, censored_at=20.0, closest=2.5, val_ppl=12.2),
        _trial(TrialState.PRUNED, 4.0, 0.001, 64, train_seconds=4.0, tokens=400, prune_reason=prune),
        _trial(TrialState.FAIL, None, 0.1, 128, fail_reason="RuntimeError: boom"),
        _trial(TrialState.COMPLETE, 2.8, 0.005, 64, train_seconds=30.0, tokens=3000, reached_target=True,
               time_to_target=30.0, val_ppl=16.4),
    ])
    return study


def known_mo_study(url: str, name: str = "known_mo") -> optuna.Study:
    """Four trials: (1,3), (2,2), (3,1) form the Pareto front; (2.5,2.5) is dominated by (2,2)."""
    study = optuna.create_study(study_name=name, storage=open_storage(url), directions=["minimize", "minimize"])
    study.set_metric_names(["val_loss", "train_seconds"])
    points = [(2.5, 2.5), (3.0, 1.0), (1.0, 3.0), (2.0, 2.0)]
    study.add_trials([optuna.create_trial(values=list(v), params={"lr": 0.01 * (i + 1)}, distributions={"lr": LR})
                      for i, v in enumerate(points)])
    return study


def add_best_with_checkpoint(study: optuna.Study, store: Path, tmp_path: Path) -> bytes:
    """A new best trial of a known study (val_loss 2.0) that saved a checkpoint while running,
    as runs do: uploaded to the artifact store at ``store``, recorded in ``hpo:checkpoint``."""
    import torch  # a real checkpoint: export and copy accept only what torch.load(weights_only=True) does

    src = tmp_path / "ckpt_step30.pt"
    torch.save({"step": 30, "weights": [1.0, 2.0]}, src)
    data = src.read_bytes()
    trial = study.ask({"lr": LR, "width": WIDTH})
    artifact_id = optuna.artifacts.upload_artifact(
        artifact_store=open_artifact_store(store), file_path=str(src), study_or_trial=trial)
    study._storage.set_trial_system_attr(trial._trial_id, CHECKPOINT_ATTR, {"artifact_id": artifact_id, "step": 30})
    trial.set_user_attr("train_seconds", 12.0)
    study.tell(trial, 2.0)
    return data


def synthetic_spec(name: str, multi_objective: bool = False, n_trials: int = 16, **changes: Any) -> StudySpec:
    """A random-sampled synthetic sweep over lr (matters most), width (a little), dropout (not at all)."""
    metrics = {"val_loss": "minimize", "train_seconds": "minimize"} if multi_objective else {"val_loss": "minimize"}
    data = {
        "study": name, "objective": "objectives.synthetic:train", "metrics": metrics, "n_trials": n_trials,
        "sampler": {"name": "random", "options": {"seed": 7}},
        "pruners": [{"name": "median", "options": {"n_startup_trials": 4, "n_warmup_steps": 4}}],
        "fixed": {"steps": 8, "seconds_per_step": 0.5},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                  "width": {"type": "int", "low": 128, "high": 256, "step": 64},
                  "dropout": {"type": "float", "low": 0.0, "high": 0.5}},
        **changes,
    }
    return parse_spec(data, "test")


def run_synthetic(url: str, name: str, multi_objective: bool = False, n_trials: int = 16,
                  **changes: Any) -> optuna.Study:
    """Run the sweep; on a SQLite ``url`` the artifact store is ``artifacts/`` beside the file."""
    spec = synthetic_spec(name, multi_objective, n_trials, **changes)
    where = Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else Path(tempfile.mkdtemp())
    artifacts = where / "artifacts"
    return optimize(spec, url, out=io.StringIO(), artifacts=str(artifacts))


def train_with_checkpoints(config: dict[str, Any], report: Any) -> dict[str, float]:
    """The synthetic curve, saving a checkpoint at every step as a real training loop would."""
    def checkpointing(step: int, **metrics: float) -> None:
        report.checkpoint({"step": step, "weights": [config["lr"]] * 4})
        report(step, **metrics)

    return synthetic_train(config, checkpointing)


_SHARED: dict[str, str] = {}


def shared_sweeps(factory: Any) -> str:
    """Storage URL holding synthetic sweeps "so" (30 trials) and "mo" (24, val_loss and
    train_seconds), built once per test process; tests must not change them (adding a
    study of another name is fine).

    The synthetic loss depends on lr far more than on width (128..256) and not at all on
    dropout; its train_seconds depends on width alone.
    """
    if "url" not in _SHARED:
        url = f"sqlite:///{factory.mktemp('sweeps') / 'studies.db'}"
        run_synthetic(url, "so", n_trials=30)
        run_synthetic(url, "mo", multi_objective=True, n_trials=24)
        _SHARED["url"] = url
    return _SHARED["url"]
