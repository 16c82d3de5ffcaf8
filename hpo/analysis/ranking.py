"""One order of a study's trials, used wherever ``hpo`` ranks them: ``report``, ``best``,
narrowing's top-k, ``rerun``'s finalists, the Pareto front and its knee.

Ranked trials are the COMPLETE ones that ran their own config: a deterministic objective's
copies (``copy_of``) and the seed re-runs of finalists (``rerun_of``) repeat a config that
is ranked already; when a config has seed re-runs, its trial is ranked (one objective) by the
config's median over its seeds (:func:`over_seeds`), the one ranking ``report``'s "configs over
seeds" also prints. Trials that reached the target come first, every trial that missed it
(``reached_target`` false: its time to target is censored) after them, whatever their
values, so a censored trial never ranks above, nor is narrowed from ahead of, a trial that
got there (a config re-run over seeds counts as missed when its median run missed, or when a
seed diverged). Inside each of the two groups: by value for one objective; for several, like
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


def median(values: Sequence[float], sign: float) -> float:
    """The median of oriented values (``sign`` -1 to maximise); of an even count the worse
    middle one, so the median is a value some run had (a censored run's ranking value is
    never averaged into a time) and two seeds are not summarised by the luckier.

    Args:
        values: the runs' values.
        sign: 1 to minimise, -1 to maximise.
    """
    ordered = sorted(values, key=lambda v: sign * v)
    return ordered[len(ordered) // 2]


def over_seeds(trials: Sequence[FrozenTrial]) -> dict[int, tuple[list[FrozenTrial], int]]:
    """Each ranked trial with seed re-runs (``hpo rerun``): its COMPLETE runs (itself first)
    and how many re-runs diverged (PRUNED: re-runs are never pruned by a pruner).

    Args:
        trials: a study's trials.
    """
    runs = {t.number: [t] for t in trials if is_ranked(t)}
    diverged = dict.fromkeys(runs, 0)
    rerun = False
    for t in trials:
        root = t.user_attrs.get(RERUN_ATTR)
        if root not in runs or COPY_ATTR in t.user_attrs:
            continue
        rerun = True
        if t.state == TrialState.PRUNED:
            diverged[root] += 1
        elif t.state == TrialState.COMPLETE and t.values is not None:
            runs[root].append(t)
    if not rerun:
        return {}
    return {n: (r, diverged[n]) for n, r in runs.items() if len(r) + diverged[n] > 1}


def _keyed(done: list[FrozenTrial], dirs: list[StudyDirection],
           seeds: dict[int, tuple[list[FrozenTrial], int]]) -> list[tuple[FrozenTrial, bool, float | None]]:
    """Each ranked trial with whether it missed and (one objective) the value it ranks by:
    its own, or its config's median over seeds."""
    sign = -1.0 if dirs[0] == StudyDirection.MAXIMIZE else 1.0
    out = []
    for t in done:
        if len(dirs) == 1 and t.number in seeds:
            runs, diverged = seeds[t.number]
            middle = median([r.values[0] for r in runs], sign)
            holder = next(r for r in runs if r.values[0] == middle)
            out.append((t, missed(holder) or diverged > 0, middle))
        else:
            out.append((t, missed(t), t.values[0] if len(dirs) == 1 else None))
    return out


def _order(trials: list[FrozenTrial], directions: list[StudyDirection],
           value: dict[int, float | None]) -> list[list[FrozenTrial]]:
    """Fronts, best first, each in its own order (one objective: by ``value``)."""
    if not trials:
        return []
    if len(directions) == 1:
        sign = -1.0 if directions[0] == StudyDirection.MAXIMIZE else 1.0
        return [sorted(trials, key=lambda t: (sign * value[t.number], t.number))]
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
    keyed = _keyed([t for t in trials if is_ranked(t)], dirs, over_seeds(trials))
    value = {t.number: v for t, _, v in keyed}
    order: list[FrozenTrial] = []
    fronts: dict[int, int] = {}
    for group in ([t for t, m, _ in keyed if not m], [t for t, m, _ in keyed if m]):
        for front in _order(group, dirs, value):
            number = len(set(fronts.values())) + 1
            for t in front:
                fronts[t.number] = number
            order.extend(front)
    return order, fronts


def unranked(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials :func:`rank` leaves out, by number."""
    return sorted((t for t in trials if not is_ranked(t)), key=lambda t: t.number)
