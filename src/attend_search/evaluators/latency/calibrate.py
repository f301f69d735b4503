"""Fitting a device profile's coefficients to measured latencies.

For a fixed split of kernels into compute bound and memory bound, the roofline of
:mod:`.predict` is linear in its coefficients::

    t = sum_c a_c * MACs of compute-bound class-c kernels
      + sum_l b_l * bytes of memory-bound kernels served by level l
      + k * sum_c o_c * number of class-c kernels

(``a_c`` seconds per MAC, ``b_l`` seconds per byte, ``o_c`` the base's fixed seconds and
``k`` their common scale). The model is therefore piecewise linear, and a trust-region
least-squares solver (scipy's ``trf``, with non-negativity bounds) fits it exactly: its
Jacobian is that linear design for the split the current coefficients make. It starts from
the base profile, whose datasheet figures (clock, lanes, cache sizes) stay, and recovers a
profile's coefficients from its own predictions.

- Residuals are relative (divided by the measured time): a 10% miss counts the same on a
  5 ms and a 100 ms network, which is what ranking and MAPE need.
- Fixed costs keep the base's ratios between op classes; one scale is fitted. A few dozen
  networks cannot tell a class's dispatch cost from its efficiency (every network has one
  stem convolution and one classifier), and fitting them separately overfits: on held-out
  networks Kendall tau fell from 0.90 to 0.87.
- ``fit`` chooses what moves: ``full`` (the above), ``prior`` (the same, pulled toward the
  base), ``scales`` (compute, memory and dispatch scales keeping the base's ratios). The
  learning curves (``benchmarks/bench_latency_nb201.py``, ``benchmarks/bench_latency.py``)
  chose ``full``: from 10 networks it beats FLOPs on the Pi 5 and here, ``scales`` cannot
  correct a datasheet's wrong ratios between classes, and the pull of ``prior`` only helps
  where the base is already right. ``auto`` chooses among the three by 5-fold
  cross-validation on the sample itself: which one is best depends on the runtime, the
  device and the sample's size, and the sample can tell.
- Bandwidths are fitted as non-negative increments ``b_l = d_0 + ... + d_l``, so a level
  further out is never faster and predictions stay monotone in width.
- A base with a kernel profile (:mod:`.kernel_profile`, from timing single kernels) keeps
  its roofline and per-class corrections: networks then fit only what single kernels cannot
  see, one scale of the corrected kernel times and the per-inference constant.
- A coefficient the samples do not pin down (no grouped convolution among them, or a class
  that is never compute bound) stays near the base's value and is listed in the provenance
  as ``unconstrained``; a weak pull toward the base decides between coefficients the
  samples cannot tell apart.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from torch import nn

from ...search_space import Spec, get_preset, list_presets
from ...search_space.space import load_space
from ..model_input import Shape
from .devices import DeviceError, DeviceProfile, load_device
from .kernels import OP_CLASSES, Kernel, extract_kernels
from .predict import Device, total_ms, weight_level

Sample = tuple[nn.Module | Spec, Shape | None, float]  # (network, input shape or None, ms)

_PULL = 1e-8  # weight of the pull toward the base, against squared relative errors
_PRIOR_PULL = 1e-3  # "prior": moving a coefficient to 2x the base's costs a 3% miss on one network
FIT_MODES = ("scales", "prior", "full", "auto")
_FOLDS = 5  # "auto" chooses by 5-fold cross-validation on the sample
_FLOOR = 1e-3  # seconds-per-MAC and the first seconds-per-byte stay >= this x base


@dataclass(frozen=True)
class FitQuality:
    samples: int
    mape_pct: float  # mean absolute percentage error
    max_error_pct: float
    kendall_tau: float  # rank agreement of predicted and measured latency


def calibrate_latency(
    samples: Sequence[Sample],
    base: Device = "cortex-a72",
    *,
    name: str | None = None,
    machine: str | None = None,
    threads: int | None = None,
    fit: str = "full",
    runtime: str | None = None,
    hold_fixed_costs: bool = False,
    nchwc_block: int | None = None,
) -> DeviceProfile:
    """A profile fitted to ``samples`` of ``(model_or_spec, input_shape, measured ms)``.

    ``machine`` says where the measurements were made (recorded in the provenance with the
    base, the number of samples, the fit's errors and the date); ``threads``, how many
    threads they used, and ``runtime``, which runtime (default: the base's). ``fit``, which
    coefficients move: ``full`` every one the samples constrain (efficiency per op class,
    bandwidth per memory level, one fixed-cost scale), ``prior`` the same pulled toward the
    base, ``scales`` three scales (compute, memory, dispatch) that keep the base's ratios,
    ``auto`` whichever of these three cross-validates best on the samples (15 fits more;
    the provenance says which, as ``auto: scales``). ``hold_fixed_costs`` keeps the base's
    dispatch costs where the samples cannot tell them from memory time (NAS-Bench-201
    networks fit as well with none as with 1.9 us a kernel). ``nchwc_block``: onnxruntime's
    blocked layout on the measured CPU (:mod:`.nchwc`; default: the base's).
    """
    base_profile = load_device(base)
    if threads is not None:
        base_profile = replace(base_profile, threads=threads)
    if runtime is not None and runtime != base_profile.runtime and base_profile.kernel_profile:
        raise DeviceError(
            f"the base's kernel profile was timed on {base_profile.runtime}, "
            f"not on {runtime}: profile the kernels on {runtime} first"
        )
    if runtime is not None:
        base_profile = replace(base_profile, runtime=runtime)
    if nchwc_block not in (None, 0, 8, 16):
        raise DeviceError(f"nchwc_block: {nchwc_block}, expected 0, 8 or 16")
    if nchwc_block is not None and nchwc_block != base_profile.nchwc_block:
        if base_profile.kernel_profile:
            raise DeviceError(
                f"the base's kernels were timed with onnxruntime blocking "
                f"{base_profile.nchwc_block} channels, not {nchwc_block}"
            )
        base_profile = replace(base_profile, nchwc_block=nchwc_block)
    if len(samples) < 2:
        raise DeviceError(f"calibration needs at least 2 samples, got {len(samples)}")
    for i, (_, _, ms) in enumerate(samples):
        if not np.isfinite(ms) or ms <= 0:
            raise DeviceError(f"sample {i}: measured latency must be a positive number, got {ms}")
    kernels = [
        extract_kernels(model, shape, base_profile.runtime, base_profile.nchwc_block)
        for model, shape, _ in samples
    ]
    measured = np.array([ms for _, _, ms in samples], dtype=float)
    profile, unconstrained, chosen = _solve(kernels, measured, base_profile, fit, hold_fixed_costs)
    profile = replace(profile, name=name or f"{base_profile.name}-calibrated")
    quality = fit_quality(profile, kernels, measured)
    provenance = {
        "base": base_profile.name,
        "samples": quality.samples,
        "mape_pct": round(quality.mape_pct, 2),
        "max_error_pct": round(quality.max_error_pct, 2),
        "kendall_tau": round(quality.kendall_tau, 4),
        "date": datetime.date.today().isoformat(),
        "machine": machine or "unspecified",
        "fit": (fit if fit == chosen else f"{fit}: {chosen}")
        + (", fixed costs held" if hold_fixed_costs else ""),
        "unconstrained": unconstrained,
    }
    description = f"{base_profile.name} fitted to {len(samples)} measured networks" + (
        f" ({machine})" if machine else ""
    )
    return replace(profile, description=description, provenance=provenance)


def fit_kernels(
    kernels: Sequence[list[Kernel]],
    measured_ms: Sequence[float],
    base: DeviceProfile,
    fit: str = "full",
    hold_fixed_costs: bool = False,
) -> DeviceProfile:
    """``base`` fitted to networks given by their kernels (``fit`` and ``hold_fixed_costs``
    as in :func:`calibrate_latency`); no provenance: what benchmarks re-fit many times."""
    return _solve(kernels, np.asarray(measured_ms, dtype=float), base, fit, hold_fixed_costs)[0]


def _solve(
    kernels: Sequence[list[Kernel]],
    measured_ms: np.ndarray,
    base: DeviceProfile,
    fit: str,
    hold_fixed_costs: bool = False,
) -> tuple[DeviceProfile, list[str], str]:
    """The fitted profile, the coefficients no sample constrains, and the fit used."""
    if fit not in FIT_MODES:
        raise DeviceError(f"unknown fit {fit!r}, expected one of {', '.join(FIT_MODES)}")
    if base.kernel_profile is not None:
        return (
            _scale_and_offset(kernels, measured_ms, base),
            [],
            "kernel profile's scale and offset",
        )
    if fit == "auto":
        fit = _cross_validated(kernels, measured_ms, base, hold_fixed_costs)
    problem = _Fit(
        list(kernels),
        measured_ms * 1e-3,
        base,
        mode="full" if fit == "prior" else fit,
        pull=_PRIOR_PULL if fit == "prior" else _PULL,
        hold_fixed_costs=hold_fixed_costs,
    )
    theta, unconstrained = problem.solve()
    return problem.profile(theta, base.name), unconstrained, fit


def _scale_and_offset(
    kernels: Sequence[list[Kernel]], measured_ms: np.ndarray, base: DeviceProfile
) -> DeviceProfile:
    """``base`` with its kernel profile's scale and per-inference constant fitted to the
    networks (relative least squares, both non-negative); the per-class corrections stay."""
    from scipy.optimize import nnls  # here, not on top: slow to import

    learned = base.kernel_profile
    plain = replace(base, kernel_profile=replace(learned, scale=1.0, offset_ms=0.0))
    sums = np.array([total_ms(ks, plain) for ks in kernels])
    design = np.column_stack([sums, np.ones(len(sums))]) / measured_ms[:, None]
    (scale, offset_ms), _ = nnls(design, np.ones(len(sums)))
    provenance = {**learned.provenance, "networks_fitted": len(sums)}
    fitted = replace(learned, scale=max(scale, 1e-9), offset_ms=offset_ms, provenance=provenance)
    return replace(base, kernel_profile=fitted)


def _cross_validated(
    kernels: Sequence[list[Kernel]],
    measured_ms: np.ndarray,
    base: DeviceProfile,
    hold_fixed_costs: bool = False,
) -> str:
    """The fit whose profiles, fitted with each fifth of the sample left out, predict the
    left-out networks with the least mean relative error: which coefficients a sample may
    move depends on how many networks it has and how far the base is from the device."""
    fold = np.arange(len(measured_ms)) % min(_FOLDS, len(measured_ms))
    errors = {}
    for fit in ("scales", "prior", "full"):
        errors[fit] = 0.0
        for held in range(fold.max() + 1):
            train = np.flatnonzero(fold != held)
            profile = _solve(
                [kernels[i] for i in train], measured_ms[train], base, fit, hold_fixed_costs
            )[0]
            errors[fit] += sum(
                abs(total_ms(kernels[i], profile) / measured_ms[i] - 1)
                for i in np.flatnonzero(fold == held)
            )
    return min(errors, key=errors.get)


def fit_quality(
    profile: DeviceProfile, kernels: list[list[Kernel]], measured_ms: Sequence[float]
) -> FitQuality:
    """How well ``profile`` predicts measured milliseconds of networks given by their kernels."""
    from scipy.stats import kendalltau  # here, not on top: scipy takes a second to import

    predicted = np.array([total_ms(ks, profile) for ks in kernels])
    measured = np.asarray(measured_ms, dtype=float)
    errors = np.abs(predicted - measured) / measured * 100
    return FitQuality(
        len(measured),
        float(errors.mean()),
        float(errors.max()),
        float(kendalltau(predicted, measured).statistic),
    )


def calibration_suite(count: int) -> list[Spec]:
    """A fixed set of networks to measure: the presets, then seeded attendnext samples."""
    presets = [get_preset(name) for name in list_presets()]
    space = load_space("attendnext")
    return (presets + [space.sample(seed) for seed in range(count)])[:count]


class _Fit:
    """The least-squares problem behind one calibration.

    Coefficients ``theta``: ``a_c`` per op class, ``d_l`` per memory level, ``o_c`` per op
    class (seconds). Fitted parameters ``z``, one per ``a_c`` and ``d_l`` and one fixed-cost
    scale, are relative to the base: ``theta = scale * (tie @ z)``, so ``z = 1`` is the base.
    """

    def __init__(
        self,
        kernels: list[list[Kernel]],
        seconds: np.ndarray,
        base: DeviceProfile,
        mode: str = "full",
        pull: float = _PULL,
        hold_fixed_costs: bool = False,
    ):
        self.base = base
        self.seconds = seconds
        flat = [(i, k) for i, ks in enumerate(kernels) for k in ks]
        self.sample = np.array([i for i, _ in flat])
        self.cls = np.array([OP_CLASSES.index(k.op_class) for _, k in flat])
        self.level = np.array([base.level_of(k.bytes) for _, k in flat])
        weights_from = np.array([weight_level(ks, base) for ks in kernels], dtype=int)
        self.weight_level = np.maximum(self.level, weights_from[self.sample])
        self.macs = np.array([k.macs for _, k in flat], dtype=float)
        self.weights = np.array([k.weight_bytes for _, k in flat], dtype=float)
        self.activations = np.array([k.bytes for _, k in flat], dtype=float) - self.weights
        self.n_cls, self.n_lvl = len(OP_CLASSES), len(base.memory)
        per_byte = [base.seconds_per_byte(level) for level in range(self.n_lvl)]
        steps = np.diff(per_byte, prepend=0.0)
        fixed = np.array([base.fixed_seconds(c) for c in OP_CLASSES])
        # where the base has a zero (two equal bandwidths, no fixed costs) z starts at 0
        self.scale = np.concatenate(
            [
                [base.seconds_per_mac(c) for c in OP_CLASSES],
                np.where(steps > 0, steps, per_byte[0]),
                fixed if fixed.any() else np.full(self.n_cls, 1e-6),
            ]
        )
        n_free = self.n_cls + self.n_lvl
        self.tie = np.zeros((len(self.scale), n_free + 1))
        self.tie[:n_free, :n_free] = np.eye(n_free)
        self.tie[n_free:, n_free] = 1.0
        self.z0 = np.concatenate([np.ones(self.n_cls), steps > 0, [fixed.any()]]).astype(float)
        self.floor = np.zeros(n_free + 1)
        self.floor[: self.n_cls + 1] = _FLOOR
        if mode == "scales":  # three scales of the base's own coefficients
            groups = np.repeat([0, 1, 2], [self.n_cls, self.n_lvl, self.n_cls])
            self.tie = np.eye(3)[groups] * (self.tie @ self.z0)[:, None]
            self.z0, self.floor = np.ones(3), np.array([_FLOOR, _FLOOR, 0.0])
        self.mode, self.pull = mode, pull
        # the last parameter is the fixed costs' scale, in every mode: held, it stays the base's
        self.ceiling = np.full(len(self.z0), np.inf)
        if hold_fixed_costs:
            self.floor[-1], self.ceiling[-1] = self.z0[-1], self.z0[-1] * (1 + 1e-9) + 1e-12

    def _terms(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_byte = np.cumsum(theta[self.n_cls : self.n_cls + self.n_lvl])
        memory = (
            self.activations * per_byte[self.level] + self.weights * per_byte[self.weight_level]
        )
        return self.macs * theta[self.cls], memory

    def _design(self, compute_bound: np.ndarray) -> np.ndarray:
        """Seconds per unit of each coefficient, per sample, for one compute/memory split."""
        a = np.zeros((len(self.seconds), len(self.scale)))
        np.add.at(a, (self.sample, self.cls), np.where(compute_bound, self.macs, 0.0))
        activations = np.where(compute_bound, 0.0, self.activations)
        weights = np.where(compute_bound, 0.0, self.weights)
        for j in range(self.n_lvl):  # d_j is paid by every byte served at level >= j
            served = np.where(self.level >= j, activations, 0) + np.where(
                self.weight_level >= j, weights, 0
            )
            np.add.at(a[:, self.n_cls + j], self.sample, served)
        np.add.at(a, (self.sample, self.n_cls + self.n_lvl + self.cls), 1.0)
        return a

    def _theta(self, z: np.ndarray) -> np.ndarray:
        return self.scale * (self.tie @ z)

    def _predicted(self, z: np.ndarray) -> np.ndarray:
        theta = self._theta(z)
        compute, memory = self._terms(theta)
        per_kernel = np.maximum(compute, memory) + theta[self.n_cls + self.n_lvl + self.cls]
        return np.bincount(self.sample, per_kernel, minlength=len(self.seconds))

    def _residuals(self, z: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [self._predicted(z) / self.seconds - 1, np.sqrt(self.pull) * (z - self.z0)]
        )

    def _jacobian(self, z: np.ndarray) -> np.ndarray:
        compute, memory = self._terms(self._theta(z))
        a = (self._design(compute >= memory) * self.scale / self.seconds[:, None]) @ self.tie
        return np.vstack([a, np.sqrt(self.pull) * np.eye(len(z))])

    def solve(self) -> tuple[np.ndarray, list[str]]:
        """The fitted coefficients, and the names of those no sample constrains."""
        from scipy.optimize import least_squares  # here, not on top: slow to import

        start = np.maximum(self.z0, self.floor)
        z = least_squares(
            self._residuals,
            start,
            jac=self._jacobian,
            x_scale="jac",
            bounds=(self.floor, self.ceiling),
            method="trf",
        ).x
        return self._theta(z), [n for j, n in enumerate(self._names()) if not self._pinned(z, j)]

    def _pinned(self, z: np.ndarray, j: int) -> bool:
        """Do the samples pin coefficient ``j`` down: does moving it by 1% of the base's value,
        either way, move some prediction by 0.01%? Not if no kernel depends on it, nor if it
        is only bounded (an efficiency whose kernels all stay memory bound above a value)."""
        predicted = self._predicted(z)
        for sign in (1, -1):
            moved = z.copy()
            moved[j] += sign * 0.01
            if np.allclose(self._predicted(moved), predicted, rtol=1e-4, atol=0):
                return False
        return True

    def _names(self) -> list[str]:
        """Names of the fitted parameters, as the provenance lists them."""
        if self.mode == "scales":
            return ["efficiency (one scale)", "bandwidth (one scale)", "fixed_cost_us"]
        return (
            [f"efficiency.{c}" for c in OP_CLASSES]
            + [f"bandwidth.{m.name}" for m in self.base.memory]
            + ["fixed_cost_us"]
        )

    def profile(self, theta: np.ndarray, name: str) -> DeviceProfile:
        """The base with these coefficients (provenance left for the caller to fill)."""
        per_mac = theta[: self.n_cls]
        per_byte = np.cumsum(theta[self.n_cls : self.n_cls + self.n_lvl])
        fixed = theta[self.n_cls + self.n_lvl :]
        return self.base.refit(
            dict(zip(OP_CLASSES, per_mac)),
            list(per_byte),
            dict(zip(OP_CLASSES, fixed)),
            name=name,
            provenance={},
        )
