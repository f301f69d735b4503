"""Is any spec of the space feasible? Ask before the search, not after an hour of it.

A short Optuna search (TPE, on the same space walk) minimises the total violation of the
rules and of the budgets on cheap metrics, and stops at the first feasible spec. Rules,
analytic costs and predicted latency (one walk of the spec, under a millisecond) are
computed for every candidate, so a latency budget that cannot be met is named as the
blocker, not hidden behind the constraints a fast candidate happens to break. If none is
found, the closest candidate's violations say which constraints are in the way.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from ..errors import AttendSearchError
from ..search_space import Spec
from .samplers import make_sampler
from .search import SearchConfig, cheap_violations, presets_in_space, quiet_optuna
from .trial_chooser import TrialChooser


@dataclass(frozen=True)
class Feasibility:
    feasible: Spec | None
    closest: dict[str, float]  # violations of the least-violating candidate
    tried: int

    @property
    def blockers(self) -> list[str]:
        return [name for name, v in self.closest.items() if v > 0]


def check_feasibility(config: SearchConfig, trials: int = 300, seed: int = 0) -> Feasibility:
    found: list[Spec] = []
    violations_of: dict[int, dict[str, float]] = {}

    def objective(trial: optuna.Trial) -> float:
        spec = config.space.resolve(TrialChooser(trial))
        violations = cheap_violations(config, spec)[1]
        violations_of[trial.number] = violations
        if all(v <= 0 for v in violations.values()):
            found.append(spec)
            trial.study.stop()
        return sum(max(0.0, v) for v in violations.values())

    sampler = make_sampler("tpe", {"n_startup_trials": 20}, seed)
    with quiet_optuna():
        study = optuna.create_study(sampler=sampler)
        for _, _, params in presets_in_space(config.space):
            study.enqueue_trial(params)
        study.optimize(objective, n_trials=trials)
    closest = min(violations_of.values(), key=lambda v: sum(max(0.0, x) for x in v.values()))
    return Feasibility(found[0] if found else None, closest, len(study.trials))


def require_feasible(config: SearchConfig, trials: int = 300) -> Feasibility:
    """The feasibility check, refusing (``constraints``) a study no spec of the space meets."""
    result = check_feasibility(config, trials=trials)
    if result.feasible is None:
        worst = ", ".join(f"{n} ({result.closest[n]:+.3g})" for n in result.blockers)
        raise AttendSearchError(
            f"no spec of the space met every constraint in {result.tried} "
            f"tries; the closest still violates: {worst}",
            path="constraints",
        )
    return result
