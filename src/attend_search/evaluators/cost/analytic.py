"""Cost of a network: parameters, MACs and peak activation memory, measured or from the spec.

Two counters that agree exactly on every spec (the tests hold them to it):

- :func:`.traced.fvcore_cost` traces the real module with fvcore (any ``nn.Module``
  works), as :func:`.traced.peak_activation_bytes` traces its memory: the PyTorch side,
  in a module of its own;
- :func:`analytic_cost` does the arithmetic on the :class:`Spec` alone (the walk of
  :mod:`..graph.walk`, which also gives the latency kernels), hundreds of times faster, for
  the explorer's inner loop and for constraints checked before anything is built.

MACs (batch 1; one multiply-accumulate counts 1, fvcore's convention). On small CPUs gating,
resampling and pooling cost real time, so they are counted, each by a declared rule:

=======================================================  =====================================
op                                                       MACs
=======================================================  =====================================
convolution (grouped, depthwise; bias free)              (in / groups) x k x k per output
                                                         element (fvcore)
AADS blur: a depthwise 3x3 convolution, fixed kernel     9 per output element (fvcore's conv)
linear (bias free)                                       in_features per output element (fvcore)
batch norm, eval mode (per-channel affine)               2 per element (fvcore)
relu, relu6                                              0: a clamp, fused into the producer
                                                         (fvcore ignores relu)
hswish, silu                                             1 per element
sigmoid, hardsigmoid gates                               1 per element
mul: attention and SE gating, the learned scalar scale   1 per output element
add: residual, condenser skip, column merge              1 per output element
max / avg pooling (condensation, ceil mode)              k x k per output element
adaptive avg pooling (SE squeeze, global pool)           1 per input element (fvcore)
nearest upsampling                                       1 per output element (fvcore)
bilinear upsampling                                      4 per output element (fvcore)
concat, flatten, views, dropout (eval)                   0: data movement (fvcore ignores them)
=======================================================  =====================================

Other ops of a foreign module count 0, as in fvcore, without a warning:
``flop_analysis(...).unsupported_ops()`` lists them. Parameters: ``sum(p.numel() for p in
model.parameters())``; buffers (BN statistics, the blur kernel) are not counted.

Peak activation memory (bytes, float32): the forward pass runs its ops one at a time, in the
module's order. A tensor is live from the op that makes it to the last op that reads it (the
network output to the end); the network input counts, it is in memory for the first layer.
Views share their base's buffer. An element-wise op (activation, eval batch norm, gate, mul,
add) writes over an input of the output's size that dies at that op, as in-place activations
do in PyTorch and inference runtimes' memory planners do for any element-wise op; so in-place
and out-of-place forms of a network give one figure. The peak is the largest sum of the
buffers live while one op runs, its inputs and output included. Weights and buffers are not
activations; tensors no op reads (max-pool indices, batch norm's saved statistics in eager
PyTorch) are not counted, nor is workspace inside an op (im2col).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import accumulate

from ...search_space import Spec
from ..graph.walk import walk_spec

# One op of a forward pass: the values it reads, the values it makes, and whether it is
# element-wise. Values are numbered tensors (0 is the network input) with sizes in bytes.
ValueOp = tuple[tuple[int, ...], tuple[int, ...], bool]


def peak_bytes(sizes: Sequence[int], ops: Sequence[ValueOp], outputs: Iterable[int]) -> int:
    """Largest sum of live buffers over the steps of ``ops`` (the model in the docstring)."""
    last = {v: step for step, (ins, _, _) in enumerate(ops) for v in ins}
    last.update({v: len(ops) for v in outputs})
    buffer = {0: 0}  # value -> the value that allocated its buffer
    span = {0: [0, last[0]]}  # buffer -> first and last step it is live
    for step, (ins, made, elementwise) in enumerate(ops):
        dying = [v for v in ins if last[v] == step] if elementwise else []
        for v in (v for v in made if v in last):  # values nothing reads are not activations
            reuse = next((d for d in dying if sizes[d] == sizes[v]), None)
            if reuse is None:
                buffer[v], span[v] = v, [step, last[v]]
            else:
                dying.remove(reuse)
                buffer[v] = buffer[reuse]
                span[buffer[v]][1] = last[v]
    change = [0] * (len(ops) + 2)
    for b, (first, end) in span.items():
        change[first] += sizes[b]
        change[end + 1] -= sizes[b]
    return max(accumulate(change))


# --------------------------------------------------------------------------- analytic
def analytic_cost(spec: Spec) -> dict[str, int]:
    """``{"params", "macs", "peak_activation_bytes"}`` from the spec alone, nothing built:
    exactly what :func:`.traced.fvcore_cost`, the built model and
    :func:`.traced.peak_activation_bytes` give."""
    walk = walk_spec(spec)
    ops = [(op.inputs, (op.output,), op.elementwise) for op in walk.ops]
    return {
        "params": walk.params,
        "macs": walk.macs,
        "peak_activation_bytes": peak_bytes(walk.sizes, ops, [walk.output]),
    }
