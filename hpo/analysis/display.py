"""How numbers and outcomes read in every table ``hpo`` prints: digits that mean something,
and a missed target never shown as if it were a time.

One training run's time to target moves by 10-20 % from seed to seed, so seconds get three
significant digits (``41.3``, ``312``, ``1,234``); other values four (``1.447``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Mapping

from hpo._optuna import CENSORED_AT_ATTR, CLOCK_ATTR, CLOSEST_ATTR, REACHED_ATTR, TTT_ATTR


def seconds(value: float | None) -> str:
    """Seconds to three significant digits, never in exponent form."""
    if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{round(value, digits):,.{digits}f}"


def number(value: Any) -> str:
    """A float to four significant digits; anything else as it is."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1e4:
            return f"{int(value):,}"  # token counts and the like
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def is_seconds(key: str) -> bool:
    """Whether a column or metric named ``key`` holds seconds."""
    return key in (TTT_ATTR, CENSORED_AT_ATTR, "duration") or key.endswith("seconds")


def cell(key: str, value: Any) -> str:
    """One value of column ``key`` as a table shows it."""
    return seconds(value) if is_seconds(key) and isinstance(value, (int, float)) and not isinstance(value, bool) \
        else number(value)


def missed(attrs: Mapping[str, Any]) -> bool:
    """Whether user attributes ``attrs`` say the trial missed the target."""
    return attrs.get(REACHED_ATTR) is False


def censored_text(attrs: Mapping[str, Any], target: str | None = None) -> str:
    """A missed target as a table shows it, e.g. ``>75.0 s, missed (closest 1.472)``: its time
    to target is only known to be over the clock where it stopped."""
    at = attrs.get(CENSORED_AT_ATTR)
    closest = attrs.get(CLOSEST_ATTR)
    text = f">{seconds(at)} s, missed" if at is not None else "missed"
    if target:
        text += f" {target}"
    if closest is not None:
        text += f" (closest {number(float(closest))})"
    return text


def value_cell(key: str, value: Any, attrs: Mapping[str, Any], censored: bool = False, target: str | None = None) -> str:
    """One value of a trial as every table shows it: a missed target's time to target as
    censored (:func:`censored_text`), anything else as :func:`cell` does.

    Args:
        key: the objective's or column's name.
        value: its value.
        attrs: the trial's user attributes (or its row): where a miss stopped and how close it came.
        censored: whether the trial missed the target.
        target: the target, e.g. ``val_loss < 1.45``, to name in a censored value.
    """
    return censored_text(attrs, target) if censored and key == TTT_ATTR else cell(key, value)


def target_counts(attrs: Iterable[Mapping[str, Any]]) -> dict[str, int] | None:
    """``{"reached": k, "missed": m}`` over the trials (their user attributes) judged on the
    target, or None when no trial was (a study without a target)."""
    judged = [a for a in attrs if REACHED_ATTR in a]
    if not judged:
        return None
    return {"reached": sum(not missed(a) for a in judged), "missed": sum(missed(a) for a in judged)}


def target_line(reached: int, missed_: int, target: str | None) -> str:
    """e.g. ``target val_loss < 1.45: reached by 3 of 5 ranked trials; 2 missed (censored)``."""
    what = f"target {target}" if target else "target"
    if reached == 0:
        return f"{what}: no trial reached it ({missed_} missed: every time to target is censored)"
    return (f"{what}: reached by {reached} of {reached + missed_} ranked trials"
            + (f"; {missed_} missed it (their times to target are censored, ranked after)" if missed_ else ""))


def state_counts(states: Iterable[str]) -> dict[str, int]:
    """How many trials are in each state, by state name in alphabetical order."""
    return dict(sorted(Counter(states).items()))


def counts_text(counts: Mapping[str, int]) -> str:
    """e.g. ``3 COMPLETE, 1 PRUNED``, or ``no trials``."""
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"


def outcome_sentence(attrs: Mapping[str, Any], target: str | None) -> str:
    """One sentence on a trial's target (stored on the trial as ``outcome``, so the dashboard
    shows it, and in exports): when it got there, or that its time to target is censored."""
    target = target or "the target"
    clock = attrs.get(CLOCK_ATTR, "its clock")
    if attrs.get(REACHED_ATTR):
        return f"reached {target} in {seconds(attrs.get(TTT_ATTR))} s of {clock}"
    closest = attrs.get(CLOSEST_ATTR)
    near = "" if closest is None else f", closest {number(float(closest))}"
    missed_ = f"censored: did not reach {target} within {seconds(attrs.get(CENSORED_AT_ATTR))} s of {clock}{near}"
    if TTT_ATTR not in attrs:  # pruned: no time to target at all
        return missed_
    return f"{missed_}; its time_to_target {seconds(attrs[TTT_ATTR])} is a ranking value above the budget, not a time"


def prune_text(reason: dict[str, Any] | None, step: int) -> str:
    """One line saying which pruner stopped the trial and on what evidence.

    Args:
        reason: the pruner's reason (``prune_reason``: pruner, value, reference, ...), if any.
        step: the step it stopped at.
    """
    if not reason:
        return f"pruned at step {step}"
    verb = "capped" if reason.get("censored") else "pruned"  # a capped trial ends COMPLETE
    text = f"{reason.get('pruner', 'pruner')}: {verb} at step {step}"
    if reason.get("reference") is not None and reason.get("difference") is not None:
        index = reason.get("index", "tokens")
        at = f"{reason[index]:.0f} tokens" if index == "tokens" else f"{index} {reason[index]:.4g}"
        text += (f", value {reason['value']:.4g} vs reference {reason['reference']:.4g}"
                 f" at {at} (worse by {reason['difference']:.3g})")
    elif reason.get("why"):
        text += f": {reason['why']}"
    return text
