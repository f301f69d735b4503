"""``ensemble``: complementary signals combined without labels or a population."""

from __future__ import annotations

import math

from .expressivity import expressivity_signals
from .probe import Probe

# The ensemble's signals: the spread of each over NAS-Bench-201 dev architectures (the standard
# deviation over 600 of them, seed 0; no accuracy involved). Each signal is divided by its own,
# so that a weight of 1 is one spread.
ENSEMBLE_SCALES = {
    "expressivity": 1.95,
    "progressivity": 0.121,
    "synflow": 24.2,
    "complexity": 0.645,
}
# Expressivity counts twice: chosen on the dev data by rank correlation with accuracy, the one
# choice that saw accuracy (``benchmarks/bench_proxies.py`` repeats it inside each fold of a
# cross-validation).
ENSEMBLE_WEIGHTS = {"expressivity": 2.0, "progressivity": 1.0, "synflow": 1.0, "complexity": 1.0}
ENSEMBLE_BATCH = 2  # examples the expressivity forward uses, as many as synflow's
ENSEMBLE_FLOOR = -1e3  # a signal's floor: log 0 (no flow at all) is finite


def ensemble(probe: Probe) -> float:
    """Expressivity, progressivity, synflow and complexity, each divided by its spread, weighed and
    summed.

    Complementary signals: ``expressivity`` and ``progressivity`` (AZ-NAS, Lee and Ham, CVPR
    2024; :func:`.expressivity.expressivity_signals`) ask whether the features at initialisation
    use many directions, and whether no block collapses them; ``synflow`` how much signal the
    weights carry end to end; ``complexity`` (AZ-NAS's fourth signal; the log of the parameter
    count here, which needs no trace, where AZ-NAS takes FLOPs) the capacity. On NAS-Bench-201
    CIFAR-10 alone they rank accuracy at Spearman about 0.87, 0.74, 0.76 and 0.78; combined 0.91
    (``benchmarks/bench_proxies.py``). AZ-NAS sums the signals' log ranks within the population
    being searched, so a score depends on the other networks and shifts as the search goes. Here
    a fixed monotone transform replaces the ranks: each signal divided by a constant, its
    standard deviation over NAS-Bench-201 dev architectures (:data:`ENSEMBLE_SCALES`, set from
    the signals alone, never from accuracy), then summed with :data:`ENSEMBLE_WEIGHTS`, so one
    network's score is comparable with any other's with no population at hand. The weights
    (expressivity twice, the others once) were chosen on the dev data's accuracy; the benchmark
    cross-validates that choice with the scales. (Standardised log ranks, or a clip of each
    standardised signal, ranked no better in cross-validation; AZ-NAS's trainability, from a
    backward, added nothing here.)

    Cost: one forward of :data:`ENSEMBLE_BATCH` examples without backward, then synflow's pass
    on the same network (the parameter count is free): under twice synflow alone, the network's
    build included.
    """
    return sum(
        ENSEMBLE_WEIGHTS[name] * value / ENSEMBLE_SCALES[name]
        for name, value in signals(probe).items()
    )


def signals(probe: Probe) -> dict[str, float]:
    """The ensemble's signals, each floored at :data:`ENSEMBLE_FLOOR`; computed once a probe."""
    if "ensemble" not in probe.cache:
        # the parameters counted before synflow, which takes the biases out
        size = sum(p.numel() for p in probe.model.parameters())
        raw = {
            **expressivity_signals(probe.model, probe.examples),
            "synflow": probe.synflow(),
            "complexity": math.log(size),
        }
        # not max(): a NaN would pass it
        probe.cache["ensemble"] = {
            k: v if v > ENSEMBLE_FLOOR else ENSEMBLE_FLOOR  # noqa: FURB136
            for k, v in raw.items()
        }
    return probe.cache["ensemble"]
