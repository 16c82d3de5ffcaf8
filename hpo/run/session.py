"""The session: one worker's open study, with its storage, objective, pruner and lock.

:func:`open_session` creates or resumes the study (:func:`load_study`) and queues the
spec's start configs once per study (:func:`enqueue_start`); :func:`hpo.run.loop.run` then
runs its trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from hpo import _optuna
from hpo._optuna import EXPERIMENT_ATTR
from hpo.storage.artifacts import open_artifact_store
from hpo.policy.design import one_factor
from hpo.errors import SpecError
from hpo.storage.locks import StudyLock
from hpo.run.progress import Progress
from hpo.policy.pruners import build_pruner
from hpo.run.reaping import stale_trial_callback
from hpo.run.retries import RetryFromCheckpoint
from hpo.policy.samplers import EXHAUSTIBLE, build_sampler
from hpo.run.command import CommandObjective
from hpo.specs.files import read_spec
from hpo.specs.models import CommandSpec, StudySpec, same_params
from hpo.storage.backend import JOURNAL_PREFIX, open_storage, resolve_url
from hpo.analysis.study_info import store_spec

DEFAULT_WATCHDOG = 4.0  # x the trial budget: wall seconds without a report before a trial is ended
DEFAULT_HEARTBEAT = 10  # seconds; a trial silent for 4x this is declared dead


@dataclass
class Session:
    """Everything one worker needs to run trials of one study."""

    spec: StudySpec
    study: optuna.Study
    storage: BaseStorage
    train: Callable[..., dict[str, float]]
    pruner: optuna.pruners.BasePruner
    artifacts: FileSystemArtifactStore | None = None
    lock: StudyLock | None = None
    retry: RetryFromCheckpoint = field(default_factory=RetryFromCheckpoint)
    total: int = 0
    current: int | None = None
    failures_in_a_row: int = 0
    ran: list[int] = field(default_factory=list)
    source: str = "spec"  # the spec file, for error lines
    mistake: str | None = None  # a spec or objective mistake a trial showed: the study stops
    exhausted: bool = False  # a grid or brute-force sampler has run every config
    watchdog: float = DEFAULT_WATCHDOG  # x the budget; 0: off
    progress: Progress | None = None

    @property
    def dedup(self) -> bool:
        """Never train a config twice: a deterministic objective, or a grid of configs."""
        return self.spec.deterministic or self.spec.sampler.name in EXHAUSTIBLE


def load_objective(spec: StudySpec) -> Callable[..., Any]:
    """The function trials call: the spec's ``module:function`` imported and checked, or a
    :class:`~hpo.run.command.CommandObjective` for a command; raises :class:`SpecError` on failure.

    Args:
        spec: the study spec.
    """
    if isinstance(spec.objective, CommandSpec):
        spec.objective.locate()
        return CommandObjective(spec.objective, spec.curve.metric, spec.clock)
    return spec.import_function()


def load_spec(path: str | Path, check_objective: bool = True, import_objective: bool = True) -> StudySpec:
    """Read and validate a spec file (:func:`hpo.specs.files.read_spec`), build its sampler and
    pruners (without a storage) and (optionally) check its objective: import it, or with
    ``import_objective=False`` only find its module. Every problem is one :class:`SpecError`
    line naming the file.

    Args:
        path: the spec file.
        check_objective: whether to check the objective at all.
        import_objective: import it and check its signature (else only find its module).
    """
    spec = read_spec(path)
    build_sampler(spec, str(path))
    build_pruner(spec.pruners, str(path), clock=spec.clock)  # the pruner the run builds
    if check_objective:
        try:
            load_objective(spec) if import_objective else spec.locate_objective()
        except SpecError as e:
            raise SpecError(f"{path}: {e}") from None
    return spec


def load_study(spec: StudySpec, storage: BaseStorage) -> optuna.Study:
    """Create the study or resume it; refuse a study whose objectives differ from the spec.

    Args:
        spec: the study spec (its name, directions, metrics and sampler).
        storage: the open storage.
    """
    study = optuna.create_study(
        study_name=spec.study,
        storage=storage,
        directions=spec.directions,
        sampler=build_sampler(spec),
        load_if_exists=True,
    )
    have = [d.name.lower() for d in study.directions]
    if have != spec.directions:
        raise SpecError(
            f"study '{spec.study}' exists with directions {have}, the spec says {spec.directions} "
            "(fix: give the spec a new study name)"
        )
    names = study.metric_names
    if names is None:
        with _optuna.experimental():
            study.set_metric_names(list(spec.metrics))
    elif list(names) != list(spec.metrics):
        raise SpecError(
            f"study '{spec.study}' exists with metrics {names}, the spec says {list(spec.metrics)} "
            "(fix: give the spec a new study name)"
        )
    store_spec(study, spec)
    return study


def start_configs(spec: StudySpec) -> list[dict[str, Any]]:
    """The spec's ``enqueue`` configs, then (``one_factor_levels``) the baseline ``enqueue[0]``
    with one parameter at a time moved to each of its other levels (:func:`hpo.policy.design.one_factor`)."""
    if not spec.one_factor_levels:
        return list(spec.enqueue)
    return [*spec.enqueue, *one_factor(spec.space, spec.enqueue[0], spec.one_factor_levels)[1:]]


def unheld(configs: list[dict[str, Any]], trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """``configs`` that none of ``trials`` holds yet, each once. A trial holds the params it
    was queued with (``fixed_params``; a partial config leaves the rest to the sampler), else
    its params, in any state: what Optuna's ``enqueue_trial(skip_if_exists=True)`` skips."""
    held = [t.system_attrs.get(_optuna.FIXED_PARAMS_ATTR, t.params) for t in trials]
    out: list[dict[str, Any]] = []
    for config in configs:
        if not any(same_params(config, h) for h in held):
            out.append(config)
            held.append(config)
    return out


def enqueue_start(study: optuna.Study, spec: StudySpec, lock: StudyLock | None = None) -> None:
    """Queue the spec's start configs (:func:`start_configs`; e.g. a baseline for ``kill_rule``'s
    ``baseline_trial: 0``) so they run first, once per study: a config some trial already holds
    (:func:`unheld`) is not queued again, and the study lock stops two workers that start
    together from both queueing it.

    Args:
        study: the study.
        spec: its spec.
        lock: the study lock, if other workers may start at the same time.
    """
    configs = start_configs(spec)
    if not configs:
        return
    if lock is not None:
        lock.acquire()
    try:
        for params in unheld(configs, study.get_trials(deepcopy=False)):
            name = spec.experiment_name(params)
            study.enqueue_trial(params, user_attrs={EXPERIMENT_ATTR: name} if name else None)
    finally:
        if lock is not None:
            lock.release()


def open_session(
    spec: StudySpec,
    storage_url: str | None = None,
    *,
    heartbeat: int = DEFAULT_HEARTBEAT,
    grace: int | None = None,
    max_retry: int = 3,
    artifacts: str | None = None,
    source: str = "spec",
    watchdog: float = DEFAULT_WATCHDOG,
) -> Session:
    """Open the storage (with heartbeats on an RDB), the study, the objective and pruners.

    Args:
        spec: the study spec.
        storage_url: the storage (default: ``$HPO_STORAGE`` or ``sqlite:///studies.db``).
        heartbeat: heartbeat interval in seconds on an RDB storage (0: off).
        grace: seconds without a heartbeat before a trial is presumed dead (default 4x).
        max_retry: how often a dead or interrupted trial is queued again.
        artifacts: the checkpoint store's directory.
        source: the spec file, named in error lines.
        watchdog: end a trial silent for this many times the budget (wall seconds; 0: off).
    """
    retry = RetryFromCheckpoint(max_retry)
    kwargs: dict[str, Any] = {}
    if heartbeat > 0 and not resolve_url(storage_url).startswith(JOURNAL_PREFIX):
        kwargs = dict(heartbeat_interval=heartbeat, grace_period=grace or 4 * heartbeat,
                      heartbeat_stale_trial_callback=stale_trial_callback(retry))
    storage = open_storage(storage_url, **kwargs)
    pruner = build_pruner(spec.pruners, source, clock=spec.clock)
    study = load_study(spec, storage)
    lock = StudyLock(storage_url, spec.study, getattr(storage, "engine", None))
    enqueue_start(study, spec, lock)
    return Session(spec=spec, study=study, storage=storage, train=load_objective(spec), pruner=pruner,
                   artifacts=open_artifact_store(artifacts), lock=lock, retry=retry, total=spec.n_trials,
                   source=source, watchdog=watchdog)
