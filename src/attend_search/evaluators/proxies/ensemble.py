"""``ensemble``: three complementary signals from one forward, combined without labels."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..estimate_fit import ENSEMBLE_WEIGHTS, combine
from .activation_codes import code_kernel, naswot
from .expressivity import entropy_hooks, expressivity_of
from .probe import Probe

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
    ``estimate_fit.ENSEMBLE_SCALES``, so that a score needs no population) reads no accuracy;
    weights chosen on either benchmark alone lose at most 0.004 on the other against the
    shipped ones (``estimate_fit.ENSEMBLE_WEIGHTS``). AZ-NAS's expressivity sums the last
    block of each stage, which counts stages; the mean over blocks does not, and transferred
    better. Progressivity, synflow and the parameter count ranked NAS-Bench-201 but ranked
    NAS-Bench-Macro backwards or barely, and were dropped.
    """
    return combine(signals(probe), ENSEMBLE_WEIGHTS)


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
