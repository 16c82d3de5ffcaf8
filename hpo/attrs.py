"""The attribute keys ``hpo`` writes on trials, in one place (readers and writers share them)."""

from __future__ import annotations

FAIL_ATTR = "fail_reason"  # why a trial failed
FAIL_TRACEBACK_ATTR = "fail_traceback"  # the last frames of a failed trial's traceback
STOP_ATTR = "stop_reason"  # why a trial stopped early: target, budget, pruner, copy
COPY_ATTR = "copy_of"  # a deterministic objective's repeated config: the trial whose result it took
RERUN_ATTR = "rerun_of"  # a seed re-run of a finalist (``hpo rerun``): the trial it re-runs
SEED_ATTR = "seed"  # ... and its training seed
CLOCK_ATTR = "clock"  # the metric the budget and time to target were read on
REACHED_ATTR = "reached_target"
TTT_ATTR = "time_to_target"
CENSORED_AT_ATTR = "censored_at"  # a miss: the clock where it stopped (its time to target is over it)
CLOSEST_ATTR = "closest"  # a miss: its best target-metric value within the budget
OUTCOME_ATTR = "outcome"  # one sentence: reached the target when, or censored (the dashboard shows it)
TARGET_ATTRS = (REACHED_ATTR, TTT_ATTR, CENSORED_AT_ATTR, CLOSEST_ATTR)
