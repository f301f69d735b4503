"""Constraints: best-practice rules on specs and budgets on evaluator metrics."""

from .constraint_set import (
    Budget,
    ConstraintError,
    ConstraintSet,
    builtin_rulesets,
    read_constraints,
)
from .rules import RULES, Rule

__all__ = [
    "RULES",
    "Budget",
    "ConstraintError",
    "ConstraintSet",
    "Rule",
    "builtin_rulesets",
    "read_constraints",
]
