"""A spec's network op by op, from the spec alone: the one walk behind analytic cost,
activation memory and latency kernels.

The walk mirrors builder.py and blocks.py and records each op as a trace of the built
network in eval mode shows it (:mod:`.trace`, torch 2.13): the ATen op, the module
path it runs in, the values it reads and makes, its MACs (the rules of :mod:`..cost.analytic`), its
parameters and the weights it reads. :mod:`..cost.analytic` sums parameters and MACs and replays the
values for the peak memory; :mod:`..latency.kernels` fuses the ops into runtime kernels. The tests
hold every figure to the traced one.
"""

from __future__ import annotations

import math

from ...search_space import Spec
from ...search_space.nb201_cell import EDGES
from ...search_space.spec import Attention, BlockLayout, conv_out
from .ops import FLOAT32_BYTES, Op, conv_class, tflite_padded, tflite_pool_padded

# Element-wise ops: the ATen op a trace records and MACs per output element. The builder's
# activations run in place (relu_), its gates do not, nor NAS-Bench-201's ReLUs (relu_copy),
# whose input feeds other edges.
ELEMENTWISE = {
    "batch_norm": ("native_batch_norm", 2),
    "relu": ("relu_", 0),
    "relu_copy": ("relu", 0),
    "relu6": ("hardtanh_", 0),
    "hswish": ("hardswish_", 1),
    "silu": ("silu_", 1),
    "sigmoid": ("sigmoid", 1),
    "hardsigmoid": ("hardsigmoid", 1),
    "mul": ("mul", 1),
    "add": ("add", 1),
}
UPSAMPLE = {"nearest": ("upsample_nearest2d", 1), "bilinear": ("upsample_bilinear2d", 4)}
_POOL = {"max": ("max_pool2d_with_indices", "max_pool"), "avg": ("avg_pool2d", "avg_pool")}
_CONV, _LINEAR, _GLOBAL_POOL, _CONCAT = "convolution", "addmm", "mean", "cat"


def walk_spec(spec: Spec) -> SpecWalk:
    walk = SpecWalk(spec.in_channels * spec.input_size**2)
    walk.output = walk.network(spec.canonical())
    return walk


class SpecWalk:
    """The ops (:class:`Op`) in forward order and the byte size of every value."""

    def __init__(self, input_elements: int):
        self.sizes = [input_elements * FLOAT32_BYTES]
        self.ops: list[Op] = []
        self.output = 0

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    @property
    def macs(self) -> int:
        """cost.py's MACs (its table of rules)."""
        return sum(op.macs for op in self.ops)

    def op(
        self,
        aten: str,
        op_class: str,
        module: str,
        inputs: tuple[int, ...],
        elements: int,
        macs: int = 0,
        params: int = 0,
        weights: int | None = None,
        elementwise: bool = False,
        pad: int = 0,
        zero: bool = False,
        channels: tuple[int, ...] = (),
        ceil_mode: bool = False,
    ) -> int:
        """Record an op making a new value of ``elements`` float32s; returns that value.
        ``weights``: the elements of parameters and buffers it reads, where not ``params``.
        A value read twice (a cell's sum of two skips of one node) is one input, as traced.
        ``channels`` and ``ceil_mode`` as :class:`Op` has them."""
        inputs = tuple(dict.fromkeys(inputs))
        self.sizes.append(elements * FLOAT32_BYTES)
        output = len(self.sizes) - 1
        work = elements if op_class == "elementwise" else macs
        weight_bytes = (params if weights is None else weights) * FLOAT32_BYTES
        self.ops.append(
            Op(
                aten,
                op_class,
                work,
                inputs,
                output,
                weight_bytes,
                module,
                pad,
                macs,
                params,
                elementwise,
                zero,
                channels,
                ceil_mode,
            )
        )
        return output

    def pointwise(
        self,
        rule: str,
        module: str,
        *inputs: int,
        elements: int,
        params: int = 0,
        weights: int | None = None,
        zero: bool = False,
    ) -> int:
        aten, macs = ELEMENTWISE[rule]
        return self.op(
            aten,
            "elementwise",
            module,
            inputs,
            elements,
            macs * elements,
            params,
            weights,
            elementwise=True,
            zero=zero,
        )

    def conv(
        self,
        x: int,
        module: str,
        cin: int,
        cout: int,
        kernel: int,
        size: int,
        groups: int = 1,
        bias: bool = False,
        stride: int = 1,
        buffer: bool = False,
    ) -> int:
        """A square convolution padded by ``kernel // 2``; ``size``: the output side.
        ``buffer``: its filter is a fixed buffer (the blur's), not parameters."""
        weights = cout * cin // groups * kernel**2
        side = math.isqrt(self.sizes[x] // FLOAT32_BYTES // cin)
        padded = tflite_padded((side,), (kernel,), (stride,), (kernel // 2,))
        return self.op(
            _CONV,
            conv_class(cin, groups, kernel**2),
            module,
            (x,),
            cout * size**2,
            weights * size**2,
            0 if buffer else weights + bias * cout,
            weights if buffer else None,
            pad=cin * padded[0] ** 2 if padded else 0,
            channels=(cin, cout, groups),
        )

    def conv_bn_act(
        self,
        x: int,
        module: str,
        cin: int,
        cout: int,
        kernel: int,
        size: int,
        groups: int = 1,
        act: str | None = "relu",
        stride: int = 1,
    ) -> int:
        """blocks.ConvBNAct."""
        x = self.conv(x, f"{module}.conv", cin, cout, kernel, size, groups, stride=stride)
        x = self.pointwise(
            "batch_norm",
            f"{module}.bn",
            x,
            elements=cout * size**2,
            params=2 * cout,
            weights=4 * cout,
        )
        if act in (None, "none"):
            return x
        return self.pointwise(act, f"{module}.act", x, elements=cout * size**2)

    def strided(
        self,
        x: int,
        module: str,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        downsample: str,
        size: int,
        groups: int = 1,
        act: str = "relu",
    ) -> int:
        """blocks.strided; ``size``: the output side. The blur's fixed kernel is a buffer."""
        if stride > 1 and downsample == "aads":
            x = self.conv(x, f"{module}.blur", cin, cin, 3, size, cin, stride=stride, buffer=True)
            module, stride = f"{module}.conv", 1
        return self.conv_bn_act(x, module, cin, cout, kernel, size, groups, act, stride)

    def linear(self, x: int, module: str, fin: int, fout: int) -> int:
        return self.op(_LINEAR, "linear", module, (x,), fout, fin * fout, fin * fout + fout)

    def global_pool(self, x: int, module: str, channels: int, size: int) -> int:
        return self.op(_GLOBAL_POOL, "global_pool", module, (x,), channels, channels * size**2)

    def pool(
        self,
        x: int,
        module: str,
        kind: str,
        channels: int,
        window: int,
        size: int,
        ceil: bool = True,
    ) -> int:
        """Max or average pooling of a ``window`` x ``window`` window; ``size``: the output side.
        ``ceil``: strided by its window in ceil mode; else NAS-Bench-201's (stride 1, padded)."""
        aten, op_class = _POOL[kind]
        side = math.isqrt(self.sizes[x] // FLOAT32_BYTES // channels)
        padded = ceil and kind == "avg" and tflite_pool_padded((side,), (window,), (window,))
        return self.op(
            aten,
            op_class,
            module,
            (x,),
            channels * size**2,
            macs=window**2 * channels * size**2,
            pad=channels * padded[0] ** 2 if padded else 0,
            channels=(channels,),
            ceil_mode=ceil,
        )

    def network(self, spec: Spec) -> int:
        """builder.Backbone (a canonical spec: ``residual`` says where a residual is used)."""
        stem = spec.stem
        x = self.strided(
            0,
            "stem",
            spec.in_channels,
            stem.out,
            stem.kernel,
            stem.stride,
            stem.downsample,
            spec.stem_size,
            act=stem.act,
        )
        layouts = spec.blocks()
        for s, stage in enumerate(spec.stages):
            module = f"stages.{s}"
            outs = []
            for c in range(stage.columns):
                column = f"{module}.columns.{c}" if stage.columns > 1 else module
                y = x
                for b in range(len(stage.blocks)):
                    layout = next(layouts)
                    y = self.block(y, f"{column}.{b}", layout)
                outs.append(y)
            elements = layout.block.out * layout.out_size**2  # of the stage's last block
            if stage.merge == "concat":
                x = self.op(
                    _CONCAT,
                    "concat",
                    module,
                    tuple(outs),
                    elements * len(outs),
                    channels=(layout.block.out * len(outs),),
                )
            else:
                x = outs[0]
                for y in outs[1:]:
                    x = self.pointwise("add", module, x, y, elements=elements)
        return self.head(x, spec)

    def head(self, x: int, spec: Spec) -> int:
        head, size = spec.head, spec.final_size
        width = spec.features
        if head.channels:
            x = self.conv_bn_act(
                x,
                "head_conv",
                spec.stage_out(len(spec.stages) - 1),
                head.channels,
                1,
                size,
                act=head.act,
            )
        elif head.norm:
            x = self.pointwise(
                "batch_norm",
                "head_conv.bn",
                x,
                elements=width * size**2,
                params=2 * width,
                weights=4 * width,
            )
            x = self.pointwise(head.act, "head_conv.act", x, elements=width * size**2)
        x = self.global_pool(x, "pool.0", width, size)
        if head.hidden:
            x = self.linear(x, "classifier.hidden", width, head.hidden)
            x = self.pointwise(head.hidden_act, "classifier.act", x, elements=head.hidden)
            width = head.hidden
        return self.linear(x, "classifier.fc", width, spec.num_classes)

    def block(self, x: int, module: str, layout: BlockLayout) -> int:
        """blocks.CondenserBlock, DepthwiseSeparable and InvertedResidual (NAS-Bench-201's
        blocks: :meth:`cell`, :meth:`resnet_basic`)."""
        b, cin, size, out = layout.block, layout.in_channels, layout.in_size, layout.out_size
        if b.type == "cell":
            return self.cell(x, module, cin, b.edges, size)
        if b.type == "resnet_basic":
            return self.resnet_basic(x, module, cin, b.out, b.stride, out)
        if b.type == "projection":  # blocks.Projection
            return self.conv_bn_act(x, module, cin, b.out, 1, out, act=None, stride=b.stride)
        body = f"{module}.body"
        y, width = x, cin
        if b.attention is not None:
            y = self.attention(y, f"{body}.attention", cin, b.attention, size)
        if b.type == "inverted_residual":
            if b.mid != cin:
                y = self.conv_bn_act(y, f"{body}.expand", cin, b.mid, 1, size, act=b.act)
            width = b.mid
        y = self.strided(
            y, f"{body}.dw", width, width, b.kernel, b.stride, b.downsample, out, width, b.act
        )
        if b.se:
            y = self.squeeze_excite(y, f"{body}.se", width, b.se, b.se_gate, out)
        last = f"{body}.project" if b.type == "inverted_residual" else f"{body}.pw"
        y = self.conv_bn_act(
            y, last, width, b.out, 1, out, act=None if b.type == "inverted_residual" else b.act
        )
        return self.pointwise("add", module, x, y, elements=b.out * out**2) if b.residual else y

    def relu_conv_bn(
        self, x: int, module: str, cin: int, cout: int, kernel: int, size: int, stride: int = 1
    ) -> int:
        """blocks.ReLUConvBN; ``size``: the output side (the ReLU runs on the input's)."""
        x = self.pointwise("relu_copy", f"{module}.act", x, elements=self.sizes[x] // FLOAT32_BYTES)
        return self.conv_bn_act(x, module, cin, cout, kernel, size, act=None, stride=stride)

    def cell(self, x: int, module: str, channels: int, edges: tuple[str, ...], size: int) -> int:
        """blocks.Cell: node i sums its edges' outputs, in edge order."""
        nodes, n = [x], channels * size**2
        for node in (1, 2, 3):
            total = None
            for k, (op, (i, j)) in enumerate(zip(edges, EDGES)):
                if i != node:
                    continue
                edge = f"{module}.edges.{k}"
                if op == "none":
                    y = self.pointwise("mul", edge, nodes[j], elements=n, zero=True)
                elif op == "skip_connect":
                    y = nodes[j]
                elif op == "avg_pool_3x3":
                    y = self.pool(nodes[j], edge, "avg", channels, 3, size, ceil=False)
                else:
                    y = self.relu_conv_bn(
                        nodes[j], edge, channels, channels, 1 if op == "nor_conv_1x1" else 3, size
                    )
                total = y if total is None else self.pointwise("add", module, total, y, elements=n)
            nodes.append(total)
        return nodes[3]

    def resnet_basic(self, x: int, module: str, cin: int, cout: int, stride: int, size: int) -> int:
        """blocks.ResNetBasic; ``size``: the output side."""
        shortcut = x
        if stride > 1:
            shortcut = self.pool(x, f"{module}.shortcut.pool", "avg", cin, stride, size)
        if cin != cout:
            shortcut = self.conv(shortcut, f"{module}.shortcut.conv", cin, cout, 1, size)
        y = self.relu_conv_bn(x, f"{module}.conv_a", cin, cout, 3, size, stride)
        y = self.relu_conv_bn(y, f"{module}.conv_b", cout, cout, 3, size)
        return self.pointwise("add", module, shortcut, y, elements=cout * size**2)

    def attention(self, x: int, module: str, channels: int, att: Attention, size: int) -> int:
        """blocks.AttentionCondenser."""
        a, cin, side = x, channels, size
        for i in range(1, att.stages + 1):
            side = conv_out(side, att.factor)  # ceil mode, kernel = stride = factor
            a = self.pool(a, f"{module}.condense.condense{i}", att.condense, cin, att.factor, side)
            embed = f"{module}.condense.embed{i}"
            a = self.conv_bn_act(
                a, f"{embed}.spatial", cin, att.embed, att.kernel, side, att.groups
            )
            a = self.conv_bn_act(a, f"{embed}.point", att.embed, att.embed, 1, side)
            cin = att.embed
        a = self.conv(a, f"{module}.expand", att.embed, channels, 1, side, bias=True)
        n = channels * size**2
        aten, macs = UPSAMPLE[att.expand]
        a = self.op(aten, "upsample", module, (a,), n, macs * n)  # not element-wise
        a = self.pointwise(
            "mul", module, x, self.pointwise(att.gate, f"{module}.gate", a, elements=n), elements=n
        )
        a = self.pointwise("mul", module, a, elements=n, params=1)  # the learned scale
        return self.pointwise("add", module, x, a, elements=n) if att.skip else a

    def squeeze_excite(
        self, x: int, module: str, channels: int, squeeze: int, gate: str, size: int
    ) -> int:
        """blocks.SqueezeExcite."""
        s = self.global_pool(x, f"{module}.pool", channels, size)
        s = self.conv(s, f"{module}.fc1", channels, squeeze, 1, 1, bias=True)
        s = self.pointwise("relu", f"{module}.act", s, elements=squeeze)
        s = self.conv(s, f"{module}.fc2", squeeze, channels, 1, 1, bias=True)
        s = self.pointwise(gate, f"{module}.gate", s, elements=channels)
        return self.pointwise("mul", module, x, s, elements=channels * size**2)
