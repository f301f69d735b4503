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

from ..constraints import ConstraintSet
from ..errors import AttendSearchError
from ..search_space import Spec
from .metrics import metric_title, quantity
from .samplers import make_sampler
from .search import SearchConfig, cheap_violations, presets_in_space, quiet_optuna
from .trial_chooser import TrialChooser


@dataclass(frozen=True)
class ConstraintState:
    """How a network stands against one constraint, as a user reads it: a budget's value and
    bound in the units of the metrics table (``params``, ``1.82 M``, ``<= 2.5 M``), a rule's
    violation (``simd_channels``, ``broken (3)``), never the relative amount stored."""

    name: str  # the metric's title, or the rule's name
    value: str
    met: bool
    bound: str = ""  # a budget's: "<= 2.5 M"

    @property
    def constraint(self) -> str:
        return f"{self.name} {self.bound}".rstrip()

    def __str__(self) -> str:
        """``params 1.82 M <= 2.5 M``; broken: ``params 3.1 M > 2.5 M``, ``simd_channels
        broken (3)``."""
        if not self.bound:
            return f"{self.name} {self.value}"
        op, limit = self.bound.split(" ", 1)
        return f"{self.name} {self.value} {op if self.met else _BROKEN[op]} {limit}"


_BROKEN = {"<=": ">", ">=": "<"}


def constraint_states(
    constraints: ConstraintSet, violations: dict[str, float]
) -> list[ConstraintState]:
    """``violations`` (a trial's, rules' and budgets' by name) told as :class:`ConstraintState`."""
    budgets = {b.name: b for b in constraints.budgets}
    states = []
    for name, v in violations.items():
        budget = budgets.get(name)
        if budget is None:
            states.append(ConstraintState(name, "kept" if v <= 0 else f"broken ({v:g})", v <= 0))
            continue
        op, limit = budget.bound
        m = budget.metric
        states.append(
            ConstraintState(
                metric_title(m),
                quantity(m, budget.value_at(v)),
                v <= 0,
                f"{op} {quantity(m, limit)}",
            )
        )
    return states


@dataclass(frozen=True)
class Feasibility:
    feasible: Spec | None
    closest: dict[str, float]  # violations of the least-violating candidate
    tried: int


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
        states = constraint_states(config.constraints, result.closest)
        worst = ", ".join(str(state) for state in states if not state.met)
        raise AttendSearchError(
            f"no spec of the space met every constraint in {result.tried} "
            f"tries; the closest still violates: {worst}",
            path="constraints",
        )
    return result
