"""Reading a finished (or running) study: the trials table, counts, the best trials.

Each function takes the study's trials (:func:`.storage.trial_reader.read_trials`), read once.

Only feasible, really evaluated trials can be "best": infeasible trials (rules or budgets
violated, objectives imputed) and duplicates of an earlier trial are never ranked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ..errors import AttendSearchError
from ..explorer import Objective, TrialRecord, record_of
from ..explorer.optuna_adapter import hypervolume


@dataclass(frozen=True)
class Counts:
    complete: int
    infeasible: int
    pruned: int
    failed: int
    running: int
    duplicates: int
    redraws: int  # proposals drawn again because they repeated an architecture

    @property
    def total(self) -> int:
        return self.complete + self.infeasible + self.pruned + self.failed + self.running


def is_feasible(trial: FrozenTrial, record: TrialRecord | None = None) -> bool:
    record = record or record_of(trial)
    return trial.state == TrialState.COMPLETE and record is not None and record.feasible


def counts(trials: list[FrozenTrial]) -> Counts:
    c = Counter()
    for t in trials:
        record = record_of(t)
        if t.state == TrialState.COMPLETE:
            c["complete" if is_feasible(t, record) else "infeasible"] += 1
        else:
            c[{TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}.get(t.state, "running")] += 1
        if record is not None:
            c["duplicates"] += record.duplicate_of is not None
            c["redraws"] += record.redraws
    return Counts(**{k: c[k] for k in Counts.__dataclass_fields__})


def candidates(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Feasible trials, one per architecture (the first trial of each digest)."""
    seen: set[str] = set()
    out = []
    for t in trials:
        record = record_of(t)
        if is_feasible(t, record) and record.digest not in seen:
            seen.add(record.digest)
            out.append(t)
    return out


def _signed(trials: list[FrozenTrial], objectives: tuple[Objective, ...]) -> np.ndarray:
    """Objective values with maximised ones negated: lower is better in every column."""
    return np.array([t.values for t in trials], dtype=float).reshape(len(trials), -1) * _signs(
        objectives
    )


def _signs(objectives: tuple[Objective, ...]) -> np.ndarray:
    return np.array([1.0 if o.direction == "minimize" else -1.0 for o in objectives])


def pareto(trials: list[FrozenTrial], objectives: tuple[Objective, ...]) -> list[FrozenTrial]:
    """Non-dominated trials, ordered by the first objective."""
    if not trials:
        return []
    values = _signed(trials, objectives)
    front: list[int] = []  # in lexicographic order, no point is dominated by a later one
    for i in np.lexsort(values.T[::-1]):
        kept = values[front]
        if not np.any(np.all(kept <= values[i], axis=1) & np.any(kept < values[i], axis=1)):
            front.append(i)
    return [trials[i] for i in front]


def hypervolume_history(
    trials: list[FrozenTrial], objectives: tuple[Objective, ...], reference: list[float]
) -> list[float]:
    """Hypervolume of the front of ``trials[:k + 1]``, for each k (in the order given), against
    ``reference`` (in the objectives' own directions). Recomputed only when a trial joins the
    front, so a long study costs little more than a scan."""
    if not trials:
        return []
    ref = np.array(reference, dtype=float) * _signs(objectives)
    front = np.empty((0, len(objectives)))
    history, volume = [], 0.0
    for point in _signed(trials, objectives):
        if np.all(point < ref) and not np.any(np.all(front <= point, axis=1)):
            front = np.vstack([front[~np.all(point <= front, axis=1)], point])
            volume = hypervolume(front, ref)
        history.append(volume)
    return history


def best(
    trials: list[FrozenTrial],
    objectives: tuple[Objective, ...],
    top: int | None = None,
    sort: str | None = None,
) -> list[FrozenTrial]:
    """Pareto set (several objectives) or the ``top`` best (default 10) by ``sort`` (see
    :func:`rank_columns`)."""
    trials = candidates(trials)
    columns = rank_columns(objectives, top, sort)
    if columns is None:
        return pareto(trials, objectives)
    keys = _signed(trials, objectives)[:, columns]
    order = np.lexsort(keys.T[::-1]) if trials else []
    return [trials[i] for i in order][: top or 10]


def rank_columns(
    objectives: tuple[Objective, ...], top: int | None, sort: str | None
) -> list[int] | None:
    """The objectives the best trials are ranked by, or None for the Pareto set (several
    objectives, no ``top``). With several objectives the top K need ``sort``, the metric of
    the objective to rank by: a Pareto front has no single order. Called before a run too,
    so a mistake is refused before the trials, not after."""
    names = [o.metric for o in objectives]
    if sort is None:
        if len(names) == 1:
            return [0]
        if top is None:
            return None
        raise AttendSearchError(
            f"--top on a study of {len(names)} objectives ({', '.join(names)}) "
            f"needs --sort METRIC, the objective to rank by"
        )
    if sort not in names:
        raise AttendSearchError(
            f"--sort: {sort!r} is not an objective of the study; one of {', '.join(names)}"
        )
    return [names.index(sort)]


def trials_frame(trials: list[FrozenTrial]) -> pd.DataFrame:
    """One row per trial: state, feasibility, metrics, violations, digest, parameters, spec."""
    rows = []
    for t in trials:
        r = record_of(t) or TrialRecord(spec={}, digest=None, version=None, stream=None)
        row = {
            "number": t.number,
            "state": t.state.name,
            "feasible": is_feasible(t, r),
            "digest": r.digest,
            "preset": r.preset,
            "duplicate_of": r.duplicate_of,
            "imputed": ",".join(r.imputed),
            "error": r.error,
            "stream": r.stream,
            "duration_s": t.duration.total_seconds() if t.duration else None,
        }
        row.update({f"metric.{k}": v for k, v in r.metrics.items()})
        row.update({f"violation.{k}": v for k, v in r.violations.items()})
        row.update({f"param.{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)
