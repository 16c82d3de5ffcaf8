"""One order of a study's trials, used wherever ``hpo`` ranks them: ``report``, ``best``,
narrowing's top-k, ``rerun``'s finalists, the Pareto front and its knee.

Ranked trials are the COMPLETE ones that ran their own config: a deterministic objective's
copies (``copy_of``) and the seed re-runs of finalists (``rerun_of``) repeat a config that
is ranked already. Trials that reached the target come first, every trial that missed it
(``reached_target`` false: its time to target is censored) after them, whatever their
values, so a censored trial never ranks above, nor is narrowed from ahead of, a trial that
got there. Inside each of the two groups: by value for one objective; for several, like
NSGA-II's survivor selection (Optuna's own): non-dominated fronts, and inside a front the
largest crowding distance first, so the front's extremes and sparse parts lead. Fronts are
numbered on through both groups; front 1 is the Pareto front (of the trials that reached
the target, when any did).
"""

from __future__ import annotations

from typing import Sequence

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo._optuna import COPY_ATTR, REACHED_ATTR, RERUN_ATTR, crowding_sort, nondominated_fronts


def _direction(d: StudyDirection | str) -> StudyDirection:
    if isinstance(d, StudyDirection):
        return d
    return StudyDirection.MAXIMIZE if d.lower() == "maximize" else StudyDirection.MINIMIZE


def is_ranked(t: FrozenTrial) -> bool:
    """COMPLETE with values, and not a copy or a seed re-run of another trial's config."""
    return (t.state == TrialState.COMPLETE and t.values is not None
            and COPY_ATTR not in t.user_attrs and RERUN_ATTR not in t.user_attrs)


def missed(t: FrozenTrial) -> bool:
    """Whether the trial missed the study's target (its time to target is censored)."""
    return t.user_attrs.get(REACHED_ATTR) is False


def _order(trials: list[FrozenTrial], directions: list[StudyDirection]) -> list[list[FrozenTrial]]:
    """Fronts, best first, each in its own order."""
    if not trials:
        return []
    if len(directions) == 1:
        sign = -1.0 if directions[0] == StudyDirection.MAXIMIZE else 1.0
        return [sorted(trials, key=lambda t: (sign * t.values[0], t.number))]
    fronts = nondominated_fronts(sorted(trials, key=lambda t: t.number), directions)
    for front in fronts:
        crowding_sort(front)
    return fronts


def rank(
    trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection | str]
) -> tuple[list[FrozenTrial], dict[int, int]]:
    """The ranked trials best first, and each one's front (trial number -> front, 1 = best).

    Args:
        trials: any of a study's trials; only :func:`is_ranked` ones are ranked.
        directions: the study's directions (``StudyDirection`` or ``"minimize"``/``"maximize"``).
    """
    dirs = [_direction(d) for d in directions]
    done = [t for t in trials if is_ranked(t)]
    order: list[FrozenTrial] = []
    fronts: dict[int, int] = {}
    for group in ([t for t in done if not missed(t)], [t for t in done if missed(t)]):
        for front in _order(group, dirs):
            number = len(set(fronts.values())) + 1
            for t in front:
                fronts[t.number] = number
            order.extend(front)
    return order, fronts


def unranked(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials :func:`rank` leaves out, by number."""
    return sorted((t for t in trials if not is_ranked(t)), key=lambda t: t.number)
