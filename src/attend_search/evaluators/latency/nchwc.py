"""onnxruntime's blocked layout (NCHWc) on x86: which ops run in it, and the reorders it adds.

On a CPU with AVX2 or AVX-512, onnxruntime's last optimisation level rewrites convolutions
into a blocked layout, channels in blocks of 8 or 16 (``block``), and runs pooling,
upsampling and element-wise ops on blocked tensors as they come. Where a blocked tensor
meets an op without a blocked kernel (a global mean, a broadcast multiply, a multiply by a
constant, a ceil-mode average pooling, a matrix product, the network's output) it writes a
ReorderOutput, and a plain tensor entering a blocked op a ReorderInput: copies. A blocked
convolution also fuses more than a plain one (:mod:`.kernels`): hard-swish, and the
residual add after it (its ``Sum`` input), with an activation after that. ARM builds of
onnxruntime have no blocked layout: ``block`` 0.

The rules are onnxruntime 1.32's, read from its optimised graphs on an AVX-512 machine
(``tests/test_nchwc.py`` compares the node types, as a multiset, on the spaces' networks).
Blocked: a convolution of one group whose output channels (and input channels, from
``block`` on) are multiples of 4, a depthwise one on a multiple of 4 channels, a grouped one
whose groups' input and output channels are multiples of ``block``; pooling on a multiple
of ``block`` channels (not a ceil-mode average); upsampling of a blocked tensor by a whole
factor; an element-wise op of blocked tensors of one size and no constant; a concatenation
of blocked tensors whose channels are multiples of ``block``. A convolution of one group
with fewer input channels than ``block`` reads a plain input.

A blocked tensor's channels are padded to a multiple of ``block`` with zeros, and a blocked
op computes over them: a 24-channel tensor holds and costs 32 channels, a 24 -> 24 pointwise
convolution 32 x 32 (onnxruntime pads the weights when it reorders them). Timed alone, such
convolutions take 1.6 to 1.9x a 16 -> 16 one's time per unpadded MAC; padding says 1.78.
"""

from __future__ import annotations

import math

from ..graph.ops import CONV_OPS, FLOAT32_BYTES, NORM_OPS, POOL_OPS, Op, Trace

REORDERS = ("reorder_input", "reorder_output")  # the ops of the copies between layouts
# classes whose output has its first input's channels
_KEEP_CHANNELS = {"elementwise", "upsample", "global_pool", "copy"}


def lay_out(trace: Trace, block: int) -> tuple[Trace, frozenset[int]]:
    """The ops onnxruntime runs with a blocked layout of ``block`` channels: ``trace``'s, with
    the reorders it adds (class ``copy``), and the values it holds blocked."""
    sizes = list(trace.sizes)  # bytes of each value in plain layout: what the rules read
    held = list(trace.sizes)  # bytes as onnxruntime holds them: blocked ones padded
    ops: list[Op] = []
    blocked: set[int] = set()  # values in the blocked layout
    channels: dict[int, int] = {}
    reordered: dict[int, int] = {}  # value -> its copy in the other layout

    def to(value: int, want: bool, module: str, count: int) -> int:
        if (value in blocked) == want:
            return value
        if value not in reordered:
            sizes.append(sizes[value])
            held.append(_held(sizes[value], count, block, want))
            copy = len(sizes) - 1
            ops.append(Op(REORDERS[not want], "copy", 0, (value,), copy, 0, module))
            reordered[value] = copy
            channels[copy] = count
            if want:
                blocked.add(copy)
        return reordered[value]

    for op in trace.ops:
        runs_blocked, wants = _layout(op, blocked, channels, sizes, block)
        inputs = tuple(
            to(v, want, op.module, _channels_in(op, v, channels))
            for v, want in zip(op.inputs, wants)
        )
        channels[op.output] = _channels_out(op, channels)
        if runs_blocked:
            blocked.add(op.output)
            op = _padded_op(op, channels, block, wants[0])
            held[op.output] = _held(sizes[op.output], channels[op.output], block, True)
        ops.append(op._replace(inputs=inputs))
    outputs = {to(v, False, "output", channels.get(v, 0)) for v in trace.outputs}
    return Trace(ops, held, outputs, trace.image), frozenset(blocked)


def _padded(count: int, block: int) -> int:
    return -(-count // block) * block


def _held(plain_bytes: int, count: int, block: int, blocked: bool) -> int:
    """Bytes of a value of ``count`` channels (0: not known, not padded) in its layout."""
    return plain_bytes * _padded(count, block) // count if blocked and count else plain_bytes


def _padded_op(op: Op, channels: dict[int, int], block: int, blocked_input: bool) -> Op:
    """``op`` as it runs blocked: its work and weights over channels padded to ``block``."""
    if op.name in CONV_OPS:
        cin, cout, groups = op.channels
        if groups == cin == cout:  # depthwise
            ratio = (_padded(cout, block), cout)
        else:  # a grouped one's groups are whole blocks; a plain input is not padded
            cin_g = _padded(cin, block) if groups == 1 and blocked_input else cin
            ratio = (cin_g * _padded(cout, block), cin * cout)
        floats = op.weight_bytes // FLOAT32_BYTES  # a bias, if any, scaled alike (a few)
        return op._replace(
            work=op.work * ratio[0] // ratio[1],
            weight_bytes=floats * ratio[0] // ratio[1] * FLOAT32_BYTES,
        )
    count = channels[op.output]
    return op._replace(work=op.work * _padded(count, block) // count) if count else op


def _channels_in(op: Op, value: int, channels: dict[int, int]) -> int:
    """The channels of ``value`` as ``op`` reads it: a convolution or pooling knows its
    input's (the network's input has none recorded)."""
    if op.channels and (op.name in CONV_OPS or op.name.rstrip("_") in POOL_OPS):
        return op.channels[0]
    return channels.get(value, 0)


def _channels_out(op: Op, channels: dict[int, int]) -> int:
    if op.channels:
        return op.channels[1] if op.name in CONV_OPS else op.channels[0]
    keeps = op.op_class in _KEEP_CHANNELS or op.name in NORM_OPS
    return channels.get(op.inputs[0], 0) if keeps and op.inputs else 0  # 0: not known


def _layout(
    op: Op, blocked: set[int], channels: dict[int, int], sizes: list[int], block: int
) -> tuple[bool, tuple[bool, ...]]:
    """Does ``op`` run blocked, and must each of its inputs be blocked?"""
    if not op.inputs:
        return False, ()
    plain = False, (False,) * len(op.inputs)
    if op.name in CONV_OPS:
        if not op.channels or not conv_blocked(*op.channels, block):
            return plain
        return True, (op.channels[2] > 1 or op.channels[0] >= block,)  # few channels: plain
    if op.name.rstrip("_") in POOL_OPS:
        average = op.name.startswith("avg")
        runs = bool(op.channels) and op.channels[0] % block == 0
        runs = runs and not (average and op.ceil_mode)
        return runs, (runs,)
    if op.op_class == "upsample":  # blocked by a whole factor only
        runs = op.inputs[0] in blocked and _whole_factor(sizes[op.inputs[0]], sizes[op.output])
        return runs, (runs,)
    if op.name in NORM_OPS:  # folded into the convolution before it
        return op.inputs[0] in blocked, (op.inputs[0] in blocked,)
    if op.op_class == "elementwise":  # of activations alone, of one size
        same = len({sizes[v] for v in op.inputs}) == 1
        runs = same and not (op.weight_bytes or op.zero) and all(v in blocked for v in op.inputs)
    elif op.op_class == "concat":
        runs = all(v in blocked and channels.get(v, 0) % block == 0 for v in op.inputs)
        runs = runs and all(channels.get(v, 0) for v in op.inputs)
    else:
        return plain
    return runs, (runs,) * len(op.inputs)


def _whole_factor(before: int, after: int) -> bool:
    """Is a square upsampling from ``before`` to ``after`` bytes by a whole factor?"""
    factor = math.isqrt(after // before) if after % before == 0 else 0
    return factor > 0 and factor * factor * before == after


def conv_blocked(in_channels: int, out_channels: int, groups: int, block: int) -> bool:
    """Does onnxruntime run this convolution in its blocked layout?"""
    if groups == 1:
        return out_channels % 4 == 0 and (in_channels < block or in_channels % 4 == 0)
    if groups == in_channels == out_channels:
        return in_channels % 4 == 0
    return (in_channels // groups) % block == 0 and (out_channels // groups) % block == 0
