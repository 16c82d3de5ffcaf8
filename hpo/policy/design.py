"""The Stage-2 design: a few levels per parameter, reduced to about ``runs`` points by pyDOE3.

Levels: 3–6 per numeric parameter, evenly spaced between its bounds (log-spaced for log
parameters), ints rounded and floats with a step snapped to the grid, then deduplicated;
a categorical parameter's levels are its choices.

Reduction: a full factorial no larger than ``runs`` is used whole. Otherwise pyDOE3's
generalized subset design (``gsd``: a fractional factorial for factors with more than two
levels) is built for each level count 6..3 and each reduction factor that is cheap (its
orthogonal arrays hold ``reduction ** n_factors`` cells) and *balanced* (in every factor
the rarest level appears at least ``BALANCE`` = half as often as the commonest; large
reductions lose whole levels); the design closest in size to ``runs`` wins, more levels on
a tie. With many factors no such gsd gets within ``TOLERANCE`` (25%) of ``runs``; then a
pyDOE3 Latin hypercube of exactly ``runs`` points over 6 levels per numeric parameter is
used, each level of each factor taken ``runs / levels`` times (±1). Duplicate points are
dropped (also those that differ only in parameters their ``when`` switches off) and the run
order is shuffled with a fixed seed, so an interrupted Stage 2 has
still spread its first runs over the whole design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyDOE3 import fullfact, gsd, lhs

from hpo.specs.models import CategoricalParam, IntParam, Param, active, same_value

MIN_LEVELS, MAX_LEVELS = 3, 6
GSD_CELLS = 200_000
TOLERANCE = 0.25
BALANCE = 0.5


@dataclass(frozen=True)
class Design:
    levels: dict[str, list[Any]]
    points: list[dict[str, Any]]
    method: str  # how the points were chosen, for the plan
    full_size: int  # the full factorial's size


def param_levels(p: Param, n: int) -> list[Any]:
    """Up to ``n`` distinct levels of ``p`` between its bounds (module docstring)."""
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    raw = np.geomspace(p.low, p.high, n) if p.log else np.linspace(p.low, p.high, n)
    step = p.step if isinstance(p, IntParam) or p.step else None
    if step is not None:
        top = math.floor((p.high - p.low) / step + 1e-9)
        idx = [min(top, math.floor((x - p.low) / step + 0.5)) for x in raw]
        cast = int if isinstance(p, IntParam) else lambda v: round(float(v), 12)
        values = [cast(p.low + i * step) for i in idx]
    else:
        inner = [min(p.high, max(p.low, float(f"{x:.4g}"))) for x in raw[1:-1]]
        values = [float(p.low), *inner, float(p.high)]
    return list(dict.fromkeys(values))


def balance(rows: np.ndarray, counts: list[int]) -> float:
    """Worst over factors of (rarest level's count / commonest level's count); 0 if one is missing."""
    worst = 1.0
    for j, c in enumerate(counts):
        seen = np.bincount(np.asarray(rows)[:, j].astype(int), minlength=c)
        worst = min(worst, seen.min() / seen.max())
    return float(worst)


def _index_rows(counts: list[int], runs: int) -> tuple[np.ndarray, str] | None:
    """The balanced gsd closest to ``runs`` for these level counts (full factorial if small)."""
    full = math.prod(counts)
    if full <= runs:
        return fullfact(counts).astype(int), "full factorial"
    best: tuple[int, np.ndarray, str] | None = None
    first = max(2, math.floor(full / (runs * (1 + TOLERANCE))))  # a gsd has about full/r points
    for r in range(first, full + 1):
        if r ** len(counts) > GSD_CELLS:
            break
        try:
            rows = np.asarray(gsd(counts, r))
        except ValueError:  # reduction too large for these levels
            break
        if balance(rows, counts) >= BALANCE and (best is None or abs(len(rows) - runs) < best[0]):
            best = (abs(len(rows) - runs), rows, f"generalized subset design (pyDOE3 gsd, reduction {r})")
        if len(rows) <= runs:
            break
    return None if best is None else (best[1], best[2])


def _latin_hypercube(counts: list[int], runs: int, seed: int) -> np.ndarray:
    """``runs`` rows; column j takes each of its ``counts[j]`` levels runs/counts[j] times (±1)."""
    u = lhs(len(counts), samples=runs, seed=seed)
    strata = np.minimum(np.floor(u * runs).astype(int), runs - 1)  # a permutation per column
    return np.stack([strata[:, j] * c // runs for j, c in enumerate(counts)], axis=1)


def _active_only(space: dict[str, Param], point: dict[str, Any]) -> dict[str, Any]:
    """``point`` without the parameters its own values switch off (``when``); a parameter's
    condition is judged on the ones kept before it."""
    kept: dict[str, Any] = {}
    for name, value in point.items():
        if active(space[name], kept):
            kept[name] = value
    return kept


def one_factor(space: dict[str, Param], base: dict[str, Any], levels: int) -> list[dict[str, Any]]:
    """``base``, then ``base`` with one of its parameters moved to each other of its ``levels``
    levels (:func:`param_levels`) at a time: one-factor-at-a-time around a baseline (seed 003's
    Stage-1 groups A-F), so a study starts from a known config and sees each factor's effect
    alone. Parameters ``base`` leaves out stay out (the sampler picks them); a move that switches
    a parameter off (``when``) drops it; duplicates are dropped."""
    order = [k for k in space if k in base]
    points = [base]
    for name in order:
        for level in param_levels(space[name], levels):
            if not same_value(level, base[name]):
                points.append(_active_only(space, {k: level if k == name else base[k] for k in order}))
    return _unique(points)


def _unique(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``points`` without repeats, first occurrence kept."""
    return list({tuple(sorted(map(repr, p.items()))): p for p in points}.values())


def build_design(space: dict[str, Param], runs: int, levels: int | None = None, seed: int = 0) -> Design:
    """About ``runs`` points over ``space`` (module docstring); ``levels`` fixes the count per
    numeric parameter instead of trying 6..3."""
    if not space or runs < 1:
        return Design({}, [], "none (empty space)" if not space else "none (runs < 1)", 0)
    candidates = []
    for n in [levels] if levels else range(MAX_LEVELS, MIN_LEVELS - 1, -1):
        lv = {name: param_levels(p, n) for name, p in space.items()}
        found = _index_rows([len(v) for v in lv.values()], runs)
        if found is not None:
            candidates.append((abs(len(found[0]) - runs), -n, lv, *found))
    best = min(candidates, key=lambda c: c[:2]) if candidates else None
    if best is None or (best[0] > TOLERANCE * runs and best[4] != "full factorial"):
        lv = {name: param_levels(p, levels or MAX_LEVELS) for name, p in space.items()}
        rows = _latin_hypercube([len(v) for v in lv.values()], runs, seed)
        method = f"Latin hypercube over the levels (pyDOE3 lhs; no gsd within {TOLERANCE:.0%} of {runs})"
    else:
        _, _, lv, rows, method = best
    names = list(lv)
    points = [_active_only(space, {k: lv[k][int(i)] for k, i in zip(names, row)}) for row in rows]
    unique = _unique(points)
    order = np.random.default_rng(seed).permutation(len(unique))
    return Design(lv, [unique[i] for i in order], method, math.prod(len(v) for v in lv.values()))
