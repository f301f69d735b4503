"""This machine's memory levels: cache sizes from the OS, bandwidths from timing one streaming
kernel across them.

A built-in profile's memory levels are a datasheet's: the Cortex-A76's 512 KiB L2 and 2 MiB
L3. A kernel profile made on another machine (:mod:`.profiling`) would price its kernels
by those, so a working set between the two machines' cache sizes lands in the wrong level.
So the levels are measured where the kernels are timed:

- sizes: the data and unified caches from L2 on, as Linux lists them for CPU 0
  (``/sys/devices/system/cpu/cpu0/cache``); the profile's own where the OS lists none;
- bandwidths: an element-wise add of two tensors (a kernel that only streams) timed at
  working sets from a quarter of the first cache to four times the last, half an octave
  apart, in two passes, each working set's time the lesser: a spell of load can slow a
  stretch of one pass (on the x86 VM, 0.5-4 MiB once streamed at 28-41 GB/s where other
  sweeps gave 63-80, and the fit put an L3 at 41 GB/s), and a working set's two timings
  are a whole pass apart (a reversed second pass would time the largest back to back). A
  cache holds less of one stream than its size (other data, associativity, a core sharing
  it), so each cache's effective size is chosen among fractions of its size
  (:data:`_SHARES`) with its bandwidth (the median over the working sets it holds), the
  pair that explains the timings best (least absolute error in log time: a timing that
  something else on the machine slowed moves nothing). Bandwidths are held non-increasing
  from level to level: a prefetcher can make a cache stream as fast as the one above it,
  never faster.

A network's weights stream differently: a network whose weights outgrow the last cache
reads each from DRAM once an inference, by the runtime's matrix kernels rather than an add.
Their cost is timed on networks that do only that (:func:`measure_weight_streams`).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .devices import DeviceError, MemoryLevel

SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")
_SHARES = (0.375, 0.5, 0.625, 0.75, 0.875, 1.0)  # effective size / listed size, tried
_STEP = math.sqrt(2)  # sweep points half an octave apart
_STREAMS = 3  # an add reads two tensors and writes one
_PASSES = 2  # sweeps over the working sets, smallest first each time
_UNITS = {"K": 1, "M": 1024, "G": 1024 * 1024}
_WEIGHT_CHANNELS = 1024  # a weight-streaming convolution's channels at most: 4 MiB of weights
_WEIGHT_REACH = (0.5, 1, 2, 4)  # weight streams hold these multiples of the last cache


def cache_sizes(root: Path = SYSFS) -> list[tuple[str, float]]:
    """``(name, KiB)`` of the data and unified caches from L2 on, innermost first; empty
    where the OS lists none (not Linux, or a kernel without cache topology)."""
    found = {}
    for index in sorted(root.glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        match = re.fullmatch(r"(\d+)([KMG]?)", size)
        if level >= 2 and kind in ("Data", "Unified") and match:
            found[level] = int(match[1]) * _UNITS.get(match[2], 1 / 1024)
    return [(f"L{level}", kib) for level, kib in sorted(found.items())]


def sweep_sizes(caches: Sequence[float]) -> list[int]:
    """Working sets (bytes) to time: from a quarter of the first cache to four times the
    last, half an octave apart."""
    low, high = caches[0] * 1024 / 4, caches[-1] * 1024 * 4
    count = round(math.log(high / low, _STEP)) + 1
    return [int(low * _STEP**i) for i in range(count)]


class Stream(nn.Module):
    """``x + c`` over a working set of about ``nbytes``: two tensors read, one written. Not
    an image (a 2-D tensor), so that no runtime adds a layout change of its input."""

    def __init__(self, nbytes: int):
        super().__init__()
        self.shape = (1, max(1, round(nbytes / (_STREAMS * 4))))
        self.register_buffer("c", torch.rand(self.shape))

    @property
    def nbytes(self) -> int:
        return _STREAMS * 4 * math.prod(self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c


def measure_levels(
    caches: Sequence[tuple[str, float]],
    timed: Callable[[nn.Module, tuple[int, ...]], float],
    log: Callable[[str], None] = lambda line: None,
) -> tuple[tuple[MemoryLevel, ...], list[tuple[int, float]]]:
    """The levels fitted to streaming kernels timed by ``timed`` (seconds of the kernel's own,
    the per-inference constant taken off), and the ``(bytes, seconds)`` points, each the
    least of :data:`_PASSES` passes above zero (noise can leave a tiny kernel nothing)."""
    streams = [Stream(nbytes) for nbytes in sweep_sizes([kib for _, kib in caches])]
    timings: list[list[float]] = [[] for _ in streams]
    for sweep in range(_PASSES):
        for stream, times in zip(streams, timings):
            seconds = timed(stream, stream.shape)
            times.append(seconds)
            rate = f"{stream.nbytes / seconds / 1e9:.1f} GB/s" if seconds > 0 else "too fast"
            log(f"stream {stream.nbytes / 1024:.0f} KiB, pass {sweep + 1}: {rate}")
    points = [
        (s.nbytes, min((t for t in times if t > 0), default=0.0))
        for s, times in zip(streams, timings)
    ]
    return fit_levels(points, caches), points


class WeightStream(nn.Module):
    """Pointwise convolutions on a one-pixel input, one after another (four at least), holding
    about ``nbytes`` of weights: a network whose time is reading its weights."""

    def __init__(self, nbytes: int):
        super().__init__()
        channels = max(8, min(_WEIGHT_CHANNELS, int(math.sqrt(nbytes / 16)) // 8 * 8))
        count = max(1, round(nbytes / (4 * channels**2)))
        self.convs = nn.Sequential(
            *(nn.Conv2d(channels, channels, 1, bias=False) for _ in range(count))
        )
        self.shape = (1, channels, 1, 1)

    @property
    def nbytes(self) -> int:
        return 4 * sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


def measure_weight_streams(
    last_cache_kib: float,
    timed: Callable[[nn.Module, tuple[int, ...]], float],
    log: Callable[[str], None] = lambda line: None,
) -> list[tuple[int, float]]:
    """``(bytes, seconds)`` of :class:`WeightStream` networks holding half the last cache to
    four times it: what weights cost a network as they outgrow the caches."""
    points = []
    for reach in _WEIGHT_REACH:
        stream = WeightStream(int(last_cache_kib * 1024 * reach))
        seconds = timed(stream, stream.shape)
        if seconds <= 0:
            raise DeviceError(f"{stream.nbytes} bytes of weights read in no time: timing failed")
        log(f"weights {stream.nbytes / 2**20:.0f} MiB: {stream.nbytes / seconds / 1e9:.1f} GB/s")
        points.append((stream.nbytes, seconds))
    return points


def fit_levels(
    points: Sequence[tuple[int, float]], caches: Sequence[tuple[str, float]]
) -> tuple[MemoryLevel, ...]:
    """Memory levels (the caches at their best-fitting effective sizes, then DRAM) that
    explain the ``(bytes, seconds)`` timings of streaming kernels (the module docstring)."""
    points = [(b, s) for b, s in points if s > 0]  # noise can leave a tiny kernel nothing
    if len(points) < 2:
        raise DeviceError(f"{len(points)} streaming timings above zero: too few to fit")
    nbytes = np.array([b for b, _ in points], dtype=float)
    rate = np.log(nbytes / np.array([s for _, s in points]))  # log bytes per second
    best = None
    for shares in itertools.product(_SHARES, repeat=len(caches)):
        sizes = [kib * 1024 * share for (_, kib), share in zip(caches, shares)]
        if any(inner >= outer for inner, outer in zip(sizes, sizes[1:])):
            continue  # each level holds more than the one inside it
        level = np.searchsorted(np.array(sizes), nbytes, side="left")
        fitted = _non_increasing([rate[level == i] for i in range(len(caches) + 1)])
        error = float(np.sum(np.abs(rate - fitted[level])))
        if best is None or error < best[0] - 1e-12:
            best = error, sizes, fitted
    if best is None:
        raise DeviceError(f"cache sizes {[kib for _, kib in caches]} KiB do not grow outward")
    _, sizes, fitted = best
    names = [name for name, _ in caches] + ["DRAM"]
    return tuple(
        MemoryLevel(
            name,
            float(f"{math.exp(r) / 1e9:.5g}"),
            round(size / 1024, 1) if size is not None else None,
        )
        for name, r, size in zip(names, fitted, [*sizes, None])
    )


def _non_increasing(groups: list[np.ndarray]) -> np.ndarray:
    """Each level's median rate, held non-increasing by pooling a level with the one inside
    it where it would stream faster (the median of their points together); a level without
    points takes the one inside it (the first, the first that has points)."""
    blocks: list[tuple[np.ndarray, list[int]]] = []
    for i, group in enumerate(groups):
        if len(group) == 0:
            continue
        blocks.append((group, [i]))
        while len(blocks) > 1 and np.median(blocks[-1][0]) > np.median(blocks[-2][0]):
            (inner, a), (outer, b) = blocks[-2], blocks.pop()
            blocks[-1] = (np.concatenate([inner, outer]), a + b)
    values = np.full(len(groups), math.nan)
    for points, pooled in blocks:
        values[pooled] = np.median(points)
    values[0] = values[0] if not math.isnan(values[0]) else values[~np.isnan(values)][0]
    for i in range(1, len(values)):
        if math.isnan(values[i]):
            values[i] = values[i - 1]
    return values
