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

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from ..search_space.fields import Fields
from .optuna_adapter import GroupedTPESampler, NSGAIISampler


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
    full_space: bool = False  # samplers only; see the module docstring

    def read_options(self, f: Fields) -> dict[str, Any]:
        """Options from a study file's mapping (``name`` already read), checked."""
        unknown = [key for key in f.data if key != "name" and key not in self.options]
        if unknown:
            takes = ", ".join(self.options) or "no options"
            raise f.fail(
                str(unknown[0]), f"{self.name} has no option {unknown[0]!r} (it takes: {takes})"
            )
        return {key: opt.read(f, key) for key, opt in self.options.items() if f.has(key)}


def _quiet(make: Callable[..., Any]) -> Callable[..., Any]:
    """Optuna warns that some samplers are experimental on every construction."""

    def made(**kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return make(**kwargs)

    return made


_PROBABILITY = Option(float, 0.0, 1.0)

SAMPLERS: dict[str, Registered] = {
    s.name: s
    for s in (
        Registered(
            "tpe",
            _quiet(GroupedTPESampler),
            {
                "n_startup_trials": Option(int, 0),
                "n_ei_candidates": Option(int, 1),
                "prior_weight": Option(float, 1e-6),
                "consider_endpoints": Option(bool),
                "constant_liar": Option(bool),
            },
        ),
        Registered(
            "nsga2",
            _quiet(NSGAIISampler),
            {
                "population_size": Option(int, 2),
                "mutation_prob": _PROBABILITY,
                "crossover_prob": _PROBABILITY,
                "swapping_prob": _PROBABILITY,
            },
            full_space=True,
        ),
        Registered("random", optuna.samplers.RandomSampler),
        Registered(
            "gp",
            _quiet(lambda **kw: optuna.samplers.GPSampler(warn_independent_sampling=False, **kw)),
            {"n_startup_trials": Option(int, 1), "deterministic_objective": Option(bool)},
            full_space=True,
        ),
    )
}

PRUNERS: dict[str, Registered] = {
    p.name: p
    for p in (
        Registered("none", lambda max_resource: optuna.pruners.NopPruner()),
        Registered(
            "median",
            lambda max_resource, n_startup_trials=5, n_warmup_steps=0: optuna.pruners.MedianPruner(
                n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
            ),
            {"n_startup_trials": Option(int, 0), "n_warmup_steps": Option(int, 0)},
        ),
        Registered(
            "hyperband",
            lambda max_resource, reduction_factor=3: optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=max_resource, reduction_factor=reduction_factor
            ),
            {"reduction_factor": Option(int, 2)},
        ),
    )
}


def read_choice(
    f: Fields, key: str, registry: dict[str, Registered], default: str
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


def make_pruner(name: str, options: dict[str, Any], max_resource: int) -> optuna.pruners.BasePruner:
    return PRUNERS[name].make(max_resource=max_resource, **options)
