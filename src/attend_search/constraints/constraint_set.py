"""Declarative constraint sets: best-practice rules plus budgets on evaluator metrics.

Structural rules are checked on the spec before anything is built. Budgets apply to
metrics (``params``, ``macs``, ``peak_activation_bytes``, ``latency.<device>``, a proxy,
``accuracy``) and yield *relative* violations, ``(value - max) / max``, negative while within
budget: scale-free numbers that Optuna's constrained samplers can compare across budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from ..errors import AttendSearchError
from ..search_space import Spec
from ..search_space.fields import Fields, join
from ..search_space.space import Space
from .rules import RULES, check_rule


class ConstraintError(AttendSearchError):
    """A constraints section is malformed."""


@dataclass(frozen=True)
class Budget:
    metric: str
    max: float | None = None
    min: float | None = None
    #: where the metric is named in the study file (``constraints.latency.device``), for errors
    where: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return (
            f"{self.metric} <= {self.max:g}"
            if self.max is not None
            else f"{self.metric} >= {self.min:g}"
        )

    @property
    def bound(self) -> tuple[str, float]:
        """``("<=", max)`` or ``(">=", min)``."""
        return ("<=", self.max) if self.max is not None else (">=", self.min)

    def violation(self, value: float) -> float:
        """Relative amount outside the budget; <= 0 within it."""
        if self.max is not None:
            return (value - self.max) / abs(self.max or 1.0)
        return (self.min - value) / abs(self.min or 1.0)

    def value_at(self, violation: float) -> float:
        """The metric's value whose :meth:`violation` is ``violation``: a stored violation
        told as the value it stands for."""
        if self.max is not None:
            return self.max + violation * abs(self.max or 1.0)
        return self.min - violation * abs(self.min or 1.0)


@dataclass(frozen=True)
class ConstraintSet:
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: tuple[Budget, ...] = ()

    @property
    def metrics(self) -> list[str]:
        """Metrics the budgets need, in declaration order."""
        return list(dict.fromkeys(b.metric for b in self.budgets))

    def structural(self, spec: Spec) -> dict[str, float]:
        """Violation of every rule (0 = satisfied); no model is built."""
        return {name: check_rule(name, spec, params) for name, params in self.rules.items()}

    def narrow(self, space: Space) -> Space:
        """The space without choices that could only break a rule (see ``rules.rule``)."""
        for name, params in self.rules.items():
            if RULES[name].narrow is not None:
                space = RULES[name].narrow(space, **params)
        return space

    def budget_violations(self, metrics: dict[str, float]) -> dict[str, float]:
        """Violations of the budgets whose metric is in ``metrics`` (known so far: cheap
        metrics first, expensive ones once the candidate is feasible on the cheap ones)."""
        return {b.name: b.violation(metrics[b.metric]) for b in self.budgets if b.metric in metrics}

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "budgets": [
                {
                    k: v
                    for k, v in (("metric", b.metric), ("max", b.max), ("min", b.min))
                    if v is not None
                }
                for b in self.budgets
            ],
        }


def builtin_rulesets() -> list[str]:
    folder = resources.files(__package__) / "rulesets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _ruleset(name: str, f: Fields) -> dict[str, dict[str, Any]]:
    if name == "none":
        return {}
    if name not in builtin_rulesets():
        raise f.fail(
            "use", f"unknown rule set {name!r}; known: none, {', '.join(builtin_rulesets())}"
        )
    text = (resources.files(__package__) / "rulesets" / f"{name}.yaml").read_text()
    return {k: dict(v or {}) for k, v in yaml.safe_load(text)["rules"].items()}


# Shorthand budget sections: key -> (metric, field holding the bound, max or min).
_SHORTHANDS = {
    "params": ("params", "max"),
    "macs": ("macs", "max"),
    "peak_activation": ("peak_activation_bytes", "max_bytes"),
}


def read_constraints(data: Any, path: str = "constraints") -> ConstraintSet:
    """Parse a study's ``constraints`` section (docs/constraints.md gives the format)."""
    f = Fields(data if data is not None else {}, path, ConstraintError)
    rules = _ruleset(f.str("use", "best-practices"), f)
    overrides = f.sub("rules", {})
    for name in overrides.data:
        value = overrides.raw(name)
        where = join(overrides.path, name)
        if name not in RULES:
            raise ConstraintError(f"unknown rule; known: {', '.join(sorted(RULES))}", path=where)
        if value is False:
            rules.pop(name, None)
        else:
            rules[name] = {**rules.get(name, {}), **_rule_params(name, value, where)}
    budgets = []
    for key, (metric, bound) in _SHORTHANDS.items():
        if f.has(key):
            b = f.sub(key)
            budgets.append(Budget(metric, max=_positive(b, bound), where=b.path))
            b.done()
    if f.has("latency"):
        b = f.sub("latency")
        budgets.append(
            Budget(
                f"latency.{b.str('device')}",
                max=_positive(b, "max_ms"),
                where=join(b.path, "device"),
            )
        )
        b.done()
    for m in f.items("metrics", []):
        lo, hi = m.float("min", None), m.float("max", None)
        if (lo is None) == (hi is None):
            raise m.fail("max", "give exactly one of min or max")
        budgets.append(Budget(m.str("metric"), max=hi, min=lo, where=join(m.path, "metric")))
        m.done()
    f.done()
    _check_consistent(budgets)
    return ConstraintSet(rules=rules, budgets=tuple(budgets))


def _positive(f: Fields, key: str) -> float:
    """A budget on a size or a time: zero or less could never be met."""
    value = f.float(key)
    if value <= 0:
        raise f.fail(key, f"{value:g} is not a positive budget")
    return value


def _check_consistent(budgets: list[Budget]) -> None:
    """A lower and an upper bound on one metric that no value meets together."""
    for low in (b for b in budgets if b.min is not None):
        for high in (b for b in budgets if b.max is not None and b.metric == low.metric):
            if low.min > high.max:
                later = max(low, high, key=budgets.index)
                raise ConstraintError(
                    f"{low.name} contradicts {high.name}: no value meets both", path=later.where
                )


def _rule_params(name: str, value: Any, path: str) -> dict[str, Any]:
    if value is True or value is None:
        return {}
    f = Fields(value, path, ConstraintError)
    params = {}
    for key, kind in RULES[name].params.items():
        if f.has(key):
            params[key] = f.bool(key) if kind is bool else f.int(key, lo=kind)
    f.done()
    return params
