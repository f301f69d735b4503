"""All trials of a study, read in a handful of SQL queries on Optuna's own tables: the one
module that knows Optuna's schema (``optuna.storages._rdb.models``, private), and
``tests/test_optuna_contract.py`` holds what it reads equal to what Optuna reads.

Optuna's RDB storage loads trials through its ORM, about 3.6 ms a trial of ~70 parameters:
36 s before ``show`` can print anything on a 10,000-trial study. The same rows read with
plain SELECTs over Optuna's own tables, each distinct distribution decoded once, give the
same ``FrozenTrial`` objects (a test holds the two to equality) in a small fraction of that.
Storages that are not SQL databases are read through Optuna.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Collection, Container
from functools import lru_cache
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from ...explorer.optuna_adapter import backend_of
from . import sqlite_lock

_T = models.TrialModel.__table__
_PARAMS = models.TrialParamModel.__table__
_VALUES = models.TrialValueModel.__table__
_USER = models.TrialUserAttributeModel.__table__
_SYSTEM = models.TrialSystemAttributeModel.__table__
_STEPS = models.TrialIntermediateValueModel.__table__
_BATCH = 500


def read_trials(study: optuna.Study, params: bool = True) -> list[FrozenTrial]:
    """Every trial of ``study`` in number order, as ``study.get_trials()`` gives them. Their
    parameters are most of the rows: ``params=False`` leaves them out (``show`` needs none;
    :func:`with_params` adds them to the few that need them)."""
    rdb = backend_of(study._storage)
    if not isinstance(rdb, optuna.storages.RDBStorage):
        return study.get_trials(deepcopy=False)
    return select_trials(rdb.engine, _T.c.study_id == study._study_id, params)


def with_params(study: optuna.Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Copies of ``trials`` (read with ``params=False``) with their parameters, from the one
    table that holds them: the report's importance sample, 1,000 trials of 10,000, read
    whole took 0.8 s."""
    rdb = backend_of(study._storage)
    if not isinstance(rdb, optuna.storages.RDBStorage):
        stored = {t.number: t for t in study.get_trials(deepcopy=False)}
        return [stored[t.number] for t in trials]
    with sqlite_lock.reading(), rdb.engine.connect() as db:
        rows = _by_trial(db, _PARAMS, [t._trial_id for t in trials])
    out = []
    for t in trials:
        t = copy.copy(t)
        t.params, t.distributions = _params(rows[t._trial_id])
        out.append(t)
    return out


def select_trials(
    engine: sa.Engine, where: sa.ColumnElement[bool], params: bool = True
) -> list[FrozenTrial]:
    """The trials whose row in Optuna's ``trials`` table meets ``where``, in number order
    (which is also trial id order within a study); ``params`` as in :func:`read_trials`.
    The other tables are read by lists of trial ids: a subquery would scan the study's
    trials again for each table, the whole cost of reading the one new trial of 10,000."""
    with sqlite_lock.reading(), engine.connect() as db:
        trials = db.execute(sa.select(_T).where(where).order_by(_T.c.number)).all()
        ids = [t.trial_id for t in trials]
        rows = {
            name: _by_trial(db, table, ids)
            for name, table in (
                ("values", _VALUES),
                ("user", _USER),
                ("system", _SYSTEM),
                ("steps", _STEPS),
            )
        }
        rows["params"] = _by_trial(db, _PARAMS, ids if params else [])
    return [_frozen(t, {name: rows[name][t.trial_id] for name in rows}) for t in trials]


def trials_since(
    engine: sa.Engine,
    study_id: int,
    states: Container[TrialState] | None,
    included_trial_ids: Collection[int],
    trial_id_greater_than: int,
) -> list[FrozenTrial]:
    """``RDBStorage._get_trials``: what Optuna's trial cache reads on every trial (the trials
    after the last finished one it holds, and those it holds unfinished) and, at the start of
    a run, every trial. Its ORM took 38 s for the 10,000 trials of a study; this, a few."""
    where = _T.c.study_id == study_id
    if states is not None:
        where &= _T.c.state.in_([s for s in TrialState if s in states])
    included = sorted(i for i in included_trial_ids if i <= trial_id_greater_than)
    if trial_id_greater_than > -1 and not included:  # an empty IN () defeats SQLite's index
        where &= _T.c.trial_id > trial_id_greater_than
    elif trial_id_greater_than > -1 and len(included) <= _BATCH:
        where &= (_T.c.trial_id > trial_id_greater_than) | _T.c.trial_id.in_(included)
    elif trial_id_greater_than > -1:  # too many to list: read from the first, keep the ones asked
        where &= _T.c.trial_id >= included[0]
    trials = select_trials(engine, where)
    if len(included) > _BATCH:
        wanted = set(included)
        trials = [t for t in trials if t._trial_id > trial_id_greater_than or t._trial_id in wanted]
    return trials


def _by_trial(db: sa.Connection, table: sa.Table, ids: list[int]) -> dict[int, list]:
    key = table.c.param_id if table is _PARAMS else list(table.primary_key)[0]
    grouped: dict[int, list] = defaultdict(list)
    for start in range(0, len(ids), _BATCH):  # bound the SQL's list of ids
        some = table.c.trial_id.in_(ids[start : start + _BATCH])
        for row in db.execute(sa.select(table).where(some).order_by(key)).all():
            grouped[row.trial_id].append(row)
    return grouped


@lru_cache(maxsize=4096)
def _distribution(text: str) -> BaseDistribution:
    return json_to_distribution(text)


def _params(rows: list) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    dists = {p.param_name: _distribution(p.distribution_json) for p in rows}
    return (
        {p.param_name: dists[p.param_name].to_external_repr(p.param_value) for p in rows},
        dists,
    )


def _frozen(t, rows: dict[str, list]) -> FrozenTrial:
    values = None
    if rows["values"]:
        values = [0.0] * len(rows["values"])
        for v in rows["values"]:
            values[v.objective] = models.TrialValueModel.stored_repr_to_value(v.value, v.value_type)
    params, dists = _params(rows["params"])
    return FrozenTrial(
        number=t.number,
        state=t.state,
        value=None,
        values=values,
        datetime_start=t.datetime_start,
        datetime_complete=t.datetime_complete,
        params=params,
        distributions=dists,
        user_attrs={a.key: json.loads(a.value_json) for a in rows["user"]},
        system_attrs={a.key: json.loads(a.value_json) for a in rows["system"]},
        intermediate_values={
            s.step: models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                s.intermediate_value, s.intermediate_value_type
            )
            for s in rows["steps"]
        },
        trial_id=t.trial_id,
    )


def finished_count(study: optuna.Study) -> int:
    """Trials of ``study`` that finished (complete, pruned or failed), by any worker on any
    machine: one ``COUNT`` query, cheap enough to poll for a progress bar."""
    rdb = backend_of(study._storage)
    states = [s for s in optuna.trial.TrialState if s.is_finished()]
    if not isinstance(rdb, optuna.storages.RDBStorage):
        return len(study.get_trials(deepcopy=False, states=states))
    with sqlite_lock.reading(), rdb.engine.connect() as db:
        return db.execute(
            sa.select(sa.func.count())
            .select_from(_T)
            .where((_T.c.study_id == study._study_id) & _T.c.state.in_(states))
        ).scalar_one()
