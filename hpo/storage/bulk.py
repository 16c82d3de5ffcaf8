"""Reading a whole study's trials fast: one plain query per table, curves only on request.

``study.get_trials()`` on an RDB storage builds ORM objects for every intermediate value
and every ``hpo:m:<step>`` attribute: about 3 s per 1,000 trials with 20-step curves. A
report needs none of that, so on an RDB storage this reads Optuna's tables directly (one
SELECT each, distributions decoded once per distinct JSON) and returns ordinary
:class:`~optuna.trial.FrozenTrial` objects; any other storage goes through the public API.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo import _optuna
from hpo._optuna import rdb_backend, trial_metrics

ID_CHUNK = 1000  # trial ids per IN (...) list, well under every database's parameter limit


def read_trials(study: optuna.Study, curves: bool = False) -> list[FrozenTrial]:
    """All trials of ``study`` ordered by number.

    On an RDB storage and without ``curves`` the trials carry no intermediate values and no
    ``hpo:m:<step>`` system attributes (every other attribute is there); other storages
    return complete trials either way.

    Args:
        study: the study.
        curves: also read the curves (intermediate values and per-step metrics).
    """
    rdb = rdb_backend(_optuna.storage_of(study))
    if rdb is None:
        return study.get_trials(deepcopy=False)
    return _optuna.read_trials(rdb, _optuna.study_id(study), curves)


def last_reports(study: optuna.Study, trials: list[FrozenTrial]) -> dict[int, dict[str, Any]]:
    """Trial number → the metrics of its last report (``hpo:m:<highest step>``), for ``trials``.

    What a report falls back on when a trial did not record a metric as a value or user
    attribute (a failed trial, or a pruned one whose metric is an objective).

    Args:
        study: the study the trials are of.
        trials: the trials, as :func:`read_trials` returned them.
    """
    rdb = rdb_backend(_optuna.storage_of(study))
    if rdb is None or any(k.startswith(_optuna.METRICS_PREFIX) for t in trials for k in t.system_attrs):
        return {t.number: m[max(m)] for t in trials if (m := trial_metrics(t.system_attrs))}
    numbers = {_optuna.trial_id(t): t.number for t in trials}
    return {numbers[tid]: m for tid, m in _optuna.last_metrics(rdb, list(numbers), ID_CHUNK).items()}
