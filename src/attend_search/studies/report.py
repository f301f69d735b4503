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
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial
from plotly.subplots import make_subplots

from .. import __version__
from ..evaluators.latency.predict import predict_latency
from ..explorer import Objective, record_of
from ..explorer.feasibility import ConstraintState, constraint_states
from ..explorer.metrics import COST_METRICS, is_cheap, kind_of, latency_device, metric_label, shown
from ..explorer.search import cheap_violations, quiet_optuna
from ..files import write_atomic
from ..search_space import Spec, get_preset, list_presets
from ..search_space.naming import layer_name
from .config import StudyConfig
from .export.folders import export_folder
from .refinement import Refinement, agreement, estimate_objective, read_refinement
from .results import best, candidates, counts, hypervolume_history, trials_frame
from .storage.trial_reader import read_trials, with_params

_IMPORTANCE_SAMPLE = 1000
_IMPORTANCES_SHOWN = 10  # the parameters drawn; the rest are named by count


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
    refinement = read_refinement(study)
    if refinement is not None and refinement.rows:
        sections.append(("Measured accuracy (refine)", _measured(refinement, trials, config)))
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
                _breakdown(Spec.from_dict(record_of(top[0]).spec), device),
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
    accuracy (the summary says, once, how good an estimate)."""
    estimate = kind_of(objective.metric).estimates_accuracy and objective.direction == "maximize"
    return metric_label(objective.metric) + (", an accuracy estimate" if estimate else "")


def _estimates(config: StudyConfig) -> str:
    """The estimates behind accuracy axes, with their measured quality (in the summary)."""
    labels = [o.label for o in config.search.objectives if o.label != metric_label(o.metric)]
    return "; ".join(labels)


def _summary(trials: list[FrozenTrial], config: StudyConfig) -> str:
    c, s = counts(trials), config.search
    objectives = ", ".join(f"{o.direction} {_axis(o)}" for o in s.objectives)
    rows = [
        ("trials", c.total),
        ("complete (feasible)", c.complete),
        ("infeasible", c.infeasible),
        ("pruned", c.pruned),
        ("failed", c.failed),
        ("duplicates reused", c.duplicates),
        ("repeated proposals drawn again", c.redraws),
        (
            "space",
            f"{s.space.name} ({s.space.size:.3g} architectures once the study's rules narrow it)",
        ),
        ("objectives", objectives),
        *([("accuracy estimates", estimates)] if (estimates := _estimates(config)) else []),
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
    return table, caption


@dataclass(frozen=True)
class _Preset:
    """A preset scored as a trial would be, and the constraints of the study it breaks."""

    values: dict[str, float]
    broken: list[ConstraintState]


def _preset_points(config: StudyConfig, metrics: list[str]) -> dict[str, _Preset]:
    """The presets scored like trials, at the space's input size and class count, on metrics
    that need no training (none at all where one does: a report trains nothing), with the
    study's rules and budgets they break. Computed for each report, never stored: a report
    only reads its study."""
    s = config.search
    if any(kind_of(m).evaluator == "train_eval" for m in metrics):
        return {}
    points = {}
    for name in list_presets():
        spec = get_preset(name, num_classes=s.space.num_classes, input_size=_preset_size(config))
        values, violations = cheap_violations(s, spec)
        values.update(s.evaluation.cheap(spec, [m for m in metrics if m not in values]))
        values.update(s.evaluation.expensive(spec, [m for m in metrics if m not in values]))
        violations.update(s.constraints.budget_violations(values))
        broken = [c for c in constraint_states(s.constraints, violations) if not c.met]
        points[name] = _Preset(values, broken)
    return points


def _preset_size(config: StudyConfig) -> int:
    sizes = config.search.space.input_size.values
    return 224 if 224 in sizes else sizes[-1]


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
    for name, preset in points.items():
        breaks = ", ".join(c.constraint for c in preset.broken)
        fig.add_scatter(
            x=[shown(x, preset.values[x])],
            y=[shown(y, preset.values[y])],
            mode="markers+text",
            name=f"{name} (breaks: {breaks})" if breaks else name,
            text=[name],
            hovertext=[
                f"preset {name}: "
                + ("; ".join(map(str, preset.broken)) if breaks else "meets the constraints")
            ],
            textposition="top center",
            marker=dict(symbol="star-open" if breaks else "star", size=14),
        )
    fig.update_layout(xaxis_title=_axis(ox), yaxis_title=_axis(oy))
    for axis, trace_values in (("xaxis", lambda t: t.x), ("yaxis", lambda t: t.y)):
        fig.layout[axis].range = _padded([v for t in fig.data for v in trace_values(t)])
    if not points:
        return fig, "The presets are not drawn: their accuracy would need training."
    return fig, (
        f"Stars: the built-in presets (attend-search presets), hand-designed networks scored "
        f"as a trial is, at {_preset_size(config)} pixels. A filled star meets the study's "
        f"constraints; a hollow one breaks them (its legend entry says which), so the search "
        f"could never choose it, however it scores."
    )


def _measured(
    refinement: Refinement, trials: list[FrozenTrial], config: StudyConfig
) -> tuple[go.Figure, str]:
    """The measured front: each refined trial's validation top-1 at the highest rung it
    reached against the study's first objective that is not the accuracy estimate, and the
    estimate's rank correlation with the measurements."""
    estimate = estimate_objective(config)
    others = [o for o in config.search.objectives if o.metric != estimate]
    cost = others[0] if others else Objective("params", "minimize")
    records = {t.number: record_of(t) for t in candidates(trials)}
    reached = {n: r for n, r in refinement.reached().items() if n in records}
    fig = go.Figure()
    for epochs in sorted({r.epochs for r in reached.values()}):
        group = [(n, r) for n, r in reached.items() if r.epochs == epochs]
        fig.add_scatter(
            x=[shown(cost.metric, records[n].metrics[cost.metric]) for n, _ in group],
            y=[r.top1 for _, r in group],
            mode="markers",
            name=f"trained {epochs} epoch{'s' * (epochs != 1)}",
            text=[f"trial {n}" for n, _ in group],
        )
    rung = refinement.complete_rung()
    epochs = refinement.plan.rungs[rung]
    points = [
        (shown(cost.metric, records[r.trial].metrics[cost.metric]), r.top1)
        for r in refinement.rows
        if r.rung == rung and r.trial in records
    ]
    front = _front(points, cost.direction)
    fig.add_scatter(
        x=[p[0] for p in front],
        y=[p[1] for p in front],
        mode="lines",
        name=f"measured front after {epochs} epoch{'s' * (epochs != 1)}",
    )
    fig.update_layout(xaxis_title=_axis(cost), yaxis_title="validation top-1 (measured)")
    fit = agreement(refinement, trials, config)
    plan = refinement.plan
    return fig, (
        f"Trained on {plan.data['data']} by attend-search refine ({plan.selection}; rungs of "
        f"{', '.join(map(str, plan.rungs))} epochs, the best 1/{plan.reduction_factor} of each "
        f"going on); each trial at the highest rung it reached so far. The front is drawn "
        f"over rung {rung + 1} ({epochs} epoch{'s' * (epochs != 1)}), the last whose every "
        f"trial was measured, so that its trials trained alike. "
        + (f"Estimate {fit}." if fit else "The study has no accuracy estimate to compare.")
    )


def _front(points: list[tuple[float, float]], direction: str) -> list[tuple[float, float]]:
    """The points no other beats on both the cost (in ``direction``) and top-1 (higher)."""
    sign = 1 if direction == "minimize" else -1
    front, best_top1 = [], -math.inf
    for x, y in sorted(points, key=lambda p: (sign * p[0], -p[1])):
        if y > best_top1:
            front.append((x, y))
            best_top1 = y
    return front


def _padded(values: list[float], share: float = 0.08) -> list[float] | None:
    """An axis range with ``share`` of the span free at each end, so that no marker (nor a
    preset's name above its star) sits on the plot's edge; None (plotly's) for no values."""
    values = [v for v in values if math.isfinite(v)]  # a preset's score may be inf or NaN
    if not values:
        return None
    lo, hi = min(values), max(values)
    pad = share * ((hi - lo) or abs(hi) or 1.0)
    return [lo - pad, hi + pad]


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
    return fig


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
) -> go.Figure | tuple[go.Figure, str] | str:
    """fANOVA with 8 trees of depth 8 on at most 1,000 feasible trials (a seeded sample):
    Optuna's default forest (64 trees, depth 64) took ~11 s per objective on 900 trials of
    ~70 parameters and grows with the study; the smaller forest on a sample ranks mostly the
    same leading parameters (3 to 5 of the top 5 of a 32-tree, depth-16 forest on 2,000 of
    10,000 trials) in a few percent of the time, whatever the study's size. Only the sample is
    read with its
    parameters, and it enters the forest's study as parameters and values alone. The
    :data:`_IMPORTANCES_SHOWN` parameters most important to any objective are drawn, the
    others counted: a space's dozens of parameters are mostly near zero."""
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
    objectives = config.search.objectives
    scores = [
        optuna.importance.get_param_importances(
            study,
            target=lambda t, i=i: t.values[i],
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0, n_trees=8, max_depth=8),
        )
        for i in range(len(objectives))
    ]
    most = {name: max(s.get(name, 0.0) for s in scores) for name in scores[0]}
    top = sorted(most, key=most.get, reverse=True)[:_IMPORTANCES_SHOWN][::-1]
    fig = go.Figure()
    for o, s in zip(objectives, scores):
        fig.add_bar(x=[s.get(k, 0.0) for k in top], y=top, orientation="h", name=o.metric)
    fig.update_layout(
        xaxis_title="importance (fANOVA: share of the objective's variance)",
        barmode="group",
        height=160 + 28 * len(top) * len(objectives),
    )
    left = len(most) - len(top)
    if not left:
        return fig
    largest = max(v for k, v in most.items() if k not in top)
    return fig, (
        f"The {len(top)} parameters most important to any objective; the other {left} "
        f"(each at most {largest:.1%} of an objective's variance) are left out."
    )


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
        violated = [  # a budget on a metric never computed for the trial is NaN: not broken
            ", ".join(
                map(
                    str, constraint_states(constraints, {n: v for n, v in zip(names, row) if v > 0})
                )
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


def _breakdown(spec: Spec, device: str) -> go.Figure:
    total, rows = predict_latency(spec, device, breakdown=True)
    top = sorted(rows, key=lambda r: r.ms, reverse=True)[:25][::-1]
    fig = go.Figure(
        go.Bar(
            x=[r.ms for r in top],
            y=_distinct([f"{layer_name(r.name)} ({r.op_class})" for r in top]),
            orientation="h",
            text=[f"{r.bound}-bound" for r in top],
            hovertext=[", ".join(r.ops) for r in top],
        )
    )
    fig.update_layout(
        title=f"{total:.3g} ms predicted on {device}; the 25 slowest kernels",
        xaxis_title="predicted time (ms, batch 1)",
        height=700,
    )
    return fig


def _distinct(labels: list[str]) -> list[str]:
    """Labels of a category axis made unique: plotly draws the bars of two kernels of one
    module (two multiplications of a gate) on one line, their texts run together
    ("DRAM | DRAM"). The second becomes ``name #2``."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out
