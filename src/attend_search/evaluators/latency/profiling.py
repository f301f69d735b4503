"""Kernel profiling: time single kernels of every class the spaces produce, over the shapes
they produce, and learn each class's correction (:mod:`.kernel_profile`).

Probes. Networks (the presets and seeded ``attendnext`` samples) run once under the recorder
the latency model's traces use (:func:`..graph.trace.record_forward`); every ATen op of a
costed class (convolutions, pooling, upsampling, element-wise ops, global pooling, linear
layers) is kept with its arguments' shapes, and identical ones are merged; a stride-1 1x1
convolution without groups also gives the linear layer over its pixels (:func:`_gemm_of`).
A probe is a network of that one op on an input of the recorded shape; its other operands
(weights, a gate's second activation) are constants of their shapes, which move the same
bytes. A probe is used when the runtime runs it as one kernel of its class, besides copies
the runtime adds (LiteRT's input transpose, a PAD), which the roofline prices.

Memory levels. Before any probe, the base's memory levels are replaced by this machine's
(:mod:`.memory_levels`): the kernels are timed here, so their working sets must be priced by
this machine's caches. The rate at which a network reads weights that outgrow the caches is
timed too: a probe rereads its weights from the cache, a network not.

Timing. Each probe is exported and timed as :func:`.measure.measure` times networks (thread
CPU time); the lowest round median is kept, since on a shared machine noise only adds time.
An inference of nothing (a copy of a one-element input) is timed first, three times, the
least kept: that per-inference constant and the predicted copies are subtracted, leaving
the kernel's own time. A kernel costs less inside a network than alone (alone, x86
onnxruntime wraps a convolution in reorders to and from its blocked layout, which a chain of
them pays once): chains of identical convolutions cost 0.51 to 0.96 of a single one's time
per link. So a convolution or pooling whose output has its input's shape is timed as a
chain of :data:`LINKS`, its own time a link's share (and what was subtracted, a link's
share of it).

Adaptive sampling. Each class first gets a few probes spread over its range of roofline
time. Then, until the budget is spent, the next probe goes to the class least well known
(its leave-one-out error over the square root of its probes, times its share of the
networks' predicted time under the corrections learned so far; a class with under eight
probes first), at the candidate shape farthest from the shapes already timed.
"""

from __future__ import annotations

import datetime
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_map
from torch.utils.weak import WeakTensorKeyDictionary

from ...search_space import Spec
from ..graph.trace import record_forward
from ..model_input import as_model
from ..runtimes.onnx import detect_nchwc_block
from .devices import DeviceError, DeviceProfile
from .kernel_profile import ClassCorrection, KernelProfile, Row, Timing, features, fit_class
from .kernels import Kernel, extract_kernels
from .measure import measure
from .memory_levels import cache_sizes, measure_levels, measure_weight_streams
from .nchwc import REORDERS
from .predict import predict_latency, total_ms
from .protocol import REPEATS, ROUNDS, WARMUP

# ATen ops probed: those behind every costed class the spaces' networks run
_PROBED = {
    "convolution",
    "_convolution",
    "max_pool2d",
    "max_pool2d_with_indices",
    "avg_pool2d",
    "upsample_nearest2d",
    "_upsample_nearest_exact2d",
    "upsample_bilinear2d",
    "mul",
    "add",
    "sigmoid",
    "hardsigmoid",
    "relu",
    "hardtanh",
    "hardswish",
    "silu",
    "mean",
    "_adaptive_avg_pool2d",
    "addmm",
}
# upsampling is replayed as F.interpolate calls it (the ``vec`` overload: the arguments
# before its scale factors kept), which the converters lower to one resize; the ``default``
# overload the recorder sees becomes gathers in LiteRT
_VEC_ARGS = {"upsample_nearest2d": 2, "upsample_bilinear2d": 3}
_FIRST = 3  # probes per class before sampling adapts
_KNOWN = 8  # a class with fewer probes is sampled before any other
_NOTHING_TIMES = 3  # the per-inference constant is the least of these timings: it is
# subtracted from every probe, so its noise would move every small kernel's time
_FLOOR = 0.1  # a kernel's time is at least this share of its roofline (noise can go below 0)
LINKS = 4  # a chained probe runs its op this many times, each link's output the next's input
# ops chained where they keep their input's shape: a runtime runs each link as a kernel
# (element-wise ops are not chained: converters fold a multiply or add by a constant after
# another, and a ReLU after a ReLU)
_CHAINED = {"convolution", "_convolution", "max_pool2d", "max_pool2d_with_indices", "avg_pool2d"}


@dataclass(frozen=True)
class _Slot:
    """A tensor argument of a recorded op: its shape, and whether an activation made it."""

    shape: tuple[int, ...]
    activation: bool


@dataclass(frozen=True)
class Probe:
    """One ATen op with its arguments, tensors given by their shapes (:class:`_Slot`)."""

    func: object  # the out-of-place OpOverload
    args: tuple
    kwargs: tuple[tuple[str, object], ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input().shape

    def _input(self) -> _Slot:
        """The largest activation is the probe network's input; the rest are constants."""
        slots = [a for a in _leaves((self.args, dict(self.kwargs))) if isinstance(a, _Slot)]
        return max((s for s in slots if s.activation), key=lambda s: math.prod(s.shape))

    def module(self, links: int = 1) -> nn.Module:
        """The probe's network: its op once, or ``links`` times in a chain (each link's
        output the next one's input, each with constants of its own)."""
        return _Replay(self, links)


class _Replay(nn.Module):
    """A network of one probe's op: the input fills the probe's input slot, constants of
    their shapes the others; chained ``links`` times."""

    def __init__(self, probe: Probe, links: int = 1):
        super().__init__()
        self.probe = probe
        self.links = links
        self.input_slot = probe._input()
        self.slots = [
            s
            for s in _leaves((probe.args, dict(probe.kwargs)))
            if isinstance(s, _Slot) and s is not self.input_slot
        ]
        generator = torch.Generator().manual_seed(0)
        for link in range(links):
            for i, slot in enumerate(self.slots):
                constant = torch.rand(slot.shape, generator=generator) + 0.5
                self.register_buffer(f"c{link}_{i}", constant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for link in range(self.links):
            x = self._link(x, iter(getattr(self, f"c{link}_{i}") for i in range(len(self.slots))))
        return x

    def _link(self, x: torch.Tensor, constants) -> torch.Tensor:
        def fill(value):
            if value is self.input_slot:
                return x
            return next(constants) if isinstance(value, _Slot) else value

        args, kwargs = tree_map(fill, (self.probe.args, dict(self.probe.kwargs)))
        out = self.probe.func(*args, **kwargs)
        return out[0] if isinstance(out, tuple) else out  # max pooling's indices unused


def _leaves(tree) -> list:
    found = []
    tree_map(found.append, tree)
    return found


class _ProbeLog:
    """What :func:`record_forward` hands over, kept as probes (an ``OpLog``)."""

    def __init__(self):
        self.values = WeakTensorKeyDictionary()  # tensors activations made
        self.probes: dict[str, Probe] = {}

    def input(self, x: torch.Tensor) -> None:
        self.values[x] = True

    def output(self, y) -> None:
        pass

    def op(self, func, args: tuple, kwargs: dict, out, module: str) -> None:
        inputs = [t for t in _leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if not any(t in self.values for t in inputs):
            return  # computed from weights alone: a constant
        for t in _leaves(out):
            if isinstance(t, torch.Tensor):
                self.values[t] = True
        name = func.overloadpacket.__name__
        plain = name[:-1] if name.endswith("_") and not name.endswith("__") else name
        if plain not in _PROBED:
            return

        def slot(value):
            if isinstance(value, torch.Tensor):
                return _Slot(tuple(value.shape), value in self.values)
            return value

        args, kwargs = tree_map(slot, (args, kwargs))
        if plain == "mul" and not any(isinstance(a, _Slot) for a in args[1:]) and args[1] == 0:
            return  # a multiply by zero: LiteRT folds it away
        overload = getattr(getattr(torch.ops.aten, plain), func._overloadname)
        if plain in _VEC_ARGS and func._overloadname == "default":
            args, overload = (*args[: _VEC_ARGS[plain]], None), getattr(torch.ops.aten, plain).vec
        self._keep(Probe(overload, args, tuple(sorted(kwargs.items()))))
        gemm = _gemm_of(plain, args)
        if gemm is not None:
            self._keep(gemm)

    def _keep(self, probe: Probe) -> None:
        key = (probe.func.overloadpacket.__name__, probe.args, probe.kwargs)
        self.probes.setdefault(repr(key), probe)


def _gemm_of(name: str, args: tuple) -> Probe | None:
    """The linear layer over ``H x W`` tokens that computes the same GEMM as a 1x1
    convolution of ``args``, or None: the spaces' linear layers are the head's, single rows,
    memory bound, so without these the linear class would learn nothing of the
    compute-bound linear layers of a transformer (which run the GEMM kernels a 1x1
    convolution does)."""
    if name not in ("convolution", "_convolution"):
        return None
    x, weight, _, stride, padding, _, transposed, _, groups = args[:9]
    plain = not transposed and groups == 1 and set(stride) == {1} and set(padding) == {0}
    if not plain or tuple(weight.shape[2:]) != (1, 1) or x.shape[0] != 1:
        return None
    tokens, (cout, cin) = math.prod(x.shape[2:]), weight.shape[:2]
    bias, rows, matrix = (
        _Slot((cout,), False),
        _Slot((tokens, cin), True),
        _Slot((cin, cout), False),
    )
    return Probe(torch.ops.aten.addmm.default, (bias, rows, matrix), ())


def collect_probes(networks: Sequence[nn.Module | Spec]) -> list[Probe]:
    """The distinct probed ops of the networks' forward passes, in order of first use."""
    log = _ProbeLog()
    for network in networks:
        model, shape = as_model(network)
        record_forward(model, shape, log)
    return list(log.probes.values())


@dataclass(frozen=True)
class Candidate:
    """A probe and the one kernel it is of, on a runtime; timed as a chain of ``links`` of
    it, with the copies the runtime adds to that chain (``extra``)."""

    probe: Probe
    kernel: Kernel
    extra: tuple[Kernel, ...]
    links: int = 1


def candidates(probes: Sequence[Probe], runtime: str, nchwc_block: int = 0) -> list[Candidate]:
    """The probes the runtime runs as one kernel besides copies (others are not used: a
    hard-swish that onnxruntime runs as two kernels is covered by their own probes); a
    convolution or pooling whose output has its input's shape is chained (:data:`LINKS`),
    where the runtime runs the chain as that many kernels of its class. ``nchwc_block``:
    onnxruntime's blocked layout on this CPU, whose reorders stay in a probe's own time."""
    found = []
    for probe in probes:
        kernels = extract_kernels(probe.module(), probe.input_shape, runtime, nchwc_block)
        main = [k for k in kernels if k.op_class != "copy"]
        if len(main) != 1:
            continue
        candidate = Candidate(probe, main[0], _subtracted(kernels))
        if probe.func.overloadpacket.__name__ in _CHAINED and _keeps_shape(probe):
            chain = extract_kernels(probe.module(LINKS), probe.input_shape, runtime, nchwc_block)
            links = [k for k in chain if k.op_class != "copy"]
            if [k.op_class for k in links] == [main[0].op_class] * LINKS:
                candidate = replace(candidate, extra=_subtracted(chain), links=LINKS)
        found.append(candidate)
    return found


def _subtracted(kernels: list[Kernel]) -> tuple[Kernel, ...]:
    """The copies a probe's time is taken without: LiteRT's transposes and PADs, which the
    roofline prices. onnxruntime's reorders run far below a copy's bandwidth: priced so,
    most of their time would stay in the probe's, by an amount that varies with the shape;
    they are left in it whole (the kernel model then counts reorders twice, and the
    network-level scale takes that up)."""
    return tuple(k for k in kernels if k.op_class == "copy" and k.ops[0] not in REORDERS)


def _keeps_shape(probe: Probe) -> bool:
    with torch.no_grad():
        return tuple(probe.module()(torch.zeros(probe.input_shape)).shape) == probe.input_shape


@dataclass(frozen=True)
class Observation:
    kernel: Kernel
    seconds: float  # the kernel's own time: the probe's less the constant and the copies
    overhead: float = 0.0  # what was subtracted (a link's share): a kernel far below it is
    # known poorly


def profile_kernels(
    networks: Sequence[nn.Module | Spec],
    base: DeviceProfile,
    *,
    runtime: str = "onnxruntime",
    budget_s: float = 300.0,
    threads: int = 1,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
    rounds: int = ROUNDS,
    name: str | None = None,
    machine: str = "unspecified",
    log: Callable[[str], None] = lambda line: None,
) -> DeviceProfile:
    """``base`` with a kernel profile learned by timing probes of ``networks``' ops on
    ``runtime`` for about ``budget_s`` seconds, counted after the memory levels (their two
    passes, :mod:`.memory_levels`, would otherwise take a LiteRT profile a third of its
    probes); ``log`` gets a line per probe timed."""
    start = time.monotonic()
    block = detect_nchwc_block() if runtime == "onnxruntime" else 0
    base = replace(base, runtime=runtime, nchwc_block=block, threads=threads, kernel_profile=None)
    pool = candidates(collect_probes(networks), runtime, block)
    settings = dict(runtime=runtime, threads=threads, warmup=warmup, repeats=repeats)

    def timed(module: nn.Module, shape: tuple[int, ...]) -> float:
        return measure(module, shape, rounds=rounds, **settings).low_ms * 1e-3

    overhead = min(timed(Nothing(), (1, 1, 1, 1)) for _ in range(_NOTHING_TIMES))
    listed = cache_sizes()
    caches = listed or [(m.name, m.size_kib) for m in base.memory[:-1]]
    streams: list[tuple[int, float]] = []
    weights: list[tuple[int, float]] = []
    memory = f"{base.name}'s: neither the OS nor the base lists a cache"
    if caches:

        def own_time(module: nn.Module, shape: tuple[int, ...]) -> float:
            return timed(module, shape) - overhead

        levels, streams = measure_levels(caches, own_time, log)
        weights = measure_weight_streams(caches[-1][1], own_time, log)
        memory = (
            f"sizes {_sizes(caches)} ({'listed by the OS' if listed else base.name}); "
            f"bandwidths and effective sizes from {len(streams)} streaming kernels; "
            f"weights from {len(weights)} networks reading only weights"
        )
        base = replace(base, memory=levels)
    network_time = _NetworkTime(networks, base)
    observations: dict[str, list[Observation]] = defaultdict(list)
    untimed = list(pool)
    spent: list[float] = []
    probing = time.monotonic()
    while untimed:
        remaining = budget_s - (time.monotonic() - probing)
        if remaining < (np.median(spent) if spent else 0.0):
            break
        candidate = _next(untimed, observations, base, network_time)
        untimed.remove(candidate)
        began = time.monotonic()
        links = candidate.links
        seconds = timed(candidate.probe.module(links), candidate.probe.input_shape)
        spent.append(time.monotonic() - began)
        copies = sum(total_ms([k], base) for k in candidate.extra) * 1e-3
        own = (seconds - overhead - copies) / links
        roofline = total_ms([candidate.kernel], base) * 1e-3
        observations[candidate.kernel.op_class].append(
            Observation(candidate.kernel, max(own, _FLOOR * roofline), seconds / links - own)
        )
        log(
            f"[{sum(map(len, observations.values()))}] {candidate.kernel.op_class:<11} "
            f"{_describe(candidate.probe)}{f' x{links}' if links > 1 else ''}: "
            f"{own * 1e6:.1f} us (roofline {roofline * 1e6:.1f})"
        )
    timed_kernels = [o for obs in observations.values() for o in obs]
    classes, fallback = fit_observations(timed_kernels, base)
    learned = KernelProfile(
        classes=classes,
        fallback=fallback,
        offset_ms=overhead * 1e3,
        weight_streams=tuple(weights),
        provenance={
            "base": base.name,
            "runtime": runtime,
            "threads": threads,
            "probes": sum(map(len, observations.values())),
            "candidates": len(pool),
            "networks": len(networks),
            "memory": memory,
            "budget_s": budget_s,
            "seconds": round(time.monotonic() - start, 1),
            "date": datetime.date.today().isoformat(),
            "machine": machine,
            "inference_us": round(overhead * 1e6, 2),
            "streams": [Row([b, round(t * 1e6, 2)]) for b, t in streams],  # bytes, us
        },
        timings=tuple(
            Timing(k.op_class, k.macs, k.bytes, k.weight_bytes, o.seconds, o.overhead)
            for o in timed_kernels
            for k in [o.kernel]
        ),
    )
    return replace(
        base,
        name=name or f"{base.name}-kernels",
        description=f"{base.name} corrected by timing single kernels on {runtime} ({machine})",
        provenance={"base": base.name},
        kernel_profile=learned,
    )


def _sizes(caches: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{name} {kib:g} KiB" for name, kib in caches)


class Nothing(nn.Module):
    """An inference of nothing: what a runtime costs per call beyond its kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def refit(profile: DeviceProfile, base: DeviceProfile | None = None) -> DeviceProfile:
    """``profile``'s kernel corrections fitted again from the timings it keeps, on ``base``'s
    roofline (its own by default): another base, or a later version of the fit, without
    timing again. The scale returns to 1 and the offset to the timed inference of nothing,
    so a whole-network calibration is to be redone."""
    learned = profile.kernel_profile
    if learned is None or not learned.timings:
        raise DeviceError(f"profile {profile.name!r} keeps no kernel timings to refit")
    # the kernels were timed in the profile's layout, whatever the base's
    base = replace(base or profile, kernel_profile=None, nchwc_block=profile.nchwc_block)
    observations = [
        Observation(
            Kernel("", t.op_class, (), t.macs, t.bytes, t.weight_bytes), t.seconds, t.overhead
        )
        for t in learned.timings
    ]
    offset_ms = learned.provenance.get("inference_us", learned.offset_ms * 1e3) * 1e-3
    classes, fallback = fit_observations(observations, base)
    refitted = replace(learned, classes=classes, fallback=fallback, scale=1.0, offset_ms=offset_ms)
    return replace(base, kernel_profile=refitted)


def fit_observations(
    observations: Sequence[Observation], base: DeviceProfile
) -> tuple[dict[str, ClassCorrection], ClassCorrection | None]:
    """Per-class corrections of ``base``'s roofline fitted to kernels' measured times, and
    the fallback: the same fit to every observation together."""
    by_class: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        by_class[o.kernel.op_class].append(o)
    classes = {c: _fit(obs, base)[0] for c, obs in sorted(by_class.items())}
    return classes, _fit(observations, base)[0] if observations else None


def _fit(observations: Sequence[Observation], base: DeviceProfile):
    """A class's fit; a probe weighs by the share of its timing that is the kernel's own, so
    kernels much smaller than the per-inference constant, whose remainder is mostly noise,
    count little (they count little in a network's time too)."""
    raw = [features(o.kernel.macs, o.kernel.bytes) for o in observations]
    ratio = [math.log(o.seconds / (total_ms([o.kernel], base) * 1e-3)) for o in observations]
    return fit_class(raw, ratio, _weights(observations))


def _weights(observations: Sequence[Observation]) -> np.ndarray:
    return np.array([o.seconds / (o.seconds + o.overhead) for o in observations])


class _NetworkTime:
    """The networks' kernels by class, with their times on ``base``'s roofline: what each
    class's share of the networks' time is, corrected as the probes so far say. Uncorrected,
    the shares are another CPU's (the base's compute, this machine's memory): on x86 they
    gave depthwise convolutions twice their share and element-wise ops a fifth."""

    def __init__(self, networks: Sequence[nn.Module | Spec], base: DeviceProfile):
        self.kernels: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
        for network in networks:
            for t in predict_latency(network, base, breakdown=True)[1]:
                self.kernels[t.op_class].append((t.macs, t.bytes, t.ms))

    def shares(
        self, corrections: dict[str, ClassCorrection], fallback: ClassCorrection | None
    ) -> dict[str, float]:
        """Each class's share, a class without a correction taking the ``fallback`` (as a
        prediction does; near enough for sampling: the cost of weights read from further
        out is corrected here, and a class of one probe takes the fallback until its
        second)."""
        times = {}
        for op_class, kernels in self.kernels.items():
            correction = corrections.get(op_class, fallback)
            times[op_class] = sum(
                ms * (correction.factor(macs, nbytes) if correction else 1.0)
                for macs, nbytes, ms in kernels
            )
        total = sum(times.values())
        return {c: t / total for c, t in times.items()}


def _next(
    untimed: list[Candidate],
    observations: dict[str, list[Observation]],
    base: DeviceProfile,
    network_time: _NetworkTime,
) -> Candidate:
    """The candidate to time next (the module docstring's adaptive sampling)."""
    by_class: dict[str, list[Candidate]] = defaultdict(list)
    for c in untimed:
        by_class[c.kernel.op_class].append(c)
    fits = {c: _fit(obs, base) for c, obs in observations.items() if len(obs) > 1}
    every = [o for obs in observations.values() for o in obs]
    fallback = _fit(every, base)[0] if len(every) > 1 else None
    shares = network_time.shares({c: fit[0] for c, fit in fits.items()}, fallback)

    def need(op_class: str) -> tuple[int, float]:
        timed = observations[op_class]
        if len(timed) < _KNOWN:
            return 1, shares.get(op_class, 0.0) / (1 + len(timed))
        # the fit's uncertainty: its error (weighted as the fit weighs) over sqrt(probes)
        w, loo = _weights(timed), fits[op_class][1]
        return 0, shares.get(op_class, 0.0) * float(np.sqrt(w @ loo**2 / w.sum() / len(timed)))

    op_class = max(by_class, key=need)
    pool, timed = by_class[op_class], observations[op_class]
    if len(timed) < _FIRST:  # spread over the range of roofline time
        order = sorted(pool, key=lambda c: total_ms([c.kernel], base))
        return order[[0, len(order) - 1, len(order) // 2][len(timed)]]
    done = np.array([features(o.kernel.macs, o.kernel.bytes) for o in timed])
    spread = np.where(done.std(axis=0) > 1e-9, done.std(axis=0), 1.0)
    points = np.array([features(c.kernel.macs, c.kernel.bytes) for c in pool])
    distance = np.min(np.linalg.norm((points[:, None] - done[None]) / spread, axis=2), axis=1)
    return pool[int(np.argmax(distance))]


def _describe(probe: Probe) -> str:
    """``convolution 1x32x56x56 <- 32x1x3x3`` : the op and its tensors' shapes."""
    shapes = ["x".join(map(str, s.shape)) for s in _leaves(probe.args) if isinstance(s, _Slot)]
    return f"{probe.func.__name__.split('.')[0]} " + " ".join(shapes)
