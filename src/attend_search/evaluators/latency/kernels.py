"""The kernels an inference runtime would run for a network: a module's read from a real
forward pass, a spec's from its walk (:mod:`..graph.walk`), which records the same ops.

Latency on a small CPU is a sum over *kernels*, not over PyTorch modules or FLOPs: a runtime
folds batch norm into the convolution before it and runs the activation in the same loop
(onnxruntime's ConvActivationFusion, XNNPACK, TFLite), so conv + BN + ReLU costs one
dispatch and one trip through memory. So the network is read op by op with real shapes,
and the ops are grouped the way runtimes fuse them.

The ATen ops of one eval-mode forward come from :mod:`..graph.traced_ops` (imported only for
a module: a spec's kernels need no PyTorch). Each tensor is tagged with the value that
produced it, so the dataflow (who consumes what) is known without keeping activations
alive.

Work ("macs") per op, one multiply-accumulate = 1 as in fvcore: convolutions and matrix
products their MACs; pooling one per window element; nearest upsampling one per output
element, bilinear four; element-wise ops and global pooling one per element read; concat
none (it only moves memory). A fused kernel's work is its first op's: folded batch norm
and fused activations ride along in the same loop. Bytes are float32: the activations a
kernel reads from other kernels, the one it writes, and the weights it reads.

Transformers: a matrix product of two activations (attention's ``q @ k^T`` and ``attn @ v``,
traced as ``bmm``) is class ``matmul``, apart from ``linear`` (activation times weights):
small batched GEMMs without packed weights run further from peak. Softmax and layer norm
are reductions with passes of their own (max, exp and sum; mean, variance and scale), and
GELU evaluates erf, so each is its own class, one unit of work per element. GELU is not
fused into the matrix product before it: onnxruntime's CPU fusions fold a bias into it
(BiasGelu), never the Gelu into the Gemm. Copies (``clone`` of a transposed tensor, what
an ONNX Transpose does, dtype casts, padding) are class ``copy``: memory only, no work.

The grouping is a runtime's: the rules above are onnxruntime's (and those of any runtime
not named here), as its optimised graph shows: activations fuse into a convolution or a
Gemm only (not into a MatMul of two activations; a ReLU after an add runs alone), SiLU runs
alone (QuickGelu), and hard-swish runs as ``x * HardSigmoid(x)``, two kernels. Both
runtimes merge identical ops without weights on one input (common subexpressions: two
edges' ReLU of one node, two columns' first pooling of the stage input). LiteRT's converter
writes another graph (read from its ``.tflite`` files): it transposes the NCHW input to
NHWC (a copy), pads a convolution whose padding is not TensorFlow's SAME with a PAD op of
its own (:func:`..graph.ops.tflite_padded`, a copy), pads a ceil-mode average pooling that
overhangs and multiplies its outputs by their windows' shares, fuses only the ReLU family
into a convolution, matrix product, add or pooling (sigmoid, SiLU and hard-swish run
alone), runs a batch norm of its own as SUB, MUL, MUL and ADD (the ADD hosting a ReLU),
writes hard-sigmoid as ReLU6(x + 3), fused where a convolution's bias takes the 3, then a
multiply by 1/6. And it folds constants:
NAS-Bench-201's ``none`` edge (a multiply by zero) and every op of constants alone leave no
kernel, an add of zero is its other input, and what only fed them is removed (a cell node
that reaches the output only through ``none``), and a multiply by one learned factor is
folded into the convolution that alone reads it. onnxruntime runs these as written.

An ATen op none of these rules knows is its own kernel of class ``unknown``, named by its
op, costed as memory traffic and a dispatch with no compute, and warned about
(:class:`UnknownOpsWarning`): never silently counted as element-wise or as zero.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ...search_space import Spec
from ..graph.ops import CONV_OPS, FLOAT32_BYTES, MATMUL_OPS, NORM_OPS, POOL_OPS, Op, Trace
from ..graph.walk import walk_spec
from .nchwc import lay_out

if TYPE_CHECKING:
    from torch import nn

    from ..model_input import Shape

OP_CLASSES = (
    "conv",
    "depthwise",
    "pointwise",
    "grouped",
    "linear",
    "matmul",
    "max_pool",
    "avg_pool",
    "upsample",
    "elementwise",
    "softmax",
    "layer_norm",
    "gelu",
    "global_pool",
    "concat",
    "copy",
    "unknown",
)

_ADD = {"add", "add_"}
_NORM_HOSTS = CONV_OPS | MATMUL_OPS

# ops that give zeros when every input is zeros (others of constants give other constants)
_ZERO_KEEPING = _ADD | POOL_OPS | {"relu", "relu_", "mul", "mul_", "mean"}
# Per runtime, the activations fused into the op before them, and which ops host them.
# onnxruntime folds Relu, Clip, Sigmoid, HardSigmoid, Tanh and LeakyRelu into a Conv or a
# Gemm (FusedConv, FusedGemm), never into a MatMul or an Add, and runs SiLU alone (as
# QuickGelu); LiteRT fuses the ReLU family (TFLite's fused
# activations) into a convolution, matrix product or add, and
# hard-sigmoid's ReLU6 into a convolution or matrix product whose bias takes its + 3. Its
# pooling ops host the ReLU family too, and so does a batch norm that follows no
# convolution (SUB, MUL, MUL and ADD there: the ADD hosts it).
_FUSED_ACTIVATIONS = {
    "onnxruntime": dict.fromkeys(
        ("relu", "hardtanh", "clamp", "sigmoid", "hardsigmoid", "tanh", "leaky_relu"),
        CONV_OPS | {"addmm"},
    ),
    "litert": {
        **dict.fromkeys(("relu", "hardtanh", "clamp"), _NORM_HOSTS | _ADD | NORM_OPS | POOL_OPS),
        "hardsigmoid": _NORM_HOSTS,
    },
}
# a convolution in onnxruntime's blocked layout also runs hard-swish in its epilogue, and
# after an add it fused, only these
_BLOCKED_ACTIVATIONS = {*_FUSED_ACTIVATIONS["onnxruntime"], "hardswish"}
_AFTER_SUM = {"relu", "sigmoid", "tanh"}


@dataclass(frozen=True)
class Kernel:
    """One runtime kernel: ops fused into a single dispatch and a single pass over memory."""

    name: str  # the module (common prefix of the modules) it runs in
    op_class: str  # one of OP_CLASSES, from its first op
    ops: tuple[str, ...]  # ATen ops fused into it, e.g. (convolution, native_batch_norm, relu_)
    macs: int
    bytes: int  # activations in + out, plus weights, float32
    weight_bytes: int = 0  # of which weights


class UnknownOpsWarning(UserWarning):
    """A traced network has ops the latency model has no class for (see the module docstring)."""


def extract_kernels(
    model_or_spec: nn.Module | Spec,
    input_shape: Shape | None = None,
    runtime: str = "onnxruntime",
    nchwc_block: int = 0,
) -> list[Kernel]:
    """The fused kernels of one batch-1 inference on ``runtime``, in execution order
    (``litert``'s, or else onnxruntime's: see the module docstring); ``nchwc_block``:
    onnxruntime's blocked layout on this CPU (:mod:`.nchwc`; 0, ARM's, for none).

    A spec's come from its walk (:mod:`..graph.walk`), nothing built, the same kernels as its
    built model's trace hundreds of times faster; any other module is traced, and ops of no
    known class are warned about by name.
    """
    if isinstance(model_or_spec, Spec) and (spec := _spec_at(model_or_spec, input_shape)):
        return _fuse(_walked(spec), runtime, nchwc_block)
    from ..graph.traced_ops import trace_ops  # PyTorch: only for a network that is run

    kernels = _fuse(trace_ops(model_or_spec, input_shape), runtime, nchwc_block)
    unknown = Counter(f"{k.ops[0]} in {k.name}" for k in kernels if k.op_class == "unknown")
    if unknown:
        warnings.warn(
            UnknownOpsWarning(
                "ops the latency model does not know, costed as memory traffic and a dispatch "
                "only (class 'unknown'): "
                + ", ".join(f"{op} (x{n})" if n > 1 else op for op, n in unknown.items())
            ),
            stacklevel=2,
        )
    return kernels


def _spec_at(spec: Spec, shape: Shape | None) -> Spec | None:
    """``spec`` with its input size set by a batch-1 square ``shape`` (none: its own), or None
    for a shape that no spec describes (a batch, another channel count, a rectangle)."""
    if shape is None:
        return spec
    batch, channels, *sides = shape
    if batch == 1 and channels == spec.in_channels and len(sides) == 2 and sides[0] == sides[1]:
        return replace(spec, input_size=sides[0])
    return None


def _walked(spec: Spec) -> Trace:
    """The walk's ops, recorded in the shape of a trace's (:class:`Op`'s fields)."""
    walk = walk_spec(spec)
    return Trace(walk.ops, walk.sizes, {walk.output}, image=True)


# --------------------------------------------------------------------------- fusion
def _fuse(trace: Trace, runtime: str = "onnxruntime", nchwc_block: int = 0) -> list[Kernel]:
    """Group ops into kernels: an op joins the kernel whose output it alone consumes."""
    trace, layout = _as_run(trace, runtime), frozenset()
    if runtime != "litert":
        if nchwc_block and runtime == "onnxruntime":
            trace, layout = lay_out(trace, nchwc_block)
        trace = _split_hardswish(trace, layout)
    activations = _FUSED_ACTIVATIONS.get(runtime, _FUSED_ACTIVATIONS["onnxruntime"])
    consumers = Counter(v for op in trace.ops for v in op.inputs)
    consumers.update(trace.outputs)
    groups: list[list[Op]] = []
    open_tails: dict[int, list[Op]] = {}  # output value -> the kernel that wrote it
    for op in trace.ops:
        # the op's first input, or a residual add's either (a blocked convolution's Sum)
        for value in op.inputs[: 2 if op.name in _ADD and layout else 1]:
            group = open_tails.get(value)
            if (
                group is not None
                and consumers[value] == 1
                and _epilogue(group, op, activations, layout)
            ):
                del open_tails[value]
                group.append(op)
                break
        else:
            group = [op]
            groups.append(group)
        open_tails[op.output] = group
    sizes = trace.sizes
    if runtime == "litert":
        groups, sizes = _norms_as_run_by_litert(groups, sizes)
    return [_kernel(group, sizes) for group in groups]


def _norms_as_run_by_litert(
    groups: list[list[Op]], sizes: list[int]
) -> tuple[list[list[Op]], list[int]]:
    """LiteRT runs a batch norm that follows no convolution as the converter writes it out,
    once trained: subtract the mean, multiply by the inverse deviation and by the weight,
    add the bias (an activation fused into the ADD). The groups so split, and the sizes
    with the values between."""
    sizes, split = list(sizes), []
    for group in groups:
        norm = group[0]
        if norm.name not in NORM_OPS:
            split.append(group)
            continue
        between = range(len(sizes), len(sizes) + 3)
        sizes += [sizes[norm.output]] * 3
        values = (norm.inputs[0], *between, norm.output)
        vector = norm.weight_bytes // 4  # one of the norm's four each
        for name, read, written in zip(("sub", "mul", "mul", "add"), values, values[1:]):
            op = Op(name, "elementwise", norm.work, (read,), written, vector, norm.module)
            split.append([op])
        split[-1] += group[1:]
    return split, sizes


def _as_run(trace: Trace, runtime: str) -> Trace:
    """The ops the runtime runs for the traced ones. Both runtimes run one op for ops without
    weights that repeat another on the same input (common subexpressions: two edges' ReLU
    of one node, two columns' first pooling of the stage input). LiteRT's converter also
    writes (the module docstring) the input's transpose; PAD before a convolution or pooling
    that needs one; the multiply after hard-sigmoid and after a padded average pooling; and
    nothing for what folds to a constant (a multiply by zero, any op of constants alone), an
    add of zero, or what only feeds these. onnxruntime folds none of these."""
    litert = runtime == "litert"
    sizes, ops, renamed, seen = list(trace.sizes), [], {}, {}
    zeros: set[int] = set()  # values folded to constant zeros
    constants: set[int] = set()  # values folded to other constants

    def copy(name: str, source: int, nbytes: int, module: str) -> int:
        if (name, source, nbytes) not in seen:
            sizes.append(nbytes)
            ops.append(Op(name, "copy", 0, (source,), len(sizes) - 1, 0, module))
            seen[name, source, nbytes] = len(sizes) - 1
        return seen[name, source, nbytes]

    if litert and trace.image:
        renamed[0] = copy("permute", 0, sizes[0], "input")
    for op in trace.ops:
        inputs = tuple(renamed.get(v, v) for v in op.inputs)
        if litert and (op.zero or (op.name in ("mul", "mul_") and zeros.intersection(inputs))):
            zeros.add(op.output)
            continue
        if inputs and all(v in zeros or v in constants for v in inputs):
            keeps = op.name in _ZERO_KEEPING and set(inputs) <= zeros
            (zeros if keeps else constants).add(op.output)
            continue
        if op.name in _ADD and zeros.intersection(inputs):
            inputs = tuple(v for v in inputs if v not in zeros)  # x + 0 is x
            if len(inputs) == 1:
                renamed[op.output] = inputs[0]
                continue
        # what tells apart ops of one name on one input (a 2x2 and a 4x4 pooling do the same
        # work; a multiply by zero and by a scale); scalar arguments are not recorded
        key = (op.name, inputs, op.work, sizes[op.output], op.pad, op.zero)
        if not op.weight_bytes and key in seen:
            renamed[op.output] = seen[key]
            continue
        seen[key] = op.output
        if not litert:
            ops.append(op._replace(inputs=inputs))
            continue
        if op.pad:
            inputs = (
                copy("constant_pad_nd", inputs[0], op.pad * FLOAT32_BYTES, op.module),
                *inputs[1:],
            )
        output = op.output
        if op.name == "hardsigmoid" or op.pad and op.op_class == "avg_pool":
            sizes.append(sizes[op.output])  # what the multiply then reads
            output = len(sizes) - 1
        ops.append(Op(op.name, op.op_class, op.work, inputs, output, op.weight_bytes, op.module))
        if output != op.output:
            ops.append(
                Op(
                    "mul",
                    "elementwise",
                    sizes[output] // FLOAT32_BYTES,
                    (output,),
                    op.output,
                    0,
                    op.module,
                )
            )
    outputs = {renamed.get(v, v) for v in trace.outputs}
    if litert:
        ops = _scales_folded(ops, outputs)
    return Trace(_live(ops, outputs) if outputs else ops, sizes, outputs)


def _scales_folded(ops: list[Op], outputs: set[int]) -> list[Op]:
    """LiteRT's converter folds a multiply by one learned factor into the convolution that
    alone reads its result (the convolution's weights take the factor): the ops without
    such multiplies. A convolution behind a PAD of its own reads the PAD, and keeps it."""
    consumers = Counter(v for op in ops for v in op.inputs)
    consumers.update(outputs)
    producers = {op.output: op for op in ops}
    folded = {}
    for op in ops:
        scale = producers.get(op.inputs[0]) if op.name in CONV_OPS else None
        if (
            scale is not None
            and scale.name in ("mul", "mul_")
            and len(scale.inputs) == 1
            and scale.weight_bytes == FLOAT32_BYTES
            and consumers[scale.output] == 1
        ):
            folded[scale.output] = scale.inputs[0]
    return [
        op._replace(inputs=tuple(folded.get(v, v) for v in op.inputs))
        for op in ops
        if op.output not in folded
    ]


def _split_hardswish(trace: Trace, blocked: frozenset[int]) -> Trace:
    """onnxruntime runs hard-swish as ``x * HardSigmoid(x)``, two kernels, but where a
    convolution in its ``blocked`` layout (:mod:`.nchwc`) takes it into its epilogue."""
    sizes, ops, hosts = list(trace.sizes), [], set()  # hosts: what such a convolution wrote
    consumers = Counter(v for op in trace.ops for v in op.inputs)
    for op in trace.ops:
        if (op.name in CONV_OPS and op.output in blocked) or (
            op.name in NORM_OPS and op.inputs[0] in hosts and consumers[op.inputs[0]] == 1
        ):
            hosts.add(op.output)
        if op.name.rstrip("_") == "hardswish" and consumers[op.inputs[0]] > 1:
            hosts.discard(op.inputs[0])
        if op.name.rstrip("_") != "hardswish" or op.inputs[0] in hosts:
            ops.append(op)
            continue
        sizes.append(sizes[op.output])
        gate = len(sizes) - 1
        ops.append(op._replace(name="hardsigmoid", output=gate))
        ops.append(op._replace(name="mul", inputs=(*op.inputs, gate)))
    return Trace(ops, sizes, trace.outputs, trace.image)


def _live(ops: list[Op], outputs: set[int]) -> list[Op]:
    """``ops`` without those whose values nothing reads on the way to ``outputs`` (the
    branches a folded constant cut off)."""
    needed, kept = set(outputs), []
    for op in reversed(ops):
        if op.output in needed:
            needed.update(op.inputs)
            kept.append(op)
    return kept[::-1]


def _epilogue(
    group: list[Op], op: Op, activations: dict[str, set[str]], blocked: frozenset[int]
) -> bool:
    """Can ``op`` run in the epilogue of the kernel ``group`` (reading its output)? The
    epilogue is batch norms after a convolution or matrix product (folded into its weights,
    a second one too), then one activation of ``activations``, after a host it names (the
    batch norm's or its own anchor). A convolution in onnxruntime's ``blocked`` layout
    (:mod:`.nchwc`) also takes a blocked add of another tensor before its activation, and
    hard-swish among its activations."""
    anchor, name = group[0].name, op.name.rstrip("_")
    tail = group[-1].output
    in_blocked = anchor in CONV_OPS and group[0].output in blocked
    if in_blocked and op.name in _ADD and len(op.inputs) == 2 and tail in op.inputs:
        return op.output in blocked and all(o.name in NORM_OPS for o in group[1:])
    if len(op.inputs) != 1 or op.inputs[0] != tail:
        return False
    if in_blocked and group[-1].name in _ADD:
        return name in _AFTER_SUM
    if in_blocked and name in _BLOCKED_ACTIVATIONS:
        return len(group) == 1 or group[-1].name in NORM_OPS
    if name in activations:
        return anchor in activations[name] and (len(group) == 1 or group[-1].name in NORM_OPS)
    return (
        op.name in NORM_OPS and anchor in _NORM_HOSTS and all(o.name in NORM_OPS for o in group[1:])
    )


def _kernel(group: list[Op], sizes: list[int]) -> Kernel:
    """The kernel reads its anchor's inputs, and what an epilogue op reads besides the op
    before it (a fused add's other tensor)."""
    anchor, last = group[0], group[-1]
    activations = sum(sizes[v] for v in anchor.inputs) + sizes[last.output]
    activations += sum(
        sizes[v] for before, op in zip(group, group[1:]) for v in op.inputs if v != before.output
    )
    if last is anchor:
        return Kernel(
            anchor.module,
            anchor.op_class,
            (anchor.name,),
            anchor.work,
            activations + anchor.weight_bytes,
            anchor.weight_bytes,
        )
    weights = sum(op.weight_bytes for op in group)
    return Kernel(
        _common_prefix([op.module for op in group]),
        anchor.op_class,
        tuple(op.name for op in group),
        anchor.work,
        activations + weights,
        weights,
    )


def _common_prefix(names: list[str]) -> str:
    """The longest run of leading dotted segments the names share, else the first name."""
    prefix = names[0]
    while prefix and not all(n == prefix or n.startswith(prefix + ".") for n in names):
        prefix = prefix.rpartition(".")[0]
    return prefix or names[0]
