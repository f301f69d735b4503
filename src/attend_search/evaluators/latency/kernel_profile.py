"""What timing single kernels taught a device profile: a correction per op class.

The roofline (:mod:`.predict`) gives an op class one efficiency and one fixed cost whatever
the shape, and the whole-network fit cannot identify classes that only condenser networks
have (depthwise, grouped, upsampling, max pooling, gates). Timing each class alone over
the shapes the spaces produce (:mod:`.profiling`) can. The roofline stays the prior and
each probed class learns a correction in log space::

    t_k = roofline_k * exp(w_c . (1, z(log bytes), z(log MACs per byte)))
    latency = scale * sum_k (t_k + far_k) + offset

``z`` standardises a feature by the probes' mean and spread and clips it to the range the
probes covered: a shape outside them gets the correction of the nearest probed one, never an
extrapolated power law. ``w_c`` is a weighted ridge fit whose penalty is chosen by
closed-form leave-one-out error, so a class with few or scattered probes stays near a plain
rescaling of the roofline. A class without probes takes the ``fallback``, the same fit to
every probe together (its base roofline is another CPU's). A probe's weights stay in the
cache between its runs; ``far_k`` is what reading them from further out costs in a network
(:mod:`.predict`), priced by the timed ``weight_streams`` as they outgrow the last cache.
``offset`` starts as the measured cost of an inference of nothing (the session's own);
whole-network calibration then refits ``scale`` and ``offset`` only, keeping the per-class
corrections.

The probes' timings are kept in the file (``timings``, a row each), so that the corrections
can be fitted again, to another base or by a later version of the fit, without timing again
(:func:`.profiling.refit`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from ...search_space.fields import Fields
from .kernels import OP_CLASSES

SCHEMA = "attend-search/kernel-profile/v1"
FEATURES = ("log_bytes", "log_macs_per_byte")
# a probe's kernel, its own time and what was subtracted from its timing to get it (for a
# chained probe, a link's share of each)
TIMING_COLUMNS = ("op_class", "macs", "bytes", "weight_bytes", "us", "overhead_us")
_RIDGE = (0.01, 0.1, 1.0, 10.0, 100.0)  # penalties leave-one-out chooses among
_DIGITS = 5


class Row(list):
    """A list of numbers that YAML writes on one line, so that a class's entry reads as a
    table."""


yaml.SafeDumper.add_representer(
    Row, lambda dumper, row: dumper.represent_sequence("tag:yaml.org,2002:seq", row, True)
)


def features(macs: int, nbytes: int) -> tuple[float, float]:
    """A kernel's raw features: its working set and its arithmetic intensity (log scale)."""
    log_bytes = math.log(max(nbytes, 1))
    return log_bytes, math.log(macs + 1) - log_bytes


@dataclass(frozen=True)
class ClassCorrection:
    """One op class's correction: ``exp(coef . (1, clip((x - mean) / spread, low, high)))``."""

    probes: int
    mean: tuple[float, ...]
    spread: tuple[float, ...]
    low: tuple[float, ...]  # standardised range the probes covered
    high: tuple[float, ...]
    coef: tuple[float, ...]  # intercept, then one per feature
    loo_error_pct: float | None  # leave-one-out mean |predicted / measured - 1|; None for 1

    def factor(self, macs: int, nbytes: int) -> float:
        (c, w1, lo1, hi1, w2, lo2, hi2) = self.raw
        log_bytes = math.log(max(nbytes, 1))
        intensity = math.log(macs + 1) - log_bytes
        return math.exp(c + w1 * min(max(log_bytes, lo1), hi1) + w2 * min(max(intensity, lo2), hi2))

    @functools.cached_property
    def raw(self) -> tuple[float, ...]:
        """The coefficients in raw feature units (intercept, then weight, low and high per
        feature): a spec's prediction reads them for each of its hundreds of kernels."""
        c, out = self.coef[0], []
        for m, s, lo, hi, w in zip(self.mean, self.spread, self.low, self.high, self.coef[1:]):
            c -= w * m / s
            out += [w / s, m + lo * s, m + hi * s]
        return (c, *out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "probes": self.probes,
            "loo_error_pct": None if self.loo_error_pct is None else round(self.loo_error_pct, 2),
            "coef": Row(_round(c) for c in self.coef),
            "mean": Row(_round(c) for c in self.mean),
            "spread": Row(_round(c) for c in self.spread),
            "low": Row(_round(c) for c in self.low),
            "high": Row(_round(c) for c in self.high),
        }


@dataclass(frozen=True)
class Timing:
    """One probe's timing: its kernel and the kernel's own seconds (see :data:`TIMING_COLUMNS`)."""

    op_class: str
    macs: int
    bytes: int
    weight_bytes: int
    seconds: float
    overhead: float

    def row(self) -> "Row":
        us = (_round(self.seconds * 1e6), _round(self.overhead * 1e6))
        return Row([self.op_class, self.macs, self.bytes, self.weight_bytes, *us])


@dataclass(frozen=True)
class KernelProfile:
    """Per-class corrections, the network-level scale and offset, where they came from and
    the timings they were fitted to."""

    classes: Mapping[str, ClassCorrection]
    # fitted to every probe together: the correction of a class without probes of its own,
    # whose base roofline describes another CPU
    fallback: ClassCorrection | None = None
    scale: float = 1.0
    offset_ms: float = 0.0
    # (bytes, seconds) of networks that only read their weights, half the last cache to four
    # times it, smallest first: what a network's weights cost as they outgrow it
    weight_streams: tuple[tuple[int, float], ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    timings: tuple[Timing, ...] = ()

    def weight_seconds_per_byte(self, total_bytes: int) -> float:
        """Seconds a byte of a network holding ``total_bytes`` of weights costs to read, on
        the timed weight streams (log-linear between them, the nearest beyond them; there
        must be some). :mod:`.predict` uses them once a network's weights outgrow the last
        cache or reach the smallest stream; below, the memory levels price them."""
        sizes = [math.log(max(b, 1)) for b, _ in self.weight_streams]
        costs = [t / b for b, t in self.weight_streams]
        return float(np.interp(math.log(max(total_bytes, 1)), sizes, costs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "features": Row(FEATURES),
            "scale": _round(self.scale),
            "offset_ms": _round(self.offset_ms),
            "provenance": {k: _table(v) for k, v in self.provenance.items()},
            "classes": {c: k.to_dict() for c, k in self.classes.items()},
            **({"fallback": self.fallback.to_dict()} if self.fallback else {}),
            "weight_streams": [Row([int(b), _round(t * 1e6)]) for b, t in self.weight_streams],
            "timing_columns": Row(TIMING_COLUMNS),
            "timings": [t.row() for t in self.timings],
        }


def fit_class(
    raw: Sequence[tuple[float, float]],
    log_ratio: Sequence[float],
    weights: Sequence[float] | None = None,
) -> tuple[ClassCorrection, np.ndarray]:
    """The correction of one class from its probes' raw :func:`features` and
    ``log(measured / roofline)``, each weighted by how well its time is known (``weights``,
    default equal); also each probe's leave-one-out log error (what adaptive sampling reads
    to decide where to time next)."""
    x = np.asarray(raw, dtype=float).reshape(len(log_ratio), len(FEATURES))
    y = np.asarray(log_ratio, dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    mean = x.mean(axis=0)
    spread = x.std(axis=0)
    spread = np.where(spread > 1e-9, spread, 1.0)
    z = (x - mean) / spread
    design = np.column_stack([np.ones(len(y)), z])
    best = None
    for ridge in _RIDGE:
        penalty = np.diag([0.0] + [ridge / len(y)] * len(FEATURES))
        inverse = np.linalg.pinv(design.T @ (w[:, None] * design) + penalty)
        coef = inverse @ design.T @ (w * y)
        leverage = w * np.einsum("ij,jk,ik->i", design, inverse, design)
        loo = (y - design @ coef) / np.maximum(1 - leverage, 1e-6)
        if best is None or np.sum(w * loo**2) < np.sum(w * best[1] ** 2):
            best = coef, loo
    coef, loo = best
    correction = ClassCorrection(
        probes=len(y),
        mean=tuple(mean),
        spread=tuple(spread),
        low=tuple(z.min(axis=0)),
        high=tuple(z.max(axis=0)),
        coef=tuple(coef),
        loo_error_pct=float(np.sum(w * np.abs(np.exp(-loo) - 1)) * 100) if len(y) > 1 else None,
    )
    return correction, loo


def read_kernel_profile(f: Fields) -> KernelProfile:
    """The ``kernel_profile`` section of a profile YAML; errors name the field."""
    schema = f.str("schema")
    if schema != SCHEMA:
        raise f.fail("schema", f"unsupported schema {schema!r}, expected {SCHEMA!r}")
    names = f.list("features")
    if tuple(names) != FEATURES:
        raise f.fail("features", f"{names} is not {list(FEATURES)}: written by another version")
    classes_f = f.sub("classes")
    classes = {}
    for name in list(classes_f.data):
        if name not in OP_CLASSES:
            raise classes_f.fail(str(name), f"unknown op class; expected one of {OP_CLASSES}")
        classes[name] = _read_class(classes_f.sub(name))
    classes_f.done()
    columns = f.list("timing_columns", list(TIMING_COLUMNS))
    if tuple(columns) != TIMING_COLUMNS:
        raise f.fail("timing_columns", f"{columns} is not {list(TIMING_COLUMNS)}")
    profile = KernelProfile(
        classes=classes,
        fallback=_read_class(f.sub("fallback")) if f.has("fallback") else None,
        scale=f.float("scale", lo=1e-9),
        offset_ms=f.float("offset_ms", lo=0.0),
        weight_streams=_weight_streams(f),
        provenance=f.sub("provenance", {}).data,
        timings=tuple(_timing(f, i, row) for i, row in enumerate(f.list("timings", []))),
    )
    f.done()
    return profile


def _read_class(f: Fields) -> ClassCorrection:
    n = len(FEATURES)
    correction = ClassCorrection(
        probes=f.int("probes", lo=1),
        loo_error_pct=f.float("loo_error_pct", None, lo=0.0),
        coef=_vector(f, "coef", n + 1),
        mean=_vector(f, "mean", n),
        spread=_vector(f, "spread", n, positive=True),
        low=_vector(f, "low", n),
        high=_vector(f, "high", n),
    )
    for i, (lo, hi) in enumerate(zip(correction.low, correction.high)):
        if lo > hi:
            raise f.fail("low", f"item {i}: {lo} exceeds high {hi}")
    f.done()
    return correction


def _timing(f: Fields, index: int, row: Any) -> Timing:
    where = f"timings[{index}]"
    if not isinstance(row, list) or len(row) != len(TIMING_COLUMNS):
        raise f.fail(where, f"expected a row of {len(TIMING_COLUMNS)}: {list(TIMING_COLUMNS)}")
    op_class, *numbers = row
    if op_class not in OP_CLASSES:
        raise f.fail(where, f"unknown op class {op_class!r}")
    for name, v in zip(TIMING_COLUMNS[1:], numbers):
        whole = name in ("macs", "bytes", "weight_bytes")
        if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)):
            kind = "a whole number" if whole else "a number"
            raise f.fail(where, f"{name}: expected {kind}, got {v!r}")
        if not (0 <= v < math.inf) or (name == "us" and v == 0):
            raise f.fail(where, f"{name}: {v!r} is out of range (us > 0, the rest >= 0)")
    macs, nbytes, weights, us, overhead_us = numbers
    if weights > nbytes:
        raise f.fail(where, f"weight_bytes: {weights} exceeds bytes {nbytes}")
    return Timing(op_class, int(macs), int(nbytes), int(weights), us * 1e-6, overhead_us * 1e-6)


def _weight_streams(f: Fields) -> tuple[tuple[int, float], ...]:
    rows = f.list("weight_streams", [])
    for i, row in enumerate(rows):
        good = isinstance(row, list) and len(row) == 2
        good = good and all(type(v) in (int, float) and 0 < v < math.inf for v in row)
        if not good or type(row[0]) is not int:
            raise f.fail(f"weight_streams[{i}]", "expected [bytes (a whole number), us], both > 0")
        if i and row[0] <= rows[i - 1][0]:
            raise f.fail(f"weight_streams[{i}]", "bytes must grow from row to row")
    return tuple((b, us * 1e-6) for b, us in rows)


def _vector(f: Fields, key: str, length: int, positive: bool = False) -> tuple[float, ...]:
    values = f.list(key)
    if len(values) != length:
        raise f.fail(key, f"expected {length} numbers, got {len(values)}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise f.fail(key, f"item {i}: expected a finite number, got {v!r}")
        if positive and v <= 0:
            raise f.fail(key, f"item {i}: {v} is not positive")
    return tuple(float(v) for v in values)


def _table(value: Any) -> Any:
    """A list of rows (the timed streams) written a row a line, however it was read."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return [Row(v) for v in value]
    return value


def _round(value: float) -> float:
    return float(f"{value:.{_DIGITS}g}")
