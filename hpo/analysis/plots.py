"""Figures of a study: Optuna's own where one exists, ours for curves and time vs loss.

``history``, ``importance``, ``pareto`` and ``slice`` are ``optuna.visualization`` figures
(one objective at a time in a multi-objective study, chosen with ``metric``). ``curves``
(every trial's learning curve, multi-objective studies included) and ``time-vs-loss``
(the study's clock, e.g. ``cpu_seconds``, against the loss, the seeds' comparison plot) are built here from the
curves ``hpo`` stores: intermediate values and the ``hpo:m:<step>`` metrics.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import optuna
import plotly.graph_objects as go

from hpo.storage.bulk import read_trials
from hpo.errors import HpoError, first_line
from hpo.analysis.importance import make_evaluator, objective_target, quiet_optuna
from hpo.storage.backend import curve
from hpo.analysis.study_info import study_spec

STATE_STYLE = {"COMPLETE": "solid", "PRUNED": "dot", "FAIL": "dash", "RUNNING": "longdash"}


def figure(study: optuna.Study, kind: str, metric: str | None = None, evaluator: str = "ped-anova") -> go.Figure:
    """The ``kind`` figure of ``study`` (see the module docstring)."""
    builders: dict[str, Callable[[], go.Figure]] = {
        "history": lambda: _optuna_figure(study, optuna.visualization.plot_optimization_history, metric),
        "importance": lambda: _optuna_figure(study, optuna.visualization.plot_param_importances, metric,
                                             lower_is_better=evaluator == "ped-anova",
                                             evaluator=make_evaluator(evaluator)),
        "pareto": lambda: pareto_figure(study),
        "curves": lambda: curves_figure(study, metric),
        "time-vs-loss": lambda: curves_figure(study, metric, clock=study_clock(study)),
        "slice": lambda: _optuna_figure(study, optuna.visualization.plot_slice, metric),
    }
    if kind not in builders:
        raise HpoError(f"--kind {kind}: unknown (fix: one of {', '.join(builders)})")
    return builders[kind]()


def _optuna_figure(study: optuna.Study, plot: Callable[..., go.Figure], metric: str | None,
                   lower_is_better: bool = False, **kw: object) -> go.Figure:
    """An ``optuna.visualization`` figure of one objective, titled with the study's name."""
    name, target = objective_target(study, metric, lower_is_better)
    with quiet_optuna():
        fig = plot(study, target=target, target_name=name, **kw)
    return fig.update_layout(title=f"{fig.layout.title.text} - {study.study_name}")


def pareto_figure(study: optuna.Study) -> go.Figure:
    """Optuna's Pareto-front plot with the objectives' names; one line of error for one objective."""
    if len(study.directions) < 2:
        raise HpoError(f"--kind pareto: study '{study.study_name}' has one objective "
                       "(fix: use --kind history, or a multi-objective study)")
    fig = optuna.visualization.plot_pareto_front(study, target_names=list(study.metric_names or []) or None)
    return fig.update_layout(title=f"{fig.layout.title.text} - {study.study_name}")


def study_clock(study: optuna.Study) -> str:
    """The clock the study's spec names (``train_seconds`` for a study without one)."""
    spec = study_spec(study)
    return spec.clock if spec is not None and spec.clock != "wall" else "train_seconds"


def curves_figure(study: optuna.Study, metric: str | None = None, clock: str | None = None) -> go.Figure:
    """One line per trial (any state, any number of objectives); the target as a line."""
    spec = study_spec(study)
    y_name = metric or (spec.curve.metric if spec else "intermediate value")
    fig = go.Figure()
    for t in read_trials(study, curves=True):
        xs, ys = curve(t, metric, clock)
        if not len(xs):
            continue
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", marker={"size": 3},
            name=f"trial {t.number} ({t.state.name})",
            line={"dash": STATE_STYLE.get(t.state.name, "solid")},
            hovertemplate=f"trial {t.number}<br>{clock or 'step'} %{{x}}<br>{y_name} %{{y:.4g}}<extra></extra>",
        ))
    if not fig.data:
        what = f"'{clock}' and '{y_name}'" if clock else f"'{y_name}'"
        raise HpoError(f"study '{study.study_name}': no trial reported {what} with its curve "
                       "(fix: report(step, ...) them in the training function)")
    if spec and spec.target and (metric or spec.curve.metric) == spec.target.metric:
        fig.add_hline(y=spec.target.level, line_dash="dash", annotation_text=f"target {spec.target.level:g}")
    kind = "time vs loss" if clock else "learning curves"
    fig.update_layout(title=f"{kind} - {study.study_name}", xaxis_title=clock or "step", yaxis_title=y_name,
                      legend_title="dotted: PRUNED, dashed: FAIL")
    return fig


def save(fig: go.Figure, out: str | Path) -> Path:
    """Write ``.html`` (self-contained, works offline) or ``.png`` (needs kaleido)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".png"):
        raise HpoError(f"--out {out}: unknown file type '{suffix}' (fix: end it in .html or .png)")
    if suffix == ".png" and importlib.util.find_spec("kaleido") is None:
        raise HpoError(f"--out {out}: PNG needs the kaleido package, which is not installed "
                       "(fix: pip install kaleido, or write .html)")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        fig.write_html(out, include_plotlyjs=True)
        return out
    try:
        fig.write_image(out, width=1000, height=600)
    except Exception as e:  # noqa: BLE001 - kaleido's failures (e.g. no browser) become one line
        first = first_line(e)
        raise HpoError(f"--out {out}: the PNG export failed: {first} (fix: write .html instead)") from None
    return out
