"""A self-contained HTML report of a study (plotly, inlined: opens offline).

Sections: the Pareto set as a table (metrics and the folder each member is exported to),
the Pareto front with the presets drawn as reference points, the optimisation and
hypervolume history, parameter importances, feasible vs infeasible candidates, and for the
best trial where its predicted latency goes, layer by layer. Every axis carries its unit
(``explorer.metrics.metric_label``); an accuracy estimate is named as one.
"""

from __future__ import annotations

import html
import math
import os
import random
import warnings
from itertools import accumulate
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial
from plotly.subplots import make_subplots

from .. import __version__
from ..evaluators.latency.predict import predict_latency
from ..explorer import Objective, record_of
from ..explorer.feasibility import constraint_states
from ..explorer.metrics import COST_METRICS, is_cheap, kind_of, latency_device, metric_label, shown
from ..explorer.search import quiet_optuna
from ..files import write_atomic
from ..search_space import Spec, get_preset, list_presets
from ..search_space.naming import layer_name
from .config import StudyConfig
from .export.folders import export_folder
from .results import best, candidates, counts, hypervolume_history, trials_frame
from .storage.trial_reader import read_trials, with_params

_IMPORTANCE_SAMPLE = 1000


def write_report(
    study: optuna.Study, config: StudyConfig, path: Path, exports: Path = Path("exports")
) -> None:
    """``exports``: the folder ``attend-search export`` wrote (or will write) the Pareto set
    to; the report links each member's folder there."""
    with quiet_optuna(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        page = _page(study, config, path, exports)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, page)


def _page(study: optuna.Study, config: StudyConfig, path: Path, exports: Path) -> str:
    objectives = config.search.objectives
    trials = read_trials(study, params=False)  # the importances read their sample's
    feasible = candidates(trials)
    first = objectives[0].metric
    members = best(trials, objectives, sort=None if len(objectives) > 1 else first)
    sections = [
        ("Summary", _summary(trials, config)),
        (
            "Pareto set" if len(objectives) > 1 else f"Best {len(members)} by {first}",
            _members(members, config, path, exports),
        ),
    ]
    if len(objectives) >= 2:
        sections.append(("Pareto front", _pareto_figure(feasible, members, config)))
    sections.append(("Optimisation history", _history(feasible, config)))
    if len(objectives) >= 2 and len(feasible) >= 2:
        sections.append(("Hypervolume history", _hypervolume(feasible, config)))
    sections.append(("Parameter importances", _importances(study, feasible, config)))
    sections.append(("Feasible and infeasible candidates", _feasibility(trials, config)))
    top = best(trials, objectives, top=1, sort=first)
    device = next(filter(None, map(latency_device, config.search.metrics)), None)
    if top and device:
        sections.append(
            (
                f"Where the time goes: trial {top[0].number}, the best by {first}",
                _breakdown(top[0], device),
            )
        )
    body, script = [], True
    for title, content in sections:
        caption = ""
        if isinstance(content, tuple):
            content, caption = content
        if isinstance(content, go.Figure):
            content.update_layout(
                template="plotly_white",
                margin=dict(t=40, r=40),
                height=content.layout.height or 480,
            )
            content = content.to_html(full_html=False, include_plotlyjs=script)
            script = False
        body.append(
            f"<h2>{html.escape(title)}</h2>\n{content}"
            + (f"<p class='caption'>{html.escape(caption)}</p>" if caption else "")
        )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(config.name)}"
        f" - attend-search</title><style>body{{font-family:sans-serif;max-width:1300px;"
        f"margin:auto}} table{{border-collapse:collapse}} td,th{{padding:2px 8px;"
        f"border-bottom:1px solid #ddd;text-align:right}} th{{text-align:left}} "
        f"td.text{{text-align:left;font-family:monospace;white-space:nowrap}} "
        f"table.summary td{{text-align:left}} .caption{{color:#444}}"
        f"</style></head><body>"
        f"<h1>Study {html.escape(config.name)}</h1>" + "\n".join(body) + "</body></html>"
    )


def _axis(objective: Objective) -> str:
    """An objective's axis title: its unit, and "accuracy estimate" where it stands for
    accuracy (the caption under the figure says how good an estimate)."""
    estimate = kind_of(objective.metric).estimates_accuracy and objective.direction == "maximize"
    return metric_label(objective.metric) + (", an accuracy estimate" if estimate else "")


def _estimates(config: StudyConfig) -> str:
    """The caption naming the estimates behind accuracy axes, with their measured quality."""
    labels = [o.label for o in config.search.objectives if o.label != metric_label(o.metric)]
    return "; ".join(labels)


def _summary(trials: list[FrozenTrial], config: StudyConfig) -> str:
    c, s = counts(trials), config.search
    objectives = ", ".join(f"{o.direction} {o.label}" for o in s.objectives)
    rows = [
        ("trials", c.total),
        ("complete (feasible)", c.complete),
        ("infeasible", c.infeasible),
        ("pruned", c.pruned),
        ("failed", c.failed),
        ("duplicates reused", c.duplicates),
        (
            "space",
            f"{s.space.name} ({s.space.size:.3g} architectures once the study's rules narrow it)",
        ),
        ("objectives", objectives),
        ("sampler", s.sampler),
        ("seed", s.seed),
        ("constraints", ", ".join(s.constraint_names)),
        ("attend-search", __version__),
    ]
    return (
        "<table class=summary>"
        + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        + "</table>"
    )


def _members(
    members: list[FrozenTrial], config: StudyConfig, path: Path, exports: Path
) -> tuple[str, str] | str:
    """The Pareto set (or best trials) with their metrics and the folder each is exported to."""
    if not members:
        return "<p>No feasible trial yet.</p>"
    metrics = [o.metric for o in config.search.objectives]
    metrics += [m for m in COST_METRICS if m not in metrics]
    head = ["trial", "digest", *map(metric_label, metrics), "preset", "export"]
    rows = []
    for t in members:
        r = record_of(t)
        folder = export_folder(t, config, exports)
        link = Path(os.path.relpath(folder.resolve(), path.resolve().parent)).as_posix()
        where = (
            f"<a href='{html.escape(link)}/'>{html.escape(str(folder))}</a>"
            if folder.is_dir()
            else f"{html.escape(str(folder))} (not exported yet)"
        )
        rows.append(
            [
                str(t.number),
                r.digest,
                *[f"{shown(m, r.metrics[m]):.4g}" for m in metrics],
                html.escape(r.preset or ""),
                where,
            ]
        )
    text = {1, len(head) - 1}  # digest and folder: left-aligned, unbroken
    table = (
        "<table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(
            "<tr>"
            + "".join(
                f"<td{' class=text' if i in text else ''}>{cell}</td>" for i, cell in enumerate(row)
            )
            + "</tr>"
            for row in rows
        )
        + "</table>"
    )
    missing = sum(not export_folder(t, config, exports).is_dir() for t in members)
    several = len(config.search.objectives) > 1
    caption = (
        f"{missing} not exported yet: attend-search export {config.name} "
        f"{'--pareto' if several else '--top 10'} --out {exports}."
        if missing
        else ""
    )
    estimates = _estimates(config)
    return table, " ".join(
        filter(None, [caption, estimates and f"Accuracy estimates: {estimates}."])
    )


def _preset_points(config: StudyConfig, metrics: list[str]) -> dict[str, dict[str, float]]:
    """The presets scored like trials, at the space's input size and class count, on metrics
    that need no training (none at all where one does: a report trains nothing). Computed
    for each report, never stored: a report only reads its study."""
    s = config.search
    if any(kind_of(m).evaluator == "train_eval" for m in metrics):
        return {}
    size = 224 if 224 in s.space.input_size.values else s.space.input_size.values[-1]
    points = {}
    for name in list_presets():
        spec = get_preset(name, num_classes=s.space.num_classes, input_size=size)
        values = s.evaluation.cheap(spec, metrics)
        values.update(s.evaluation.expensive(spec, [m for m in metrics if m not in values]))
        points[name] = values
    return points


def _pareto_figure(
    feasible: list[FrozenTrial], front: list[FrozenTrial], config: StudyConfig
) -> tuple[go.Figure, str]:
    ox, oy = config.search.objectives[:2]
    x, y = ox.metric, oy.metric
    fig = go.Figure()
    for trials, name, style in (
        (feasible, "feasible trials", dict(color="#9ecae1")),
        (front, "Pareto front", dict(color="#08519c")),
    ):
        fig.add_scatter(
            x=[shown(x, t.values[0]) for t in trials],
            y=[shown(y, t.values[1]) for t in trials],
            mode="markers" if trials is feasible else "lines+markers",
            name=name,
            marker=style,
            text=[f"trial {t.number}" for t in trials],
        )
    points = _preset_points(config, [x, y])
    for name, values in points.items():
        fig.add_scatter(
            x=[shown(x, values[x])],
            y=[shown(y, values[y])],
            mode="markers+text",
            name=name,
            text=[name],
            textposition="top center",
            marker=dict(symbol="star", size=14),
        )
    fig.update_layout(xaxis_title=_axis(ox), yaxis_title=_axis(oy))
    untrained = "" if points else "The presets are not drawn: their accuracy would need training."
    return fig, " ".join(filter(None, [_estimates(config), untrained]))


def _history(feasible: list[FrozenTrial], config: StudyConfig) -> go.Figure | str:
    """One panel per objective (twin axes overlaid on one plot cut the right one off)."""
    if not feasible:
        return "<p>No feasible trial yet.</p>"
    objectives = config.search.objectives
    fig = make_subplots(rows=len(objectives), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for i, o in enumerate(objectives):
        values = [shown(o.metric, t.values[i]) for t in feasible]
        running = list(accumulate(values, min if o.direction == "minimize" else max))
        numbers = [t.number for t in feasible]
        fig.add_scatter(x=numbers, y=values, mode="markers", name=o.metric, row=i + 1, col=1)
        fig.add_scatter(
            x=numbers, y=running, mode="lines", name=f"best {o.metric}", row=i + 1, col=1
        )
        fig.update_yaxes(title_text=_axis(o), row=i + 1, col=1)
    fig.update_xaxes(title_text="trial", row=len(objectives), col=1)
    fig.update_layout(height=340 * len(objectives) + 120)  # room for each axis title
    return fig, _estimates(config)


def _hypervolume(feasible: list[FrozenTrial], config: StudyConfig) -> tuple[go.Figure, str]:
    """Reference point: each objective's worst feasible value, 10% further out."""
    objectives = config.search.objectives
    reference = []
    for i, o in enumerate(objectives):
        values = [t.values[i] for t in feasible]
        worst = max(values) if o.direction == "minimize" else min(values)
        reference.append(worst + 0.1 * abs(worst) * (1 if o.direction == "minimize" else -1))
    scale = math.prod(shown(o.metric, 1.0) for o in objectives)  # into the shown units
    volumes = [v * scale for v in hypervolume_history(feasible, objectives, reference)]
    fig = go.Figure(
        go.Scatter(x=[t.number for t in feasible], y=volumes, mode="lines", name="hypervolume")
    )
    point = ", ".join(
        f"{metric_label(o.metric)} {shown(o.metric, v):.4g}" for o, v in zip(objectives, reference)
    )
    units = " x ".join(kind_of(o.metric).unit for o in objectives)
    fig.update_layout(
        title="Hypervolume dominated by the feasible front, trial by trial",
        xaxis_title="trial",
        yaxis_title=f"hypervolume ({units})",
    )
    return fig, (
        f"Reference point: {point} (each objective's worst feasible value, 10% "
        f"further out). A larger hypervolume is a better front."
    )


def _importances(
    stored: optuna.Study, feasible: list[FrozenTrial], config: StudyConfig
) -> go.Figure | str:
    """fANOVA with 8 trees of depth 8 on at most 1,000 feasible trials (a seeded sample):
    Optuna's default forest (64 trees, depth 64) took ~11 s per objective on 900 trials of
    ~70 parameters and grows with the study; the smaller forest on a sample ranks mostly the
    same leading parameters (3 to 5 of the top 5 of a 32-tree, depth-16 forest on 2,000 of
    10,000 trials) in a few percent of the time, whatever the study's size. Only the sample is
    read with its
    parameters, and it enters the forest's study as parameters and values alone."""
    if len(feasible) < 4:
        return "<p>Too few feasible trials to estimate importances (need 4).</p>"
    if len(feasible) > _IMPORTANCE_SAMPLE:
        feasible = random.Random(0).sample(feasible, _IMPORTANCE_SAMPLE)
    feasible = with_params(stored, feasible)
    study = optuna.create_study(directions=[o.direction for o in config.search.objectives])
    study.add_trials(
        [
            optuna.trial.create_trial(
                params=t.params, distributions=t.distributions, values=t.values
            )
            for t in feasible
        ]
    )
    fig = go.Figure()
    for i, o in enumerate(config.search.objectives):
        scores = optuna.importance.get_param_importances(
            study,
            target=lambda t, i=i: t.values[i],
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0, n_trees=8, max_depth=8),
        )
        top = list(scores.items())[:15][::-1]
        fig.add_bar(x=[v for _, v in top], y=[k for k, _ in top], orientation="h", name=o.metric)
    fig.update_layout(
        xaxis_title="importance (fANOVA: share of the objective's variance)",
        barmode="group",
        height=640,
    )
    return fig


def _cheap_axes(config: StudyConfig) -> tuple[str, str]:
    """Two metrics every candidate has, feasible or not (cheap ones): the study's own first,
    objectives before constraints, then the costs."""
    s = config.search
    named = [o.metric for o in s.objectives] + s.constraints.metrics + list(COST_METRICS)
    cheap = [m for m in dict.fromkeys(named) if is_cheap(m)]
    return cheap[0], cheap[1]


def _feasibility(trials: list[FrozenTrial], config: StudyConfig) -> go.Figure | str:
    frame = trials_frame(trials)
    frame = frame[frame["state"] == "COMPLETE"]
    if frame.empty:
        return "<p>No finished trial.</p>"
    x, y = _cheap_axes(config)
    constraints = config.search.constraints
    fig = go.Figure()
    for feasible, color in ((True, "#31a354"), (False, "#de2d26")):
        part = frame[frame["feasible"] == feasible]
        violations = part.filter(like="violation.")
        names = [c.removeprefix("violation.") for c in violations.columns]
        violated = [
            ", ".join(
                str(c) for c in constraint_states(constraints, dict(zip(names, row))) if not c.met
            )
            for row in violations.to_numpy().tolist()
        ]
        fig.add_scatter(
            x=shown(x, part[f"metric.{x}"]),
            y=shown(y, part[f"metric.{y}"]),
            mode="markers",
            marker=dict(color=color),
            name="feasible" if feasible else "infeasible",
            text=[f"trial {n}: {v}" for n, v in zip(part["number"], violated)],
        )
    fig.update_layout(xaxis_title=metric_label(x), yaxis_title=metric_label(y))
    return fig


def _breakdown(trial: FrozenTrial, device: str) -> go.Figure:
    total, rows = predict_latency(Spec.from_dict(record_of(trial).spec), device, breakdown=True)
    top = sorted(rows, key=lambda r: r.ms, reverse=True)[:25][::-1]
    fig = go.Figure(
        go.Bar(
            x=[r.ms for r in top],
            y=[f"{layer_name(r.name)} ({r.op_class})" for r in top],
            orientation="h",
            text=[r.bound for r in top],
        )
    )
    fig.update_layout(
        title=f"{total:.3g} ms predicted on {device}; the 25 slowest kernels",
        xaxis_title="predicted time (ms, batch 1)",
        height=700,
    )
    return fig
