"""``ensemble``: three complementary signals from one forward, combined without labels."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .activation_codes import code_kernel, naswot
from .expressivity import entropy_hooks, expressivity_of
from .probe import Probe

# Each signal's spread: its standard deviation (finite values) over the dev architectures of
# NAS-Bench-201 (1,200 of them) and of NAS-Bench-Macro (all 1,961), the mean of the two (no
# accuracy involved). Each signal is divided by its own, so that a weight of 1 is one spread
# of a typical space.
ENSEMBLE_SCALES = {"expressivity": 0.364, "naswot": 1.74, "complexity": 0.508}
# Expressivity counts twice: the best of a grid (each weight in 0-3) by the worse of the two
# benchmarks' Spearman, on a flat optimum. Chosen on either benchmark alone, weights rank the
# other at 0.903 (NAS-Bench-201) and 0.932 (NAS-Bench-Macro), held out; both choices weigh
# expressivity above complexity (``benchmarks/bench_proxies.py --report``).
ENSEMBLE_WEIGHTS = {"expressivity": 2.0, "naswot": 1.0, "complexity": 1.0}
# examples of the one forward: ranked as well as 8 on both benchmarks held out, at half the cost
ENSEMBLE_BATCH = 4
ENSEMBLE_FLOOR = -1e3  # a signal's floor: the log of a singular kernel (-inf) is finite


def ensemble(probe: Probe) -> float:
    """Expressivity, naswot and complexity, each divided by its spread, weighed and summed
    (:func:`combine`).

    ``expressivity`` (after AZ-NAS, Lee and Ham, CVPR 2024): the entropy of each block's
    feature covariance, averaged over blocks: whether the features at initialisation use many
    directions. ``naswot`` (Mellor et al. 2021): how differently the examples switch the
    activations. ``complexity``: the log of the multiply-accumulates of the convolutions and
    linear layers in that forward: capacity. All three come from one forward of
    :data:`ENSEMBLE_BATCH` examples, with hooks, so they work on any module.

    Every choice was checked with one benchmark held out (``benchmarks/bench_proxies.py``,
    the docs' figures): the signals are those that rank accuracy on both NAS-Bench-201 cells
    and NAS-Bench-Macro's MobileNetV2 blocks; the transform (a division by a constant spread,
    so that a score needs no population) reads no accuracy; the weights
    (:data:`ENSEMBLE_WEIGHTS`) chosen on either benchmark alone rank the other better than
    equal weights. AZ-NAS's expressivity sums the last block of each stage, which counts
    stages; the mean over blocks does not, and transferred better. Progressivity, synflow and
    the parameter count ranked NAS-Bench-201 but ranked NAS-Bench-Macro backwards or barely,
    and were dropped.
    """
    return combine(signals(probe), ENSEMBLE_WEIGHTS)


def combine(values: dict[str, float], weights: dict[str, float]) -> float:
    """The weighted sum of the signals, each divided by its spread (:data:`ENSEMBLE_SCALES`)."""
    return sum(weights[name] * values[name] / ENSEMBLE_SCALES[name] for name in ENSEMBLE_SCALES)


def signals(probe: Probe) -> dict[str, float]:
    """The ensemble's signals, each floored at :data:`ENSEMBLE_FLOOR`; computed once a probe."""
    if "ensemble" not in probe.cache:
        probe.cache["ensemble"] = {
            # not max(): a NaN would pass it
            k: v if v > ENSEMBLE_FLOOR else ENSEMBLE_FLOOR  # noqa: FURB136
            for k, v in one_forward(probe.model, probe.examples).items()
        }
    return probe.cache["ensemble"]


def one_forward(model: nn.Module, inputs: Tensor) -> dict[str, float]:
    """The three signals of :func:`ensemble`, from hooks on one forward of ``inputs``."""
    entropies, hooks = entropy_hooks(model)
    kernel, more = code_kernel(model, len(inputs))
    macs = [0]

    def count(module: nn.Module, args: tuple, y: Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            macs[0] += y[0].numel() * per_output
        else:
            macs[0] += y[0].numel() * module.in_features

    hooks += more + [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.inference_mode():  # channels-last: convolutions 1.3-1.7x faster on CPU
            model(
                inputs.contiguous(memory_format=torch.channels_last) if inputs.ndim == 4 else inputs
            )
    finally:
        for h in hooks:
            h.remove()
    return {
        "expressivity": expressivity_of(entropies),
        "naswot": naswot(kernel),
        "complexity": math.log(macs[0]) if macs[0] else -math.inf,
    }
