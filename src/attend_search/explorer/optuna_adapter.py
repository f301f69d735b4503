"""Every use of an Optuna internal by the explorer, in one place: what each buys, measured,
and ``tests/test_optuna_contract.py`` fails if Optuna changes the behaviour it relies on.
pyproject.toml declares only the Optuna versions CI tests (the lowest and the newest).

- ``Trial.storage`` swapped while a trial's space is resolved (:func:`params_written_together`):
  one transaction for ~70 parameters instead of ~70: about 60 ms a trial, all of it under
  SQLite's write lock that parallel workers queue for.
- ``Trial._cached_frozen_trial``, ``Trial._relative_params``, ``Trial._fixed_params``
  (:class:`Draw`, :func:`is_enqueued`): a proposal that repeats an architecture is drawn
  again before its parameters are written, so that it costs no trial of the budget.
- ``Trial._trial_id``, ``Study._storage`` (:func:`trial_id`, :func:`storage_of`,
  :func:`save_attrs`): a trial's record and constraints in one transaction, not two; the
  ledger's claims name trials by id.
- ``_CONSTRAINTS_KEY`` (:data:`CONSTRAINTS_KEY`): constraints written as Optuna's own
  ``constraints_func`` path writes them, in one attribute: ``trial.set_constraint`` costs a read
  of the whole trial and a write per constraint, a third of a cheap trial's time.
- TPE's ``_RELATIVE_PARAMS_KEY`` and ``Study._get_trials`` (:class:`GroupedTPESampler`): TPE's
  constant liar reads every trial again for each group of parameters (about six reads a trial on
  the full space, a tenth of a cheap trial's time, growing with the study); one read a trial
  here. Its relative parameters are not written (one write-lock transaction a trial less).
- ``NSGAIISampler.get_trial_generation``, ``get_parent_population``, ``Study._get_trials``
  (:class:`NSGAIISampler`): a trial's generation and a generation's parents kept from trial to
  trial, not recomputed from every trial of the study. Optuna 5.1 caches part of this itself;
  measured against it (``benchmarks/bench_scale.py``, 10,000 trials, ``--jobs 2``, median of 3
  studies, a 2-core machine), the last 500 trials cost 1.08x the first 500 here and 1.43x with
  Optuna's own, and a study took 170 s against 190 s: kept.
- ``optuna._hypervolume.compute_hypervolume`` (:func:`hypervolume`): the report's hypervolume
  history, with Optuna's own algorithm.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume
from optuna.samplers._tpe.sampler import _RELATIVE_PARAMS_KEY
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

CONSTRAINTS_KEY = _CONSTRAINTS_KEY


def backend_of(storage: Any) -> Any:
    """The storage behind Optuna's cache (``_CachedStorage`` wraps every RDB storage)."""
    return getattr(storage, "_backend", storage)


def trial_id(trial: optuna.Trial) -> int:
    return trial._trial_id


def storage_of(trial: optuna.Trial) -> Any:
    return trial.study._storage


def save_attrs(trial: optuna.Trial, user: dict[str, Any], system: dict[str, Any]) -> None:
    """User and system attributes of a running trial in one transaction where the storage
    offers ``set_trial_attrs``, else one write each."""
    storage = storage_of(trial)
    backend = backend_of(storage)
    if hasattr(backend, "set_trial_attrs"):
        backend.set_trial_attrs(trial._trial_id, user, system)
        return
    for key, value in user.items():
        storage.set_trial_user_attr(trial._trial_id, key, value)
    for key, value in system.items():
        storage.set_trial_system_attr(trial._trial_id, key, value)


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """The volume ``points`` (a Pareto front, minimised) dominate up to ``reference``."""
    return float(compute_hypervolume(points, reference, assume_pareto=True))


class _Collecting:
    """The trial's storage, except that parameters are kept aside."""

    def __init__(self, storage: Any):
        self._storage = storage
        self.params: list[tuple[str, float, Any]] = []

    def set_trial_param(self, trial_id: int, name: str, value: float, distribution: Any) -> None:
        self.params.append((name, value, distribution))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


class Draw:
    """The parameters a trial has drawn so far in :func:`params_written_together`."""

    def __init__(self, trial: optuna.Trial, collecting: _Collecting):
        self._trial, self._collecting = trial, collecting

    def again(self, independent: bool = False) -> None:
        """Forget them: the next suggestions ask the sampler anew (its random state has
        moved on, so it proposes something else), as if nothing had been drawn; with
        ``independent``, parameter by parameter (``sample_independent``: NSGA-II's and GP's
        are random, TPE's univariate), not as one relative proposal."""
        self._collecting.params.clear()
        frozen = self._trial._cached_frozen_trial
        frozen.params.clear()
        frozen.distributions.clear()
        self._trial._relative_params = {} if independent else None


@contextmanager
def params_written_together(trial: optuna.Trial) -> Iterator[Draw]:
    """The trial's parameters suggested in the block are written as it ends: in one
    transaction by a storage that offers ``set_trial_params``
    (:mod:`attend_search.studies.storage.optuna_storage`), one by one by any other. Until then
    they can be drawn again (:meth:`Draw.again`); nothing reads them back from the storage
    meanwhile (the trial object keeps them)."""
    storage = trial.storage
    collecting = _Collecting(storage)
    trial.storage = collecting
    try:
        yield Draw(trial, collecting)
    finally:
        trial.storage = storage
    backend = backend_of(storage)
    if hasattr(backend, "set_trial_params"):
        backend.set_trial_params(trial._trial_id, collecting.params)
        return
    for name, value, distribution in collecting.params:
        storage.set_trial_param(trial._trial_id, name, value, distribution)


def is_enqueued(trial: optuna.Trial) -> bool:
    """Whether the trial's parameters were fixed in advance (``study.enqueue_trial``)."""
    return bool(trial._fixed_params)


class _OneReadPerTrial:
    """The study as a sampler sees it while it samples one trial: every trial as Optuna
    read them when the trial was asked for (to infer the search space), served from that
    list; its storage writes no relative parameters (:class:`_NoRelativeParams`)."""

    def __init__(self, study: optuna.Study):
        self._study, self._trials = study, None
        self._storage = _NoRelativeParams(study._storage)

    def _get_trials(
        self, deepcopy: bool = True, states: Any = None, use_cache: bool = False
    ) -> list[optuna.trial.FrozenTrial]:
        if self._trials is None:
            self._trials = self._study._get_trials(deepcopy=False, use_cache=True)
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class _NoRelativeParams:
    """A storage that drops TPE's ``tpe:relative_params`` system attribute. TPE writes the
    parameters it chose for a trial there, in a transaction of its own under SQLite's
    write lock, so that other workers' constant liar sees a running trial's parameters
    before they are suggested. Ours are written a few milliseconds later in one batch
    (:func:`params_written_together`), and the liar reads ``trial.params`` then."""

    def __init__(self, storage: Any):
        self._inner = storage

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not key.startswith(_RELATIVE_PARAMS_KEY):
            self._inner.set_trial_system_attr(trial_id, key, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GroupedTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, grouped. Optuna 5's default constant liar (running trials count as
    bad ones, so parallel workers spread out) reads every trial from the storage again for
    each group of parameters: about six reads a trial on our space, a tenth of a cheap
    trial's time, growing with the study. The read made when the trial was asked for sees
    the other workers' running trials all the same."""

    def __init__(self, **kwargs: Any):
        super().__init__(multivariate=True, group=True, **kwargs)

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return super().sample_relative(_OneReadPerTrial(study), trial, search_space)


class NSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, with its per-trial bookkeeping kept from trial to trial instead of
    recomputed from every trial of the study: a new trial's generation (Optuna scans all
    complete trials for the latest generation and its size) and a generation's parents
    (Optuna filters every trial by id). Both grow with the study, a scan each per trial,
    the larger part of a trial's cost growth over 10,000 trials. Same results: the trials
    counted are finished ones, which never change, and a generation's parents, once chosen
    and stored in the study, are fixed."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._settled = 0  # trials [0, _settled) are finished, counted
        self._complete_by_generation: Counter[int] = Counter()
        self._parents: dict[int, list[optuna.trial.FrozenTrial]] = {}

    def get_trial_generation(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> int:
        key = self._get_generation_key()
        if key in trial.system_attrs:
            return trial.system_attrs[key]
        trials = study._get_trials(deepcopy=False, use_cache=True)  # by number, only grows
        while self._settled < len(trials) and trials[self._settled].state.is_finished():
            self._count(self._complete_by_generation, trials[self._settled], key)
            self._settled += 1
        counts = self._complete_by_generation.copy()
        for t in trials[self._settled :]:
            self._count(counts, t, key)
        latest = max((g for g, n in counts.items() if g >= 0 and n), default=0)
        generation = latest if counts[latest] < self._population_size else latest + 1
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    @staticmethod
    def _count(counts: Counter[int], trial: optuna.trial.FrozenTrial, key: str) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            counts[trial.system_attrs.get(key, -1)] += 1

    def get_parent_population(
        self, study: optuna.Study, generation: int
    ) -> list[optuna.trial.FrozenTrial]:
        if generation not in self._parents:
            self._parents = {generation: super().get_parent_population(study, generation)}
        return self._parents[generation]
