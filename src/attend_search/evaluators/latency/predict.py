"""Predicted latency: a roofline over a network's fused kernels, on a device profile.

FLOPs are not latency on small CPUs: depthwise convolutions, pooling, upsampling and
element-wise gating are memory bound, and every kernel pays a fixed dispatch cost. So each
kernel (see :mod:`.kernels`) costs the larger of its compute time and its memory time, plus
its class's fixed cost::

    memory_k = activations_k / bandwidth[level(bytes_k)]
               + weights_k / bandwidth[max(level(bytes_k), level(all weights))]
    t_k = max(macs_k / (peak * efficiency[class_k]), memory_k) + fixed_cost[class_k]
    latency = sum_k t_k

``peak`` is clock x SIMD lanes x vector FMAs per cycle x threads; ``level(bytes)`` is the
first memory level the kernel's working set (inputs + output + weights) fits in, so a
layer whose activations stay in L2 streams at cache bandwidth and a larger one at DRAM
bandwidth. Its activations were just written by the kernels before it; its weights were
last read an inference ago, and every other weight has passed through the caches since,
so a network whose weights outgrow the last cache reads every weight from DRAM, however
small the kernel. Batch 1, float32.

A profile with a kernel profile (:mod:`.kernel_profile`, learned by timing single kernels)
multiplies each kernel's roofline time by its class's learned correction for the kernel's
shape, then scales the sum and adds a per-inference constant. A probe ran with its weights
where its own working set puts them (its runs reread them), so the correction applies to
that time; reading them from further out is added after it, uncorrected. Once a network's
weights outgrow the last cache, or reach the smallest weight stream (half the listed last
cache), they are priced by networks timed reading nothing but their weights (the runtime's
matrix kernels read slower than an add streams, and a cache keeps part of a working set
somewhat larger than itself)::

    t_k = correction_k * (max(compute_k, memory_k at level(bytes_k)) + fixed_cost)
          + weights_k * (weight cost per byte(all weights) - per_byte[level(bytes_k)])
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...search_space import Spec
from .devices import DeviceProfile, load_device
from .kernels import Kernel, extract_kernels

if TYPE_CHECKING:
    from torch import nn

    from ..model_input import Shape

Device = str | Path | DeviceProfile


@dataclass(frozen=True)
class KernelTime:
    """One row of "where the time goes"."""

    name: str
    op_class: str
    ops: tuple[str, ...]  # the ATen ops fused into the kernel; the op itself where "unknown"
    ms: float
    macs: int
    bytes: int
    bound: str  # "compute", or the memory level whose bandwidth limits the kernel


def predict_latency(
    model_or_spec: nn.Module | Spec,
    device: Device,
    input_shape: Shape | None = None,
    breakdown: bool = False,
) -> float | tuple[float, list[KernelTime]]:
    """Predicted milliseconds for one batch-1 inference on ``device``.

    ``device`` is a built-in name (``cortex-a72``), a profile YAML path or a
    :class:`DeviceProfile`. With ``breakdown`` also the per-kernel times, in execution order;
    they sum to the total less a kernel profile's per-inference constant. A spec's kernels
    come from the spec alone (see :func:`.kernels.extract_kernels`), in well under a
    millisecond.
    """
    profile = load_device(device)
    kernels = extract_kernels(model_or_spec, input_shape, profile.runtime, profile.nchwc_block)
    if not breakdown:
        return total_ms(kernels, profile)
    roofline = _Roofline(profile, kernels)
    times = [roofline.time(k) for k in kernels]
    return sum(t.ms for t in times) + roofline.offset_ms, times


def total_ms(kernels: list[Kernel], profile: DeviceProfile) -> float:
    """Predicted milliseconds of already extracted kernels (calibration re-costs them often)."""
    roofline = _Roofline(profile, kernels)
    return sum(roofline.ms(k) for k in kernels) + roofline.offset_ms


class _Roofline:
    """A profile's coefficients looked up once for a network's kernels: per kernel, the
    lookups cost as much as the rest of a spec's prediction."""

    def __init__(self, profile: DeviceProfile, kernels: list[Kernel]):
        self.profile = profile
        self.weight_bytes = sum(k.weight_bytes for k in kernels)
        self.weight_level = weight_level(kernels, profile)
        self.per_mac = {c: profile.seconds_per_mac(c) for c in profile.efficiency}
        self.per_byte = [profile.seconds_per_byte(i) for i in range(len(profile.memory))]
        self.fixed = {c: profile.fixed_seconds(c) for c in profile.fixed_cost_us}
        learned = profile.kernel_profile
        self.learned = learned is not None
        self.corrections = learned.classes if learned else {}
        self.fallback = learned.fallback if learned else None
        self.scale = learned.scale if learned else 1.0
        self.offset_ms = learned.offset_ms if learned else 0.0
        self.weight_per_byte = self.per_byte[self.weight_level]
        if learned and learned.weight_streams:
            outgrown = self.weight_level == len(profile.memory) - 1
            if outgrown or self.weight_bytes >= learned.weight_streams[0][0]:
                self.weight_per_byte = learned.weight_seconds_per_byte(self.weight_bytes)

    def ms(self, kernel: Kernel) -> float:
        return self._seconds(kernel)[0] * 1e3

    def time(self, kernel: Kernel) -> KernelTime:
        seconds, compute, memory, level = self._seconds(kernel)
        if memory > kernel.bytes * self.per_byte[level]:  # its weights come from further out
            level = max(level, self.weight_level)
        return KernelTime(
            kernel.name,
            kernel.op_class,
            kernel.ops,
            seconds * 1e3,
            kernel.macs,
            kernel.bytes,
            "compute" if compute >= memory else self.profile.memory[level].name,
        )

    def _seconds(self, kernel: Kernel) -> tuple[float, float, float, int]:
        """``(total, compute, memory seconds, memory level)``."""
        level = self.profile.level_of(kernel.bytes)
        compute = kernel.macs * self.per_mac[kernel.op_class]
        memory = kernel.bytes * self.per_byte[level]
        far = kernel.weight_bytes * max(self.weight_per_byte - self.per_byte[level], 0.0)
        fixed = self.fixed[kernel.op_class]
        if not self.learned:
            return max(compute, memory + far) + fixed, compute, memory + far, level
        seconds = max(compute, memory) + fixed
        correction = self.corrections.get(kernel.op_class, self.fallback)
        if correction is not None:
            seconds *= correction.factor(kernel.macs, kernel.bytes)
        return (seconds + far) * self.scale, compute, memory + far, level


def weight_level(kernels: list[Kernel], profile: DeviceProfile) -> int:
    """The memory level a network's weights are read from: each is read once an inference,
    after every other weight has passed through the caches, so from the level that holds
    them all (a kernel whose working set reaches further out reads them from there)."""
    return profile.level_of(sum(k.weight_bytes for k in kernels))


def time_by_class(times: list[KernelTime]) -> dict[str, float]:
    """Milliseconds per op class, largest first: the short answer to where the time goes."""
    totals: dict[str, float] = defaultdict(float)
    for t in times:
        totals[t.op_class] += t.ms
    return dict(sorted(totals.items(), key=lambda item: -item[1]))
