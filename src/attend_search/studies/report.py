"""A self-contained HTML report of a study (plotly, inlined: opens offline).

Sections: the Pareto front with the presets drawn as reference points, the optimisation
and hypervolume history, parameter importances, feasible vs infeasible candidates, and
for the best trial where its predicted latency goes, layer by layer.
"""

from __future__ import annotations

import html
import random
import warnings
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from .. import __version__
from ..evaluators.forward_trace import torch_threads
from ..evaluators.latency import predict_latency
from ..explorer import record_of
from ..explorer.search import quiet_optuna
from ..search_space import Spec, get_preset, list_presets
from .config import StudyConfig
from .results import best, candidates, counts, hypervolume_history, pareto, trials_frame
from .store import write_atomic
from .trial_reader import read_trials


_IMPORTANCE_SAMPLE = 1000


def write_report(study: optuna.Study, config: StudyConfig, path: Path) -> None:
    with quiet_optuna(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        page = _page(study, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, page)


def _page(study: optuna.Study, config: StudyConfig) -> str:
    search = config.search
    objectives = search.objectives
    trials = read_trials(study)
    feasible = candidates(trials)
    sections = [("Summary", _summary(trials, config))]
    if len(objectives) >= 2:
        sections.append(("Pareto front", _pareto_figure(feasible, config)))
    sections.append(("Optimisation history", _history(feasible, config)))
    if len(objectives) >= 2 and len(feasible) >= 2:
        sections.append(("Hypervolume history", _hypervolume(feasible, config)))
    sections.append(("Parameter importances", _importances(feasible, config)))
    sections.append(("Feasible and infeasible candidates", _feasibility(trials)))
    top = best(trials, objectives, top=1)
    if top:
        sections.append((f"Where the time goes: trial {top[0].number}", _breakdown(top[0], config)))
    body, first = [], True
    for title, content in sections:
        if isinstance(content, go.Figure):
            content.update_layout(template="plotly_white", margin=dict(t=40),
                                  height=content.layout.height or 480)
            content = content.to_html(full_html=False, include_plotlyjs=first)
            first = False
        body.append(f"<h2>{html.escape(title)}</h2>\n{content}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(config.name)}"
            f" - attend-search</title><style>body{{font-family:sans-serif;max-width:1100px;"
            f"margin:auto}} table{{border-collapse:collapse}} td,th{{padding:2px 8px;"
            f"border-bottom:1px solid #ddd;text-align:right}}</style></head><body>"
            f"<h1>Study {html.escape(config.name)}</h1>" + "\n".join(body) + "</body></html>")


def _summary(trials: list[FrozenTrial], config: StudyConfig) -> str:
    c, s = counts(trials), config.search
    objectives = ", ".join(f"{o.direction} {o.label}" for o in s.objectives)
    rows = [("trials", c.total), ("complete (feasible)", c.complete), ("infeasible", c.infeasible),
            ("pruned", c.pruned), ("failed", c.failed), ("duplicates reused", c.duplicates),
            ("space", f"{s.space.name} ({s.space.size:.2e} architectures)"),
            ("objectives", objectives), ("sampler", s.sampler), ("seed", s.seed),
            ("constraints", ", ".join(s.constraint_names)), ("attend-search", __version__)]
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}"
                               f"</td></tr>" for k, v in rows) + "</table>"


def _preset_points(config: StudyConfig, metrics: list[str]) -> dict[str, dict[str, float]]:
    """The presets scored like trials, at the space's input size and class count. Computed
    for each report, never stored: a report only reads its study."""
    s = config.search
    size = 224 if 224 in s.space.input_size.values else s.space.input_size.values[-1]
    points = {}
    with torch_threads(s.evaluation.threads):
        for name in list_presets():
            spec = get_preset(name, num_classes=s.space.num_classes, input_size=size)
            values = s.evaluation.cheap(spec, metrics)
            values.update(s.evaluation.expensive(spec, [m for m in metrics if m not in values]))
            points[name] = values
    return points


def _pareto_figure(feasible: list[FrozenTrial], config: StudyConfig
                   ) -> go.Figure:
    objectives = config.search.objectives[:2]
    x, y = (o.metric for o in objectives)
    front = pareto(feasible, config.search.objectives)
    fig = go.Figure()
    fig.add_scatter(x=[t.values[0] for t in feasible], y=[t.values[1] for t in feasible],
                    mode="markers", name="feasible trials", marker=dict(color="#9ecae1"),
                    text=[f"trial {t.number}" for t in feasible])
    fig.add_scatter(x=[t.values[0] for t in front], y=[t.values[1] for t in front],
                    mode="lines+markers", name="Pareto front", marker=dict(color="#08519c"),
                    text=[f"trial {t.number}" for t in front])
    for name, values in _preset_points(config, [x, y]).items():
        fig.add_scatter(x=[values[x]], y=[values[y]], mode="markers+text", name=name, text=[name],
                        textposition="top center", marker=dict(symbol="star", size=14))
    fig.update_layout(xaxis_title=objectives[0].label, yaxis_title=objectives[1].label)
    return fig


def _history(feasible: list[FrozenTrial], config: StudyConfig) -> go.Figure | str:
    if not feasible:
        return "<p>No feasible trial yet.</p>"
    fig = go.Figure()
    for i, o in enumerate(config.search.objectives):
        values = [t.values[i] for t in feasible]
        running = [min(values[: k + 1]) if o.direction == "minimize" else max(values[: k + 1])
                   for k in range(len(values))]
        axis = "y" if i == 0 else f"y{i + 1}"
        fig.add_scatter(x=[t.number for t in feasible], y=values, mode="markers", yaxis=axis,
                        name=f"{o.metric}")
        fig.add_scatter(x=[t.number for t in feasible], y=running, mode="lines", yaxis=axis,
                        name=f"best {o.metric}")
    layout = {"xaxis_title": "trial"}
    for i, o in enumerate(config.search.objectives):
        key = "yaxis" if i == 0 else f"yaxis{i + 1}"
        layout[key] = dict(title=o.label, **({"overlaying": "y", "side": "right"} if i else {}))
    fig.update_layout(**layout)
    return fig


def _hypervolume(feasible: list[FrozenTrial], config: StudyConfig) -> go.Figure:
    """Reference point: each objective's worst feasible value, 10% further out."""
    objectives = config.search.objectives
    reference = []
    for i, o in enumerate(objectives):
        values = [t.values[i] for t in feasible]
        worst = max(values) if o.direction == "minimize" else min(values)
        reference.append(worst + 0.1 * abs(worst) * (1 if o.direction == "minimize" else -1))
    fig = go.Figure(go.Scatter(x=[t.number for t in feasible],
                               y=hypervolume_history(feasible, objectives, reference),
                               mode="lines", name="hypervolume"))
    point = ", ".join(f"{o.metric} {v:.4g}" for o, v in zip(objectives, reference))
    fig.update_layout(title=f"Hypervolume of the feasible front; reference point: {point}",
                      xaxis_title="trial", yaxis_title="hypervolume")
    return fig


def _importances(feasible: list[FrozenTrial], config: StudyConfig) -> go.Figure | str:
    """fANOVA with 16 trees of depth 8 on at most 1,000 feasible trials (a seeded sample):
    Optuna's default forest (64 trees, depth 64) took ~11 s per objective on 900 trials of
    ~70 parameters and grows with the study; the smaller forest on a sample ranks the same
    leading parameters in a few percent of the time, whatever the study's size."""
    if len(feasible) < 4:
        return "<p>Too few feasible trials to estimate importances (need 4).</p>"
    if len(feasible) > _IMPORTANCE_SAMPLE:
        feasible = random.Random(0).sample(feasible, _IMPORTANCE_SAMPLE)
    study = optuna.create_study(directions=[o.direction for o in config.search.objectives])
    study.add_trials(feasible)
    fig = go.Figure()
    for i, o in enumerate(config.search.objectives):
        scores = optuna.importance.get_param_importances(
            study, target=lambda t, i=i: t.values[i],
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0, n_trees=16,
                                                                  max_depth=8))
        top = list(scores.items())[:15][::-1]
        fig.add_bar(x=[v for _, v in top], y=[k for k, _ in top], orientation="h", name=o.metric)
    fig.update_layout(xaxis_title="importance (fANOVA)", barmode="group")
    return fig


def _feasibility(trials: list[FrozenTrial]) -> go.Figure | str:
    frame = trials_frame(trials)
    frame = frame[frame["state"] == "COMPLETE"]
    if frame.empty:
        return "<p>No finished trial.</p>"
    x = "metric.params"
    y = next((c for c in frame.columns if c.startswith("metric.latency.")), "metric.macs")
    fig = go.Figure()
    for feasible, color in ((True, "#31a354"), (False, "#de2d26")):
        part = frame[frame["feasible"] == feasible]
        violated = part.filter(like="violation.").apply(
            lambda row: ", ".join(k[10:] for k, v in row.items() if v > 0), axis=1)
        fig.add_scatter(x=part[x], y=part[y], mode="markers", marker=dict(color=color),
                        name="feasible" if feasible else "infeasible",
                        text=[f"trial {n}: {v}" for n, v in zip(part["number"], violated)])
    fig.update_layout(xaxis_title=x[7:], yaxis_title=y[7:])
    return fig


def _breakdown(trial: FrozenTrial, config: StudyConfig) -> go.Figure:
    metrics = [o.metric for o in config.search.objectives] + config.search.constraints.metrics
    device = next((m.partition(".")[2] for m in metrics if m.startswith("latency.")), "cortex-a72")
    total, rows = predict_latency(Spec.from_dict(record_of(trial).spec), device,
                                  breakdown=True)
    top = sorted(rows, key=lambda r: r.ms, reverse=True)[:25][::-1]
    fig = go.Figure(go.Bar(x=[r.ms for r in top], y=[f"{r.name} ({r.op_class})" for r in top],
                           orientation="h", text=[r.bound for r in top]))
    fig.update_layout(title=f"{total:.1f} ms predicted on {device}; the 25 slowest kernels",
                      xaxis_title="ms", height=700)
    return fig
