"""Is any spec of the space feasible? Ask before the search, not after an hour of it.

A short Optuna search (TPE, on the same space walk) minimises the total violation of the
rules and of the budgets on cheap metrics, and stops at the first feasible spec. Rules and
analytic costs take microseconds; predicted latency is only computed for candidates that
already meet everything else. If none is found, the closest candidate's violations say
which constraints are in the way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna

from ..search_space import Spec
from .search import SearchConfig, presets_in_space, quiet_optuna
from .trial_chooser import TrialChooser


@dataclass(frozen=True)
class Feasibility:
    feasible: Spec | None
    closest: dict[str, float]      # violations of the least-violating candidate
    tried: int

    @property
    def blockers(self) -> list[str]:
        return [name for name, v in self.closest.items() if v > 0]


def check_feasibility(config: SearchConfig, trials: int = 300, seed: int = 0) -> Feasibility:
    cs, evaluation = config.constraints, config.evaluation
    found: list[Spec] = []
    violations_of: dict[int, dict[str, float]] = {}

    def objective(trial: optuna.Trial) -> float:
        spec = config.space.resolve(TrialChooser(trial))
        violations = cs.structural(spec)
        costs = evaluation.cheap(spec, [])
        violations.update({b.name: b.violation(costs[b.metric])
                           for b in cs.budgets if b.metric in costs})
        if all(v <= 0 for v in violations.values()):
            latency = [m for m in cs.metrics if m.startswith("latency.")]
            values = evaluation.cheap(spec, latency)
            violations.update({b.name: b.violation(values[b.metric])
                               for b in cs.budgets if b.metric in latency})
        violations_of[trial.number] = violations
        if all(v <= 0 for v in violations.values()):
            found.append(spec)
            trial.study.stop()
        return sum(max(0.0, v) for v in violations.values())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                             n_startup_trials=20)
    with quiet_optuna():
        study = optuna.create_study(sampler=sampler)
        for _, _, params in presets_in_space(config.space):
            study.enqueue_trial(params)
        study.optimize(objective, n_trials=trials)
    closest = min(violations_of.values(), key=lambda v: sum(max(0.0, x) for x in v.values()))
    return Feasibility(found[0] if found else None, closest, len(study.trials))

