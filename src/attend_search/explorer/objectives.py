"""Metrics an objective or budget can name, and how expensive each is to get.

``params``, ``macs``, ``peak_activation_bytes`` (analytic, microseconds) and
``latency.<device>`` (the roofline model, a fraction of a second) are *cheap*: every
candidate gets them, feasible or not. Zero-cost proxies and ``accuracy`` (short training)
are *expensive*: only feasible candidates get them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AttendSearchError
from ..evaluators.devices import load_device
from ..evaluators.proxies import PROXIES

COST_METRICS = ("params", "macs", "peak_activation_bytes")
DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str

    def worst(self, values: list[float]) -> float:
        """The worst of ``values`` for this direction (used to fill in skipped evaluations)."""
        if not values:
            return 0.0
        return max(values) if self.direction == "minimize" else min(values)


def is_cheap(metric: str) -> bool:
    return metric in COST_METRICS or metric.startswith("latency.")


def check_metric(metric: str) -> str:
    """``metric`` if it names something an evaluator computes, else a clear error."""
    if metric in COST_METRICS or metric in PROXIES or metric == "accuracy":
        return metric
    if metric.startswith("latency."):
        load_device(metric.partition(".")[2])
        return metric
    raise AttendSearchError(
        f"unknown metric {metric!r}; known: {', '.join(COST_METRICS)}, latency.<device>, "
        f"{', '.join(PROXIES)}, accuracy")
