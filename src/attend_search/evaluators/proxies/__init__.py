"""Zero-cost accuracy proxies: score an untrained network from one batch, without training.

Each proxy follows its paper, and the reference code where the paper leaves a choice open:

- ``synflow`` (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
  conserving synaptic flow"): ``log sum |theta * dR/dtheta|`` over the weights of every
  convolution and linear layer, where ``R = sum f(1; |theta|)`` is the output of the network
  with absolute weights on an all-ones input. Batch norm is removed (the identity), as in
  Abdelfattah et al.'s code, and the activations are too: the paper's ``R = 1'(prod |W|)1`` is
  the linearised network, which ReLU reaches by itself on positive inputs but ReLU6 (it
  saturates, zeroing the gradient), hard-swish and SiLU do not. Gates (sigmoid, hard-sigmoid
  of attention condensers and squeeze-excitation) are kept. Returned as a natural **log**,
  because the score grows geometrically with depth (about 1e50 on MobileNetV3 at 224) and
  overflows float32; computed in float64, or for the builder's networks in float32 with exact
  rescaling, to the same value (see :func:`synflow`).
- ``naswot`` (Mellor et al. 2021, "Neural architecture search without training"): the log
  determinant of ``K[i, j]`` = the number of activation units on which inputs ``i`` and ``j``
  have the same binary code (``N_A`` minus the Hamming distance), summed over every ReLU,
  ReLU6, Hardswish and SiLU module. A unit's code is ``output > 0``: for ReLU that is the
  paper's active/inactive code, and each of the four is positive exactly where its input is,
  so the code is the sign pattern of the pre-activation for all of them (ReLU6's upper
  saturation and hard-swish's curved part are not separate codes).
- ``grad_norm`` (Abdelfattah et al. 2021, "Zero-cost proxies for lightweight NAS"): the sum
  over convolution and linear layers of the Euclidean norm of the weight gradient of the
  cross-entropy loss.
- ``snip`` (the same paper, after Lee et al. 2019): ``sum |theta * dL/dtheta|`` over the same
  weights.
- ``zico`` (Li et al. 2023, "ZiCo: zero-shot NAS via inverse coefficient of variation on
  gradients"): the batch is split in two halves; per weight, the mean of ``|g|`` over the
  halves divided by the standard deviation of ``g``; per layer the log of the sum of those
  ratios (weights of zero deviation left out); summed over layers. As the reference code.
- ``ensemble``: complementary signals combined without labels or a population, see
  :func:`ensemble`.

Scores are taken with batch norm in training mode (batch statistics, as at the start of
training) and dropout off (it would only add noise), on the network built from a spec, or on
one copy of a module passed in (left unchanged). Batch norm's running statistics, which the
passes update, do not enter a training-mode forward, so the proxies can share that network
and their passes: each score is the one it would have on a fresh copy. Without a ``batch`` of
real data the inputs are standard normal and the labels uniform, both drawn from the seed, so
a seed always gives the same score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from copy import deepcopy
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import AttendSearchError
from ...search_space import Backbone, Spec
from ...search_space.blocks import (
    AttentionCondenser,
    BlurPool,
    Cell,
    Columns,
    CondenserBlock,
    ConvBNAct,
    DepthwiseSeparable,
    InvertedResidual,
    Projection,
    ReLUConvBN,
    ResNetBasic,
    SqueezeExcite,
    Zero,
)
from ..model_input import Shape, as_model, seeded

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
GATES = (nn.Sigmoid, nn.Hardsigmoid)
# The builder's modules: once linearised, positively homogeneous of degree 1 but for biases
# and GATES (max pooling only condenses an attention condenser's input for its gate;
# NAS-Bench-201's cells are sums of linear edges, its ``none`` a multiplication by 0). What
# synflow's float32 rescaling is exact for.
_SCALABLE = {
    Backbone,
    nn.Sequential,
    nn.ModuleList,
    ConvBNAct,
    BlurPool,
    Columns,
    CondenserBlock,
    DepthwiseSeparable,
    InvertedResidual,
    AttentionCondenser,
    SqueezeExcite,
    Cell,
    ResNetBasic,
    ReLUConvBN,
    Zero,
    Projection,
    nn.Conv2d,
    nn.Linear,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
    *NORMS,
    *ACTIVATIONS,
    *GATES,
}
Batch = tuple[Tensor, Tensor]


def synflow(model: nn.Module, shape: Shape) -> float:
    """Natural log of the synaptic flow of the linearised network (see the module docstring).

    A :class:`Backbone` made of the builder's own modules is scored in float32 with exact
    rescaling (:func:`_synflow_scaled`, several times faster); any other module in float64
    (:func:`_synflow_float64`, the reference): the rescaling is exact only for modules whose
    forward it knows. ``shape`` is the input's ``(N, C, H, W)``; one all-ones example is used.
    The model is rewritten in place.
    """
    modules = list(model.modules())
    if isinstance(model, Backbone) and all(type(m) in _SCALABLE for m in modules):
        return _synflow_scaled(model, modules, shape)
    return _synflow_float64(model, shape)


def _synflow_float64(model: nn.Module, shape: Shape) -> float:
    """The reference: the linearised network in float64, weight gradients by a full backward."""
    _linearise(list(model.modules()))
    model.double()
    ones = torch.ones((1, *shape[1:]), dtype=torch.float64, device=next(model.parameters()).device)
    model(ones).sum().backward()
    total = sum((w.detach() * w.grad).abs().sum() for w in _weights(model) if w.grad is not None)
    return float(torch.log(total))


def _synflow_scaled(model: Backbone, modules: list[nn.Module], shape: Shape) -> float:
    """The float64 value from float32 passes, rescaled between units.

    Rescaling. ``model.units()`` are applied in turn; before one, an activation whose maximum
    has left ``2**+-RESCALE`` is divided by a power of two (exact) that brings it near 1, and
    the exponent ``e`` of the true scale is kept as an integer. A unit is positively
    homogeneous of degree 1 in its input but for its biases, divided here by ``2**e``, and its
    gates (sigmoid, hard-sigmoid), given their true input ``2**e * a`` in float64. So each unit
    computes exactly ``f(2**e * x) / 2**e``, and with the scales held constant the output is
    ``R / 2**e_out`` as a function of the weights: the flow is ``2**e_out`` times that of the
    scaled network, whose activations stay in float32's range. Parallel columns rescale
    on their own and meet at the larger exponent (the other is scaled down: at worst to 0).
    Rescaling only past ``2**+-RESCALE`` spares most units the multiplication; the value does
    not depend on where it happens.

    Flow as a directional derivative. All weights are >= 0 and every derivative too, so the
    sum of ``|W * dR/dW|`` is ``dR/dt`` with every weight scaled by ``1 + t``. Forward mode
    carries it as a second example beside the input: the batch ``[a, da/dt]``, starting at
    ``[1, 0]``; a layer ``y = W * x + b`` maps it to ``[W x + b, W dx/dt + W x]``, and every
    other module is linear (average pooling, blur, resampling, sums) or is a gate multiplying
    its input (max pooling only feeds gates), so the second example is the derivative as long
    as every gate is saturated (constant 1, as at initialisation: derivative 0). One
    batch-of-two forward, with no autograd, 1.1-1.5x faster than the reverse mode. Where a gate
    is not saturated, reverse mode instead: ``sum |W * dR/dW|`` over a layer is
    ``<dR/dy, W x>``, from a backward with respect to the layer outputs, which skips the
    weight-gradient kernels.
    """
    run = _Run()
    _linearise(modules, gates=lambda gate: _TrueInputGate(gate, run))
    for m in modules:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(run.layer_hook(m.bias))
            m.bias = None
    device = next(model.parameters()).device
    # channels-last activations: convolutions up to 1.3x faster on CPU, the same value
    ones = torch.ones((1, *shape[1:]), device=device).contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad():
            out = _run_scaled(model.units(), torch.cat([ones, torch.zeros_like(ones)]), run)
        total = out[1].sum(dtype=torch.float64)
    except _Unsaturated:
        run.exponent, run.outputs = 0, []
        out = _run_scaled(model.units(), ones.requires_grad_(True), run)
        flows = torch.autograd.grad(out.sum(), run.outputs, allow_unused=True)
        with torch.no_grad():
            total = sum(
                torch.sum(g * y, dtype=torch.float64)
                for y, g in zip(run.outputs, flows)
                if g is not None
            )
    return run.exponent * math.log(2) + float(torch.log(total))


RESCALE = 32  # far inside float32's 2**+-126, with room for a unit's gain and the derivatives


class _Unsaturated(Exception):
    """A gate off saturation: forward mode cannot carry its product, reverse mode takes over."""


class _Run:
    """The state of a scaled pass: the exponent ``e`` of the unit running now (its activations
    are the true ones / ``2**e``), and in reverse mode the layer outputs recorded so far."""

    def __init__(self) -> None:
        self.exponent = 0
        self.outputs: list[Tensor] | None = None  # None: forward mode

    def layer_hook(self, bias: Tensor | None) -> Callable:
        """A forward hook for a layer whose bias was taken out (to be added back here: taken
        from an output, it would cost precision). Forward mode: ``[W x, W dx]`` becomes
        ``[W x + b, W dx + W x]``. Reverse mode: ``W x`` is recorded, then ``b`` added."""
        true = None if bias is None else bias.detach().double()

        def hook(layer: nn.Module, args: tuple, y: Tensor) -> Tensor | None:
            b = (
                None
                if true is None
                else (true / _pow2(self.exponent)).to(y.dtype).reshape(-1, *[1] * (y.ndim - 2))
            )
            if self.outputs is None:
                y[1:] += y[:1]
                if b is not None:
                    y[:1] += b
                return None
            self.outputs.append(y)
            return y if b is None else y + b

        return hook


def _run_scaled(units: Iterable[nn.Module], x: Tensor, run: _Run) -> Tensor:
    """``units`` applied in turn; ``x`` and the result are true activations / ``2**run.exponent``
    (the exponent as it is on entry, and on return)."""
    for unit in units:
        if isinstance(unit, Columns):
            start, outs = run.exponent, []
            for column in unit.columns:
                run.exponent = start
                outs.append((_run_scaled(column, x, run), run.exponent))
            run.exponent = max(e for _, e in outs)
            x = unit.join(
                [y * 2.0 ** (e - run.exponent) if e < run.exponent else y for y, e in outs]
            )
            continue
        shift = math.frexp(float(x.detach().amax()))[1]
        if abs(shift) > RESCALE:
            x = x * 2.0**-shift
            run.exponent += shift
        x = unit(x)
    return x


class _TrueInputGate(nn.Module):
    """A gate inside a unit scaled by ``2**e``, fed its true input.

    Where it is saturated everywhere (exactly 1 at its least input: gates are monotone), its
    output is a constant 1, derivative 0 as in float64 (the backward skips the attention
    branch). At initialisation and the space's input sizes (160-224 pixels) all gates are.
    """

    def __init__(self, gate: nn.Module, run: _Run):
        super().__init__()
        self.gate = gate
        self.run = run

    def forward(self, x: Tensor) -> Tensor:
        forward_mode = self.run.outputs is None
        least = (x[:1] if forward_mode else x).detach().amin()
        if float(self.gate(self._true(least))) == 1:
            return x.new_ones(()).expand_as(x)
        if forward_mode:
            raise _Unsaturated
        return self.gate(self._true(x)).to(x.dtype)

    def _true(self, x: Tensor) -> Tensor:
        return x.double() * _pow2(self.run.exponent)


def _pow2(exponent: int) -> Tensor:
    """``2**exponent`` in float64, inf past its range rather than an OverflowError."""
    return torch.ldexp(torch.tensor(1.0, dtype=torch.float64), torch.tensor(exponent))


def _linearise(
    modules: list[nn.Module], gates: Callable[[nn.Module], nn.Module] | None = None
) -> None:
    """Batch norm and activations removed, every parameter made non-negative, in place
    (``modules``: all of a network's, from ``model.modules()``); gates kept, or replaced by
    ``gates(gate)``."""
    identity = nn.Identity()
    _swap(
        modules,
        NORMS + ACTIVATIONS + (GATES if gates else ()),
        lambda m: gates(m) if isinstance(m, GATES) else identity,
    )
    with torch.no_grad():
        for m in modules:
            for p in m.parameters(recurse=False):
                p.abs_()


def naswot(probe: _Probe) -> float:
    """log |K_H| of the activation codes' agreement kernel (Mellor et al. 2021, eq. 2)."""
    return float(torch.linalg.slogdet(probe.full_batch()[0]).logabsdet)


def grad_norm(probe: _Probe) -> float:
    """Sum over layers of ``||dL/dW||_2`` (Abdelfattah et al. 2021)."""
    return sum(float(g.norm()) for _, g in probe.full_batch()[1])


def snip(probe: _Probe) -> float:
    """``sum |W * dL/dW|`` over layers (Lee et al. 2019, as a proxy in Abdelfattah et al. 2021)."""
    return sum(float((w * g).abs().sum()) for w, g in probe.full_batch()[1])


def zico(probe: _Probe) -> float:
    """ZiCo (Li et al. 2023): sum over layers of log sum(mean |g| / std g) over two half-batches."""
    inputs, targets = probe.batch
    if len(inputs) < 4:
        raise AttendSearchError(
            f"zico needs a batch of at least 4 examples (two halves with batch "
            f"statistics), got {len(inputs)}"
        )
    halves = [
        [g.double() for _, g in _weight_grads(probe.model, probe.model(x), y)]
        for x, y in zip(inputs.chunk(2), targets.chunk(2))
    ]
    score = 0.0
    for g1, g2 in zip(*halves):
        # of two values, mean |g| = (|g1| + |g2|) / 2 and std g = |g1 - g2| / 2 (far faster
        # than a std over a stacked pair, a strided reduction)
        spread = (g1 - g2).abs()
        ratio = float(torch.where(spread > 0, (g1.abs() + g2.abs()) / spread, 0).sum())
        if ratio > 0:
            score += math.log(ratio)
    return score


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


def ensemble(probe: _Probe) -> float:
    """Expressivity, progressivity, synflow and complexity, each divided by its spread, weighed
    and summed.

    Complementary signals: ``expressivity`` and ``progressivity`` (AZ-NAS, Lee and Ham, CVPR
    2024; :func:`expressivity_signals`) ask whether the features at initialisation use many
    directions, and whether no block collapses them; ``synflow`` how much signal the weights
    carry end to end; ``complexity`` (AZ-NAS's fourth signal; the log of the parameter count
    here, which needs no trace, where AZ-NAS takes FLOPs) the capacity. On NAS-Bench-201
    CIFAR-10 alone they rank accuracy at Spearman about 0.87, 0.74, 0.76 and 0.78; combined
    0.91 (``benchmarks/bench_proxies.py``). AZ-NAS sums the signals' log ranks within the
    population being searched, so a score depends on the other networks and shifts as the
    search goes. Here a fixed monotone transform replaces the ranks: each signal divided by a
    constant, its standard deviation over NAS-Bench-201 dev architectures
    (:data:`ENSEMBLE_SCALES`, set from the signals alone, never from accuracy), then summed
    with :data:`ENSEMBLE_WEIGHTS`, so one network's score is comparable with any other's with
    no population at hand. The weights (expressivity twice, the others once) were chosen on
    the dev data's accuracy; the benchmark cross-validates that choice with the scales.
    (Standardised log ranks, or a clip of each standardised signal, ranked no better in
    cross-validation; AZ-NAS's trainability, from a backward, added nothing here.)

    Cost: one forward of :data:`ENSEMBLE_BATCH` examples without backward, then synflow's
    pass on the same network (the parameter count is free): under twice synflow alone, the
    network's build included.
    """
    return sum(
        ENSEMBLE_WEIGHTS[name] * value / ENSEMBLE_SCALES[name]
        for name, value in probe.signals().items()
    )


def feature_entropies(model: nn.Module, inputs: Tensor) -> list[list[float]]:
    """Per stage, the entropy of every block's output features, from one forward of ``inputs``
    (a :class:`Backbone`'s blocks, a stage of columns as one; any other module's direct
    children, one stage each). A block's entropy is that of the normalised eigenvalues of
    the channel covariance over all examples and positions (AZ-NAS's isotropy): high when
    the features use many directions evenly, 0 when one dominates or all are zero."""
    if isinstance(model, Backbone):
        stages = [[stage] if isinstance(stage, Columns) else list(stage) for stage in model.stages]
    else:
        stages = [[child] for child in model.children()]
    entropies: list[list[float]] = [[] for _ in stages]

    def hook(into: list[float]) -> Callable:
        def entropy(module: nn.Module, args: tuple, y: Tensor) -> None:
            if y.ndim != 4:
                return
            f = y.detach().transpose(0, 1).flatten(1).double()
            f = f - f.mean(1, keepdim=True)
            # the covariance's nonzero eigenvalues are the Gram matrix's: take the smaller one
            eig = torch.linalg.eigvalsh(f @ f.T if len(f) <= f.shape[1] else f.T @ f).clamp(min=0)
            p = eig[eig > 0] / eig.sum()
            into.append(float(-(p * p.log()).sum()))

        return entropy

    hooks = [
        block.register_forward_hook(hook(into))
        for blocks, into in zip(stages, entropies)
        for block in blocks
    ]
    with torch.no_grad():  # channels-last: convolutions 1.3-1.7x faster on CPU, as in synflow
        model(inputs.contiguous(memory_format=torch.channels_last) if inputs.ndim == 4 else inputs)
    for h in hooks:
        h.remove()
    return [e for e in entropies if e]


def expressivity_signals(model: nn.Module, inputs: Tensor) -> dict[str, float]:
    """AZ-NAS's expressivity (the entropies of the stages' outputs, summed) and progressivity
    (the smallest change of entropy from one block to the next: negative where a block
    collapses the features), from :func:`feature_entropies`."""
    stages = feature_entropies(model, inputs)
    blocks = [e for stage in stages for e in stage]
    return {
        "expressivity": sum(stage[-1] for stage in stages),
        "progressivity": min((b - a for a, b in pairwise(blocks)), default=0.0),
    }


class _Probe:
    """The network to score (a scratch copy, see :func:`_scratch`), the input shape and batch,
    and the proxies asked for: a pass that several of them share runs once."""

    def __init__(
        self,
        model: nn.Module,
        shape: Shape,
        batch: Batch | None,
        names: list[str],
        examples: Tensor,
    ):
        self.model, self.shape, self.batch, self.names = model, shape, batch, names
        self.examples = examples  # the ensemble's expressivity forward
        self._full: tuple[Tensor, list[tuple[Tensor, Tensor]]] | None = None
        self._synflow: float | None = None
        self._signals: dict[str, float] | None = None

    def synflow(self) -> float:
        """Synflow, once: it rewrites the network, so every other pass must come first."""
        if self._synflow is None:
            self._synflow = synflow(self.model, self.shape)
        return self._synflow

    def signals(self) -> dict[str, float]:
        """The ensemble's signals, each floored at :data:`ENSEMBLE_FLOOR`."""
        if self._signals is None:
            # the parameters counted before synflow, which takes the biases out
            size = sum(p.numel() for p in self.model.parameters())
            raw = {
                **expressivity_signals(self.model, self.examples),
                "synflow": self.synflow(),
                "complexity": math.log(size),
            }
            # not max(): a NaN would pass it
            self._signals = {
                k: v if v > ENSEMBLE_FLOOR else ENSEMBLE_FLOOR  # noqa: FURB136
                for k, v in raw.items()
            }
        return self._signals

    def full_batch(self) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """naswot's kernel and the weight gradients on the whole batch, from one forward: the
        kernel if naswot is asked for, the gradients if grad_norm or snip is."""
        if self._full is None:
            inputs, targets = self.batch
            kernel, hooks = (
                _code_kernel(self.model, len(inputs))
                if "naswot" in self.names
                else (torch.zeros(0, 0), [])
            )
            grads = bool({"grad_norm", "snip"} & set(self.names))
            with torch.set_grad_enabled(grads):
                logits = self.model(inputs)
            for hook in hooks:
                hook.remove()
            self._full = kernel, _weight_grads(self.model, logits, targets) if grads else []
        return self._full


def _code_kernel(model: nn.Module, n: int) -> tuple[Tensor, list]:
    """naswot's kernel, filled by the forward hooks returned with it as a batch of ``n`` runs."""
    device = next(model.parameters()).device
    kernel = torch.zeros(n, n, dtype=torch.float64, device=device)

    def add_codes(module: nn.Module, args: tuple, output: Tensor) -> None:
        codes = (output > 0).flatten(1).float()  # exact: counts stay below 2**24
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [
        m.register_forward_hook(add_codes) for m in model.modules() if isinstance(m, ACTIVATIONS)
    ]
    if not hooks:
        raise AttendSearchError(
            "naswot needs ReLU, ReLU6, Hardswish or SiLU modules; the model has none"
        )
    return kernel, hooks


ProxyFn = Callable[[_Probe], float]
PROXIES: dict[str, ProxyFn] = {
    "synflow": _Probe.synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "snip": snip,
    "zico": zico,
    "ensemble": ensemble,
}
# Proxies that rewrite the network (synflow linearises it), run after all others in this order.
_LAST = ("ensemble", "synflow")


def check_proxy(name: str) -> str:
    """``name`` if it is a known proxy, else an error listing the known ones."""
    if name not in PROXIES:
        raise AttendSearchError(f"unknown proxy {name!r}; known: {', '.join(PROXIES)}")
    return name


def zero_cost(
    model_or_spec: nn.Module | Spec,
    input_shape: Shape | None = None,
    proxy: str = "synflow",
    batch: Batch | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    batch_size: int = 64,
) -> float:
    """One zero-cost proxy score of a spec (built with weights from ``seed``) or a module.

    ``input_shape`` is ``(N, C, H, W)``; only ``(C, H, W)`` is used, as the synthetic batch has
    ``batch_size`` examples. ``batch`` is ``(inputs, targets)`` of real data instead.
    ``num_classes`` (for synthetic labels) defaults to the spec's, or the model's output width.
    Higher is better for every proxy.
    """
    return zero_cost_all(model_or_spec, input_shape, [proxy], batch, seed, num_classes, batch_size)[
        proxy
    ]


def zero_cost_all(
    model_or_spec: nn.Module | Spec,
    input_shape: Shape | None = None,
    proxies: Iterable[str] | None = None,
    batch: Batch | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    batch_size: int = 64,
    signals: bool = False,
) -> dict[str, float]:
    """Several proxies (all by default) of one network, on the same weights and batch.

    They share one scratch network: the model built here from a spec, else one copy of the
    module given (left untouched). Synflow, which rewrites the network, runs last and needs
    no batch (the ensemble reuses it); naswot, grad_norm and snip share one forward of the
    batch. ``signals``: with ``ensemble``, its signals too, as ``ensemble.<signal>``.
    """
    names = [check_proxy(name) for name in (PROXIES if proxies is None else proxies)]
    if batch is not None:
        _check_batch(batch)
        input_shape = tuple(batch[0].shape)
    elif batch_size < 2:
        raise AttendSearchError(
            f"batch_size must be 2 or more (batch statistics), got {batch_size}"
        )
    with seeded(seed):
        model, shape = as_model(model_or_spec, input_shape)
    model = _scratch(model, copy=model is model_or_spec)
    # the ensemble's few examples: the batch's first, else drawn alone (whatever batch_size)
    examples = (
        batch[0][:ENSEMBLE_BATCH]
        if batch is not None
        else _synthetic(shape, ENSEMBLE_BATCH, 1, seed)[0]
    )
    if batch is None and set(names) - set(_LAST):
        if num_classes is None:
            num_classes = (
                model_or_spec.num_classes
                if isinstance(model_or_spec, Spec)
                else _output_width(model, shape)
            )
        batch = _synthetic(shape, batch_size, num_classes, seed)
    device = next(model.parameters()).device
    if batch is not None:
        batch = tuple(t.to(device) for t in batch)
    probe = _Probe(model, shape, batch, names, examples.to(device))
    order = sorted(names, key=lambda name: _LAST.index(name) + 1 if name in _LAST else 0)
    scores = {name: PROXIES[name](probe) for name in order}
    extra = (
        {f"ensemble.{k}": v for k, v in probe.signals().items()}
        if signals and "ensemble" in names
        else {}
    )
    return {**{name: scores[name] for name in names}, **extra}


def _scratch(model: nn.Module, copy: bool) -> nn.Module:
    """The network to score (``model`` itself, or a copy): every weight trainable, batch norm on
    batch statistics, dropout off."""
    scratch = deepcopy(model) if copy else model
    scratch.requires_grad_(True).eval()
    for m in scratch.modules():
        if isinstance(m, NORMS):
            m.train()
    return scratch


def _weights(model: nn.Module) -> list[Tensor]:
    """The weights the papers score: those of convolution and linear layers."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _weight_grads(model: nn.Module, logits: Tensor, targets: Tensor) -> list[tuple[Tensor, Tensor]]:
    """``(weight, dL/dweight)`` of the cross-entropy loss of ``logits``, for scored weights."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(logits, targets).backward()
    return [(w.detach(), w.grad) for w in _weights(model) if w.grad is not None]


def _swap(
    modules: list[nn.Module], types: tuple[type, ...], make: Callable[[nn.Module], nn.Module]
) -> None:
    """Replace every child of ``modules`` of one of ``types`` by ``make(it)``, in place."""
    for parent in modules:
        for name, child in parent.named_children():
            if isinstance(child, types):
                setattr(parent, name, make(child))


def _check_batch(batch: Batch) -> None:
    if not (
        isinstance(batch, (tuple, list))
        and len(batch) == 2
        and all(isinstance(t, Tensor) for t in batch)
    ):
        raise AttendSearchError("batch must be a pair (inputs, targets) of tensors")
    inputs, targets = batch
    if inputs.ndim < 2 or len(inputs) < 2 or len(targets) != len(inputs):
        raise AttendSearchError(
            f"batch needs at least 2 inputs and one target per input, got "
            f"inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)}"
        )


def _output_width(scratch: nn.Module, shape: Shape) -> int:
    """The width of a scratch network's output, from two examples (batch statistics)."""
    device = next(scratch.parameters()).device
    with torch.no_grad():
        return scratch(torch.zeros((2, *shape[1:]), device=device)).shape[-1]


def _synthetic(shape: Shape, n: int, num_classes: int, seed: int) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn((n, *shape[1:]), generator=generator)
    return inputs, torch.randint(num_classes, (n,), generator=generator)
