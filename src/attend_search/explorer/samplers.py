"""Samplers and pruners by name, each with the options it accepts (a registry, as Optuna's
own classes are strategy objects behind one interface).

A study file names one (``sampler: nsga2``) or gives options (``sampler: {name: nsga2,
population_size: 24}``); an option a sampler does not take is refused with its field path.

``full_space`` says how a sampler sees the space. Optuna's NSGA-II and GP samplers evolve
or model only the *intersection* search space, the parameters asked on every trial so far;
a parameter asked only under a condition (a fifth stage, the merge mode of two columns, the
attention micro-parameters of a stage whose block type varies) would be drawn at random on
every trial and never inherited. So for them every parameter of the space is asked on every
trial and the ones that do not apply are ignored when the spec is resolved (twins share a
digest and are evaluated once). TPE groups conditional parameters itself and keeps the
define-by-run encoding.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.samplers._tpe.sampler import _RELATIVE_PARAMS_KEY

from ..search_space.fields import Fields


@dataclass(frozen=True)
class Option:
    """A keyword argument of the Optuna class: its type and bounds."""

    type: type
    lo: float | None = None
    hi: float | None = None

    def read(self, f: Fields, key: str) -> Any:
        if self.type is bool:
            return f.bool(key)
        if self.type is int:
            return f.int(key, lo=self.lo, hi=self.hi)
        return f.float(key, lo=self.lo, hi=self.hi)


@dataclass(frozen=True)
class Registered:
    """One sampler or pruner: how to make it and the options it takes."""

    name: str
    make: Callable[..., Any]
    options: dict[str, Option] = field(default_factory=dict)
    full_space: bool = False      # samplers only; see the module docstring

    def read_options(self, f: Fields) -> dict[str, Any]:
        """Options from a study file's mapping (``name`` already read), checked."""
        unknown = [key for key in f.data if key != "name" and key not in self.options]
        if unknown:
            takes = ", ".join(self.options) or "no options"
            raise f.fail(str(unknown[0]), f"{self.name} has no option {unknown[0]!r} "
                                          f"(it takes: {takes})")
        return {key: opt.read(f, key) for key, opt in self.options.items() if f.has(key)}


def _quiet(make: Callable[..., Any]) -> Callable[..., Any]:
    """Optuna warns that some samplers are experimental on every construction."""
    def made(**kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return make(**kwargs)
    return made


class _OneReadPerTrial:
    """The study as a sampler sees it while it samples one trial: every trial as Optuna
    read them when the trial was asked for (to infer the search space), served from that
    list; its storage writes no relative parameters (:class:`_NoRelativeParams`)."""

    def __init__(self, study: optuna.Study):
        self._study, self._trials = study, None
        self._storage = _NoRelativeParams(study._storage)

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False
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
    (:mod:`.param_batch`), and the liar reads ``trial.params`` then."""

    def __init__(self, storage: Any):
        self._inner = storage

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not key.startswith(_RELATIVE_PARAMS_KEY):
            self._inner.set_trial_system_attr(trial_id, key, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, grouped. Optuna 5's default constant liar (running trials count as
    bad ones, so parallel workers spread out) reads every trial from the storage again for
    each group of parameters: about six reads a trial on our space, a tenth of a cheap
    trial's time, growing with the study. The read made when the trial was asked for sees
    the other workers' running trials all the same."""

    def __init__(self, **kwargs: Any):
        super().__init__(multivariate=True, group=True, **kwargs)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, Any]) -> dict[str, Any]:
        return super().sample_relative(_OneReadPerTrial(study), trial, search_space)


class _NSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, with its per-trial bookkeeping kept from trial to trial instead of
    recomputed from every trial of the study: a new trial's generation (Optuna scans all
    complete trials for the latest generation and its size) and a generation's parents
    (Optuna filters every trial by id). Both grow with the study, a scan each per trial,
    the larger part of a trial's cost growth over 10,000 trials. Same results: the trials
    counted are finished ones, which never change, and a generation's parents, once chosen
    and stored in the study, are fixed."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._settled = 0                       # trials [0, _settled) are finished, counted
        self._complete_by_generation: Counter[int] = Counter()
        self._parents: dict[int, list[optuna.trial.FrozenTrial]] = {}

    def get_trial_generation(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> int:
        key = self._get_generation_key()
        if key in trial.system_attrs:
            return trial.system_attrs[key]
        trials = study._get_trials(deepcopy=False, use_cache=True)   # by number, only grows
        while self._settled < len(trials) and trials[self._settled].state.is_finished():
            self._count(self._complete_by_generation, trials[self._settled], key)
            self._settled += 1
        counts = self._complete_by_generation.copy()
        for t in trials[self._settled:]:
            self._count(counts, t, key)
        latest = max((g for g, n in counts.items() if g >= 0 and n), default=0)
        generation = latest if counts[latest] < self._population_size else latest + 1
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    @staticmethod
    def _count(counts: Counter[int], trial: optuna.trial.FrozenTrial, key: str) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            counts[trial.system_attrs.get(key, -1)] += 1

    def get_parent_population(self, study: optuna.Study, generation: int
                              ) -> list[optuna.trial.FrozenTrial]:
        if generation not in self._parents:
            self._parents = {generation: super().get_parent_population(study, generation)}
        return self._parents[generation]


_PROBABILITY = Option(float, 0.0, 1.0)

SAMPLERS: dict[str, Registered] = {s.name: s for s in (
    Registered("tpe", _quiet(_TPESampler),
        {"n_startup_trials": Option(int, 0), "n_ei_candidates": Option(int, 1),
         "prior_weight": Option(float, 1e-6), "consider_endpoints": Option(bool),
         "constant_liar": Option(bool)}),
    Registered("nsga2", _quiet(_NSGAIISampler),
               {"population_size": Option(int, 2), "mutation_prob": _PROBABILITY,
                "crossover_prob": _PROBABILITY, "swapping_prob": _PROBABILITY},
               full_space=True),
    Registered("random", optuna.samplers.RandomSampler),
    Registered("gp", _quiet(lambda **kw: optuna.samplers.GPSampler(
        warn_independent_sampling=False, **kw)),
        {"n_startup_trials": Option(int, 1), "deterministic_objective": Option(bool)},
        full_space=True),
)}

PRUNERS: dict[str, Registered] = {p.name: p for p in (
    Registered("none", lambda max_resource: optuna.pruners.NopPruner()),
    Registered("median", lambda max_resource, n_startup_trials=5, n_warmup_steps=0:
               optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials,
                                           n_warmup_steps=n_warmup_steps),
               {"n_startup_trials": Option(int, 0), "n_warmup_steps": Option(int, 0)}),
    Registered("hyperband", lambda max_resource, reduction_factor=3:
               optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource,
                                              reduction_factor=reduction_factor),
               {"reduction_factor": Option(int, 2)}),
)}


def read_choice(f: Fields, key: str, registry: dict[str, Registered], default: str
                ) -> tuple[str, dict[str, Any]]:
    """``key: name`` or ``key: {name: ..., option: value}`` -> (name, checked options)."""
    raw = f.raw(key, default)
    if not isinstance(raw, dict):
        return f.choice(key, tuple(registry), default), {}
    sub = f.sub(key)
    name = sub.choice("name", tuple(registry))
    return name, registry[name].read_options(sub)


def make_sampler(name: str, options: dict[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    return SAMPLERS[name].make(seed=seed, **options)


def make_pruner(name: str, options: dict[str, Any], max_resource: int
                ) -> optuna.pruners.BasePruner:
    return PRUNERS[name].make(max_resource=max_resource, **options)
