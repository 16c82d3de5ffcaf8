"""Hand-made learning curves replayed through ``hpo`` (runner, reporter, view) and through plain Optuna.

A curve is a list of rows, each the keyword arguments of one ``report()`` call (``step`` optional:
rows are numbered from 1). Trial ``k`` of a replayed study gets curve ``k``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from hpo.policy.pruners import build_pruner
from hpo.run.loop import run
from hpo.run.session import Session, load_study
from hpo.specs.models import StudySpec, parse_spec
from hpo.storage.backend import open_storage

Row = dict[str, float]
Curve = list[Row]


def ppl_rows(ppls: list[float], tokens: list[float], seconds_per_row: float = 1.0) -> Curve:
    """Rows with ``val_ppl`` at the given token counts (``val_loss`` = log of it)."""
    return [{"val_loss": math.log(p), "val_ppl": p, "tokens": t, "train_seconds": seconds_per_row * (i + 1)}
            for i, (p, t) in enumerate(zip(ppls, tokens, strict=True))]


def loss_rows(losses: list[float]) -> Curve:
    """Rows with ``val_loss`` and tokens = step: token-indexed pruners see plain Optuna's x."""
    return [{"val_loss": v, "tokens": float(i + 1), "train_seconds": float(i + 1)} for i, v in enumerate(losses)]


def replay(rows: Curve, report: Callable[..., None]) -> dict[str, float]:
    """A training function that trains nothing: it reports the rows in order."""
    for i, row in enumerate(rows, start=1):
        metrics = {k: v for k, v in row.items() if k != "step"}
        report(int(row.get("step", i)), **metrics)
    return {}


def replay_spec(n: int, pruners: list[dict[str, Any]], **changes: Any) -> StudySpec:
    """A spec for ``n`` replayed trials with the given pruners (no search space: nothing is sampled)."""
    data: dict[str, Any] = {
        "study": "replay",
        "objective": "objectives.synthetic:train",  # importable; the session replays instead
        "metrics": {"val_loss": "minimize"},
        "n_trials": n,
        "sampler": {"name": "random", "options": {"seed": 0}},
        "pruners": pruners,
        **changes,
    }
    return parse_spec(data, "test spec")


def run_hpo_curves(curves: list[Curve], pruners: list[dict[str, Any]], url: str | None = None,
                   train: Callable[[Curve, Callable[..., None]], dict[str, float]] = replay,
                   **changes: Any) -> optuna.Study:
    """Run a study through ``hpo.run.loop.run`` (in this process) on the curves; in memory unless ``url``.

    Trials run one after the other, so the k-th call of the training function is trial k.
    """
    spec = replay_spec(len(curves), pruners, **changes)
    storage = open_storage(url) if url else InMemoryStorage()
    study = load_study(spec, storage)
    queue = iter(curves)
    session = Session(spec=spec, study=study, storage=storage, pruner=build_pruner(spec.pruners, clock=spec.clock),
                      train=lambda config, report: train(next(queue), report))
    run(session, out=io.StringIO())
    return study


def run_plain_curves(curves: list[list[float]], pruner: optuna.pruners.BasePruner,
                     direction: str = "minimize") -> optuna.Study:
    """Plain Optuna: ``trial.report(value, step)`` + ``should_prune()``, steps numbered from 1."""
    study = optuna.create_study(study_name="replay", direction=direction, pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        values = curves[trial.number]
        for step, value in enumerate(values, start=1):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return values[-1]

    study.optimize(objective, n_trials=len(curves))
    return study


def pruned_steps(study: optuna.Study) -> list[int | None]:
    """Per trial: the step it was pruned at, or None if it was not pruned."""
    return [t.last_step if t.state == TrialState.PRUNED else None for t in study.get_trials(deepcopy=False)]
