"""Predicted latency: a roofline over a network's fused kernels, on a device profile.

FLOPs are not latency on small CPUs: depthwise convolutions, pooling, upsampling and
element-wise gating are memory bound, and every kernel pays a fixed dispatch cost. So each
kernel (see :mod:`.kernels`) costs the larger of its compute time and its memory time, plus
its class's fixed cost::

    t_k = max(macs_k / (peak * efficiency[class_k]), bytes_k / bandwidth[level(bytes_k)])
          + fixed_cost[class_k]
    latency = sum_k t_k

``peak`` is clock x SIMD lanes x vector FMAs per cycle x threads; ``level(bytes)`` is the
first memory level the kernel's working set (inputs + output + weights) fits in, so a
layer whose activations stay in L2 streams at cache bandwidth and a larger one at DRAM
bandwidth. Batch 1, float32.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..search_space import Spec
from .devices import DeviceProfile, load_device
from .kernels import Kernel, extract_kernels
from .model_input import Shape

Device = str | Path | DeviceProfile


@dataclass(frozen=True)
class KernelTime:
    """One row of "where the time goes"."""

    name: str
    op_class: str
    ms: float
    macs: int
    bytes: int
    bound: str          # "compute", or the memory level whose bandwidth limits the kernel


def kernel_time(kernel: Kernel, profile: DeviceProfile) -> KernelTime:
    level = profile.level_of(kernel.bytes)
    compute = kernel.macs * profile.seconds_per_mac(kernel.op_class)
    memory = kernel.bytes * profile.seconds_per_byte(level)
    seconds = max(compute, memory) + profile.fixed_seconds(kernel.op_class)
    return KernelTime(kernel.name, kernel.op_class, seconds * 1e3, kernel.macs, kernel.bytes,
                      "compute" if compute >= memory else profile.memory[level].name)


def predict_latency(model_or_spec: nn.Module | Spec, device: Device,
                    input_shape: Shape | None = None, breakdown: bool = False
                    ) -> float | tuple[float, list[KernelTime]]:
    """Predicted milliseconds for one batch-1 inference on ``device``.

    ``device`` is a built-in name (``cortex-a72``), a profile YAML path or a
    :class:`DeviceProfile`. With ``breakdown`` also the per-kernel times, in execution order;
    they sum to the total.
    """
    profile = load_device(device)
    times = [kernel_time(k, profile) for k in extract_kernels(model_or_spec, input_shape)]
    total = sum(t.ms for t in times)
    return (total, times) if breakdown else total


def total_ms(kernels: list[Kernel], profile: DeviceProfile) -> float:
    """Predicted milliseconds of already extracted kernels (calibration re-costs them often)."""
    return sum(kernel_time(k, profile).ms for k in kernels)


def time_by_class(times: list[KernelTime]) -> dict[str, float]:
    """Milliseconds per op class, largest first: the short answer to where the time goes."""
    totals: dict[str, float] = defaultdict(float)
    for t in times:
        totals[t.op_class] += t.ms
    return dict(sorted(totals.items(), key=lambda item: -item[1]))
