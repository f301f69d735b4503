"""Every use of Optuna's storage internals, in one place: Optuna's RDB storage and its trial
cache, subclassed. What each buys, measured on a 2-core machine; ``tests/test_optuna_contract.py``
fails if Optuna changes the behaviour relied on, and pyproject.toml declares only the Optuna
versions CI tests. (Reading Optuna's tables in plain SQL is :mod:`.trial_reader`.)

- ``_CachedStorage`` (:class:`TrialCache`): the cache filtered and sorted every trial it holds
  on each ``get_all_trials``, about 3 a trial: 20 ms a trial at 10,000 trials; kept in order
  here, an answer is one list copy (~1 ms).
- ``RDBStorage._get_prepared_new_trial`` (:meth:`Storage._get_prepared_new_trial`): a new trial
  numbered by one index lookup, not a count of the study's trials under the write lock (0.7 ms
  at 10,000), and its first heartbeat in the same transaction (the heartbeat thread's first beat
  held SQLite's write lock longest of all).
- ``RDBStorage._get_trials``, ``get_trial``: the cache's read on every trial, and the full read
  on resume, in plain SQL: resuming a 10,000-trial study loads in 8 s, not 37 s.
- ``_rdb.models``, ``_create_scoped_session``, ``_set_trial_attr_without_commit``
  (:meth:`Storage.set_trial_params`, :meth:`Storage.set_trial_attrs`): a trial's ~70 parameters
  in one transaction (about 60 ms a trial under the write lock otherwise), its record and
  constraints in another.
- an index beside Optuna's schema (:func:`index_trials_by_state`): the stale-trial check at each
  trial's start is a lookup, not a scan of the study (1 ms a trial at 10,000).
"""

from __future__ import annotations

import bisect
import copy
import functools
import heapq
from collections.abc import Container
from datetime import datetime
from operator import attrgetter
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna import distributions
from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from . import sqlite_lock
from .trial_reader import select_trials, trials_since

_NUMBER = attrgetter("number")


class _InNumberOrder:
    """Trials kept sorted by number; one that arrives again replaces its earlier version."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.trials: list[FrozenTrial] = []

    def put(self, trial: FrozenTrial) -> None:
        at = bisect.bisect_left(self.numbers, trial.number)
        if at < len(self.numbers) and self.numbers[at] == trial.number:
            self.trials[at] = trial
        else:  # new trials arrive near the end: the insert moves a few items
            self.numbers.insert(at, trial.number)
            self.trials.insert(at, trial)

    def drop(self, number: int) -> None:
        at = bisect.bisect_left(self.numbers, number)
        del self.numbers[at], self.trials[at]


class TrialCache(_CachedStorage):
    """Optuna's cache over an RDB storage, its trial lists kept in order. Pass it to
    ``optuna.create_study`` or ``load_study`` as the storage (Optuna uses it as it is)."""

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._all: dict[int, _InNumberOrder] = {}
        self._by_state: dict[int, dict[TrialState, _InNumberOrder]] = {}

    def _add_trials_to_cache(self, study_id: int, trials: list[FrozenTrial]) -> None:
        everything = self._all.setdefault(study_id, _InNumberOrder())
        by_state = self._by_state.setdefault(study_id, {s: _InNumberOrder() for s in TrialState})
        held = self._studies[study_id].trials
        for trial in trials:
            before = held.get(trial.number)
            if before is not None and before.state != trial.state:
                by_state[before.state].drop(trial.number)
            by_state[trial.state].put(trial)
            everything.put(trial)
        super()._add_trials_to_cache(study_id, trials)

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        self._read_trials_from_remote_storage(study_id)
        with self._lock:
            if states is None:
                trials = list(self._all.get(study_id, _InNumberOrder()).trials)
            else:
                by_state = self._by_state.get(study_id, {})
                runs = [
                    by_state[s].trials
                    for s in TrialState
                    if s in states and s in by_state and by_state[s].trials
                ]
                trials = list(runs[0]) if len(runs) == 1 else list(heapq.merge(*runs, key=_NUMBER))
        return copy.deepcopy(trials) if deepcopy else trials

    def delete_study(self, study_id: int) -> None:
        super().delete_study(study_id)
        with self._lock:
            self._all.pop(study_id, None)
            self._by_state.pop(study_id, None)


class Storage(RDBStorage):
    """Optuna's RDB storage, with a heartbeat that survives a missed beat, a trial's
    parameters written in one transaction
    (:func:`attend_search.explorer.optuna_adapter.params_written_together`), its record and
    constraints in another, and reads that take no SQLite write lock (:mod:`.sqlite_lock`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._distributions: dict[tuple[int, str], BaseDistribution | None] = {}
        self._first_beat_made: set[int] = set()

    def set_trial_params(
        self, trial_id: int, params: list[tuple[str, float, BaseDistribution]]
    ) -> None:
        """Optuna's checks (the trial still running; each distribution the same as the
        study's earlier trials had, read once per process), then one insert and one commit."""
        with _create_scoped_session(self.scoped_session, True) as session:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            self.check_trial_is_updatable(trial_id, trial.state)
            rows = []
            for name, value, distribution in params:
                known = self._known_distribution(session, trial.study_id, name)
                if known is not None:
                    distributions.check_distribution_compatibility(known, distribution)
                self._distributions[trial.study_id, name] = distribution
                rows.append(
                    {
                        "trial_id": trial_id,
                        "param_name": name,
                        "param_value": value,
                        "distribution_json": distributions.distribution_to_json(distribution),
                    }
                )
            if rows:
                session.execute(sqlalchemy.insert(models.TrialParamModel), rows)

    def set_trial_attrs(
        self, trial_id: int, user_attrs: dict[str, Any], system_attrs: dict[str, Any]
    ) -> None:
        """Several of a trial's attributes in one transaction (the explorer's record and
        constraints), where Optuna writes each in its own."""
        with _create_scoped_session(self.scoped_session, True) as session:
            for model, attrs in (
                (models.TrialUserAttributeModel, user_attrs),
                (models.TrialSystemAttributeModel, system_attrs),
            ):
                for key, value in attrs.items():
                    self._set_trial_attr_without_commit(session, model, trial_id, key, value)

    def _get_prepared_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None, session
    ) -> models.TrialModel:
        """A new running trial, numbered by one index lookup, with its first heartbeat made
        in the transaction that creates it, not in one of its own from the heartbeat thread
        (see :meth:`record_heartbeat`).

        Optuna numbers a trial by counting the study's earlier trials: 0.7 ms at 10,000,
        under the write lock every worker waits for. Trials are created one at a time
        under the lock of the study's row and never deleted, so that count is the number
        of the trial created just before, plus one. A queued trial (a template) is made
        by Optuna as it is."""
        if template_trial is not None:
            return super()._get_prepared_new_trial(study_id, template_trial, session)
        trial = models.TrialModel(
            study_id=study_id, number=None, state=TrialState.RUNNING, datetime_start=datetime.now()
        )
        session.add(trial)
        session.flush()  # gives the trial its id
        t = models.TrialModel
        previous = session.execute(
            sqlalchemy.select(t.number)
            .where(t.study_id == study_id, t.trial_id < trial.trial_id)
            .order_by(t.trial_id.desc())
            .limit(1)
        ).scalar()
        trial.number = 0 if previous is None else previous + 1
        if self.heartbeat_interval is not None:
            session.add(models.TrialHeartbeatModel(trial_id=trial.trial_id))
            self._first_beat_made.add(trial.trial_id)
        return trial

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """Optuna reads the running trial three times a trial (to start it, to tell it,
        after it): in plain SQL (:mod:`.trial_reader`), not through its ORM."""
        found = select_trials(self.engine, models.TrialModel.trial_id == trial_id)
        if not found:
            raise KeyError(models.NOT_FOUND_MSG)
        return found[0]

    def _get_trials(
        self,
        study_id: int,
        states: Container[TrialState] | None,
        included_trial_ids: set[int],
        trial_id_greater_than: int,
    ) -> list[FrozenTrial]:
        """Optuna's read of trials for its cache, in plain SQL (:mod:`.trial_reader`)."""
        trials = trials_since(
            self.engine, study_id, states, included_trial_ids, trial_id_greater_than
        )
        if not trials:
            self.get_study_name_from_id(study_id)  # KeyError for a study that is not there
        return trials

    def _known_distribution(self, session, study_id: int, name: str) -> BaseDistribution | None:
        if (study_id, name) not in self._distributions:
            earlier = (
                session.query(models.TrialParamModel.distribution_json)
                .join(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialParamModel.param_name == name)
                .first()
            )
            self._distributions[study_id, name] = (
                distributions.json_to_distribution(earlier[0]) if earlier else None
            )
        return self._distributions[study_id, name]

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's heartbeat thread dies on its first storage error (a server restarting, a
        moment's lock) with a traceback, and the trial, still running, then looks dead to
        other workers once the grace period has passed. A missed beat is harmless: the next
        one tries again.

        The thread's first beat, at the trial's start, is skipped when the trial was made
        with one. That beat ran on a thread sharing the interpreter with the trial's own
        work, so it held SQLite's write lock longer than any other transaction of a trial."""
        if trial_id in self._first_beat_made:
            self._first_beat_made.discard(trial_id)
            return
        try:
            super().record_heartbeat(trial_id)
        except optuna.exceptions.StorageInternalError:
            pass


_STATE_INDEX = "ix_attend_search_trials_study_state"


def index_trials_by_state(engine: sqlalchemy.Engine) -> None:
    """Each trial starts with Optuna's look for the study's running trials whose worker
    died, through Optuna's index on the study alone: a scan of every trial of the study,
    1 ms a trial at 10,000. An index on (study, state), beside Optuna's schema (which
    ignores it), makes it a lookup. Made by the first run or worker on a database (commands
    that only read write nothing); two processes making it at the same moment are both
    content."""

    def made() -> bool:
        with sqlite_lock.reading():
            indexes = sqlalchemy.inspect(engine).get_indexes(models.TrialModel.__tablename__)
        return any(index["name"] == _STATE_INDEX for index in indexes)

    if made():
        return
    trials = sqlalchemy.Table(
        models.TrialModel.__tablename__,
        sqlalchemy.MetaData(),
        sqlalchemy.Column("study_id"),
        sqlalchemy.Column("state"),
    )
    try:
        sqlalchemy.Index(_STATE_INDEX, trials.c.study_id, trials.c.state).create(engine)
    except sqlalchemy.exc.DBAPIError:
        if not made():
            raise


def _read_only(method):
    @functools.wraps(method)
    def read(self, *args, **kwargs):
        with sqlite_lock.reading():
            return method(self, *args, **kwargs)

    return read


# Optuna's storage methods that only read: their transactions need no write lock
for _name in (
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "get_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_all_trials",
    "get_best_trial",
    "_get_stale_trial_ids",
):
    setattr(Storage, _name, _read_only(getattr(RDBStorage, _name)))
