"""``synflow``: the synaptic flow of the linearised network (see the package docstring),
in float64, or for the builder's networks in float32 with exact rescaling."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from ...search_space import Backbone
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
from ..model_input import Shape
from .modules import ACTIVATIONS, GATES, NORMS, swap, weights

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
    total = sum((w.detach() * w.grad).abs().sum() for w in weights(model) if w.grad is not None)
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
    swap(
        modules,
        NORMS + ACTIVATIONS + (GATES if gates else ()),
        lambda m: gates(m) if isinstance(m, GATES) else identity,
    )
    with torch.no_grad():
        for m in modules:
            for p in m.parameters(recurse=False):
                p.abs_()
