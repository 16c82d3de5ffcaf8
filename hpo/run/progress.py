"""Progress of a study, as plain lines that read the same on a terminal and in a log file.

A line when a trial starts (so a long first trial is not five silent minutes) and one when it
ends, with its outcome, the reason it stopped and the best so far. ``[k/n]`` counts the
study's finished trials (COMPLETE or PRUNED) against its total; queued and running trials
are not finished, and trials queued beyond the total (retries, a design) raise the total.
Seed re-runs of finalists count apart, as ``[rerun k/n]``.
"""

from __future__ import annotations

from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo._optuna import FAIL_ATTR, RERUN_ATTR, SEED_ATTR, STOP_ATTR

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PENDING = (TrialState.RUNNING, TrialState.WAITING)


def counts(trials: list[FrozenTrial], rerun: bool) -> tuple[int, int]:
    """(finished, finished + running + queued) among the search's trials or the seed re-runs."""
    mine = [t for t in trials if (RERUN_ATTR in t.user_attrs) == rerun]
    done = sum(t.state in FINISHED for t in mine)
    return done, done + sum(t.state in PENDING for t in mine)


class Progress:
    """Lines on ``out`` for the trials of one study.

    Args:
        study: the study.
        total: the study's total (``--n-trials``).
        out: where the lines go.
    """

    def __init__(self, study: optuna.Study, total: int, out: TextIO) -> None:
        self.study, self.total, self.out = study, total, out
        self.names = list(study.metric_names or [f"value{i}" for i in range(len(study.directions))])

    def _tag(self, rerun: bool) -> str:
        done, planned = counts(self.study.get_trials(deepcopy=False), rerun)
        if rerun:
            return f"[rerun {done}/{planned}]"
        return f"[{done}/{max(self.total, planned)}]"

    def started(self, trial: optuna.Trial, config: dict[str, Any]) -> None:
        rerun = RERUN_ATTR in trial.user_attrs
        seed = f" (seed re-run of trial {trial.user_attrs[RERUN_ATTR]}, seed {trial.user_attrs[SEED_ATTR]})" \
            if rerun else ""
        print(f"{self._tag(rerun)} trial {trial.number} started{seed}: {trial.params}", file=self.out, flush=True)

    def finished(self, trial: FrozenTrial) -> None:
        from hpo.analysis.tables import best_text, progress_values  # pandas-free, but only needed here

        rerun = RERUN_ATTR in trial.user_attrs
        why = trial.user_attrs.get(FAIL_ATTR) or trial.user_attrs.get(STOP_ATTR)
        note = f" ({why})" if why else ""
        print(f"{self._tag(rerun)} trial {trial.number} {trial.state.name}{progress_values(trial, self.names)}"
              f"{note}  {best_text(self.study)}", file=self.out, flush=True)

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)
