"""A study's refinement: the plan of ``refine`` (successive halving) and what it measured.

Synchronous successive halving (Jamieson & Talwalkar 2016; the rungs of Optuna's
``SuccessiveHalvingPruner`` and ``HyperbandPruner``): every chosen trial trains the first
rung's epochs; the best ``1/reduction_factor`` of each rung by validation top-1 (at least
one) go on to the next rung's epochs, up to ``epochs`` at the last. The plan and the
measurements live in the study's database (:mod:`.storage.refine_table`); this module reads
them for ``show``, ``report``, ``export`` and ``proxy fit``, without PyTorch.

An estimate is compared with the top-1 of the first rung, where every chosen trial trained
the same epochs: the later rungs hold only the trials that did best there.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ..errors import AttendSearchError
from ..explorer import record_of
from ..explorer.metrics import kind_of
from ..files import write_atomic
from ..search_space import Spec
from .config import StudyConfig
from .export.folders import exported_spec
from .results import best, candidates
from .storage.refine_table import Rung
from .storage.store import refine_table

FEW = 10  # below this many networks, a rank correlation is a rough figure


@dataclass(frozen=True)
class Plan:
    """What every ``refine`` process of a study follows: the trials chosen when it began,
    each rung's epochs (trained to, in all), the data and the recipe (``Recipe.resolved()``,
    its ``epochs`` the last rung's)."""

    trials: tuple[int, ...]
    rungs: tuple[int, ...]
    reduction_factor: int
    selection: str  # "pareto", "top 6 by synflow"
    data: dict[str, Any]  # what --data, --val and --val-fraction said
    recipe: dict[str, Any]
    choice: dict[str, Any] | None = None  # what --top and --sort said

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "trials": list(self.trials), "rungs": list(self.rungs)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        data = json.loads(json.dumps(data))  # as stored: tuples as lists
        return cls(**{**data, "trials": tuple(data["trials"]), "rungs": tuple(data["rungs"])})

    def settings(self) -> dict[str, Any]:
        """The options asked for: what a later ``refine`` of the study must ask for again
        (not the trials, nor the selection's label, which depend on the study when it began;
        the trials stay those chosen at the start, however the study has grown since)."""
        out = {k: v for k, v in self.to_json().items() if k not in ("trials", "selection")}
        return out if self.choice is not None else {**out, "choice": self.selection}


def run_folder(directory: Path, trial: int) -> Path:
    """Where trial ``trial``'s run lives in the study's directory: checkpoint, metrics, the
    spec as searched, and once it reaches the last rung its export."""
    return directory / "refine" / f"trial-{trial}"


def rung_epochs(epochs: int, min_epochs: int, reduction_factor: int) -> tuple[int, ...]:
    """Each rung's epochs, the last ``epochs``, each a ``reduction_factor`` of the next
    (rounded), none below ``min_epochs``: 27, 3, 3 gives 3, 9, 27; 30, 3, 3 gives 3, 10, 30."""
    if min_epochs > epochs:
        raise AttendSearchError(f"--min-epochs: {min_epochs} is more than --epochs {epochs}")
    if reduction_factor < 2:
        raise AttendSearchError(f"--reduction-factor: must be 2 or more, got {reduction_factor}")
    rungs = [epochs]
    while epochs / reduction_factor ** len(rungs) >= min_epochs:
        rungs.append(max(1, round(epochs / reduction_factor ** len(rungs))))
    return tuple(sorted(set(rungs)))


def choose(
    trials: list[FrozenTrial], config: StudyConfig, top: int | None, sort: str | None
) -> tuple[list[FrozenTrial], str]:
    """The trials to refine and how they were chosen: the Pareto set (one objective: the
    best 10), or the ``top`` K by ``sort``, by default the study's accuracy estimate."""
    objectives = config.search.objectives
    if top is not None and sort is None and len(objectives) > 1:
        sort = next((o.metric for o in objectives if _estimates(o)), None)
    chosen = best(trials, objectives, top=top, sort=sort)
    if not chosen:
        raise AttendSearchError(
            f"study {config.name} has no feasible trial to refine yet (see attend-search show)"
        )
    if top is None:
        return chosen, "pareto" if len(objectives) > 1 else f"top {len(chosen)}"
    asked = f" (of {top} asked)" if len(chosen) < top else ""
    return chosen, f"top {len(chosen)}{asked} by {sort or objectives[0].metric}"


def _estimates(objective) -> bool:
    return objective.direction == "maximize" and kind_of(objective.metric).estimates_accuracy


def entrants(plan: Plan, rows: list[Rung], rung: int) -> list[int] | None:
    """The trials that train at ``rung``, or None while the rung before is unfinished: all
    chosen trials at the first, then the best ``1/reduction_factor`` of the rung before by
    top-1 (ties to the lower trial number), at least one."""
    if rung == 0:
        return list(plan.trials)
    before = entrants(plan, rows, rung - 1)
    measured = [r for r in rows if r.rung == rung - 1 and r.done]
    if before is None or len(measured) < len(before):
        return None
    ranked = sorted(measured, key=lambda r: (-r.top1, r.trial))
    return sorted(r.trial for r in ranked[: max(1, len(before) // plan.reduction_factor)])


@dataclass(frozen=True)
class Refinement:
    """A study's plan and its measured rungs (``rows``: the finished ones)."""

    plan: Plan
    rows: list[Rung]

    def top1(self, trial: int) -> dict[int, float]:
        """The trial's top-1 at each rung it finished."""
        return {r.rung: r.top1 for r in self.rows if r.trial == trial}

    def reached(self) -> dict[int, Rung]:
        """Each measured trial's highest finished rung, best first (highest rung, top-1)."""
        last: dict[int, Rung] = {}
        for r in self.rows:  # by rung, then trial
            last[r.trial] = r
        return dict(sorted(last.items(), key=lambda kv: (-kv[1].rung, -kv[1].top1, kv[0])))

    def card(self, trial: int) -> list[str]:
        """A model card's account of the trial's measured accuracy (none if not refined)."""
        measured = self.top1(trial)
        if not measured:
            return []
        plan = self.plan
        return [
            "",
            "## Measured accuracy",
            "",
            f"Trained on `{plan.data['data']}` by `attend-search refine` ({plan.selection}; "
            f"successive halving, the best 1/{plan.reduction_factor} of each rung going on). "
            f"Validation top-1 at each rung it reached (the weights here are not these; "
            f"the run is in the study's `refine/trial-{trial}/`):",
            "",
            "| rung | epochs | top-1 |",
            "|---:|---:|---:|",
            *(f"| {r + 1} | {plan.rungs[r]} | {v:.4f} |" for r, v in sorted(measured.items())),
        ]

    def columns(self) -> dict[str, dict[int, float]]:
        """The trials table's columns: top-1 at the highest rung reached, and its epochs."""
        reached = self.reached()
        return {
            "measured.top1": {n: r.top1 for n, r in reached.items()},
            "measured.epochs": {n: r.epochs for n, r in reached.items()},
        }

    def complete_rung(self) -> int:
        """The last rung whose every entrant was measured (0 while the first still trains):
        where trials trained alike, so one front compares them."""
        complete = 0
        for rung in range(len(self.plan.rungs)):
            chosen = entrants(self.plan, self.rows, rung)
            measured = {r.trial for r in self.rows if r.rung == rung}
            if chosen is None or not set(chosen) <= measured:
                break
            complete = rung
        return complete

    def first_rung(self) -> dict[int, float]:
        """Top-1 at the first rung, where every chosen trial trained the same epochs: the
        figures an estimate is compared with and fitted to."""
        return {r.trial: r.top1 for r in self.rows if r.rung == 0}


def read_refinement(study: optuna.Study) -> Refinement | None:
    """The study's refinement, or None where it was never refined. Reads only."""
    table = refine_table(study)
    plan = table.plan()
    if plan is None:
        return None
    return Refinement(Plan.from_json(plan), [r for r in table.rungs() if r.done])


def estimate_objective(config: StudyConfig) -> str | None:
    """The study's accuracy estimate: its first maximised objective that estimates accuracy."""
    return next((o.metric for o in config.search.objectives if _estimates(o)), None)


@dataclass(frozen=True)
class Agreement:
    """How the study's estimate ranks the measured top-1 of its refined trials."""

    estimate: str
    epochs: int
    n: int
    spearman: float
    kendall: float
    of: int = 0  # the epochs the learning-rate schedule spans: the last rung's

    def __str__(self) -> str:
        total = self.of or self.epochs
        head = (
            f"{self.estimate} against measured top-1 after {self.epochs} of {total} "
            f"epoch{'s' * (total != 1)}"
        )
        n = f"n = {self.n} chosen trial{'s' * (self.n != 1)}"
        if self.n < 3 or math.isnan(self.spearman):
            return f"{head}: {n}, too few (or too alike) to rank"
        rough = f"; fewer than {FEW} networks: a rough figure" if self.n < FEW else ""
        return f"{head}: Spearman {self.spearman:.3f}, Kendall {self.kendall:.3f} ({n}{rough})"


def agreement(
    refinement: Refinement, trials: list[FrozenTrial], config: StudyConfig
) -> Agreement | None:
    """The estimate's Spearman and Kendall with the first rung's top-1; None where the
    study has no accuracy estimate among its objectives."""
    from scipy.stats import kendalltau, spearmanr  # here: scipy takes a second to import

    metric = estimate_objective(config)
    if metric is None:
        return None
    measured = refinement.first_rung()
    records = {t.number: record_of(t) for t in candidates(trials) if t.number in measured}
    pairs = [(records[n].metrics[metric], top1) for n, top1 in measured.items() if n in records]
    spearman = kendall = math.nan
    if len(pairs) >= 3 and len({p[0] for p in pairs}) > 1 and len({p[1] for p in pairs}) > 1:
        x, y = zip(*pairs)
        spearman, kendall = float(spearmanr(x, y)[0]), float(kendalltau(x, y)[0])
    plan = refinement.plan
    return Agreement(metric, plan.rungs[0], len(pairs), spearman, kendall, plan.rungs[-1])


def fit_rows(
    refinement: Refinement, trials: list[FrozenTrial], config: StudyConfig
) -> list[tuple[int, Spec, float]]:
    """Each refined trial, its spec as searched (what the study's estimate scored) and its
    first rung's top-1: the table ``proxy fit`` fits the estimate to, read from the study
    or from the CSV :func:`write_fit_csv` makes of it."""
    by_number = {t.number: t for t in candidates(trials)}
    return [
        (n, exported_spec(by_number[n], config), top1)
        for n, top1 in sorted(refinement.first_rung().items())
        if n in by_number
    ]


def write_fit_csv(
    path: str | Path,
    refinement: Refinement,
    trials: list[FrozenTrial],
    config: StudyConfig,
    directory: Path,
) -> int:
    """:func:`fit_rows` as the CSV ``proxy fit`` reads (``spec``: a spec JSON path relative to
    the CSV, each trial's in its run folder under the study's ``directory``; ``accuracy``);
    returns its rows."""
    path = Path(path)
    rows = fit_rows(refinement, trials, config)
    lines = [["spec", "accuracy", "trial", "epochs"]]
    for number, spec, top1 in rows:
        file = run_folder(directory, number) / "spec.json"
        if not file.is_file():  # trained on another machine
            file.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(file, spec.to_json())
        relative = Path(os.path.relpath(file.resolve(), path.resolve().parent)).as_posix()
        lines.append([relative, f"{top1:.6f}", str(number), str(refinement.plan.rungs[0])])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    write_atomic(path, buffer.getvalue())
    return len(rows)
