"""NAS-Bench-201 (Dong and Yang, ICLR 2020): its cell notation, isomorphism and skeleton.

A cell has four nodes; node ``i`` sums ``op(node j)`` over ``j < i`` and node 3 is the output.
Its six edges are kept in the benchmark's order: ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``, the
order of the arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
"""

from __future__ import annotations

import re

from ..errors import SpecError
from .spec import Block, Head, Spec, Stage, Stem

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))     # (node, input) per edge
CELLS_PER_STAGE = 5
WIDTHS = (16, 32, 64)

_ARCH = re.compile(r"^\|(\w+)~0\|\+\|(\w+)~0\|(\w+)~1\|\+\|(\w+)~0\|(\w+)~1\|(\w+)~2\|$")


def parse_arch(arch: str) -> tuple[str, ...]:
    """The six edge ops of an NB201 arch string, in :data:`EDGES` order."""
    match = _ARCH.match(arch.strip())
    if not match:
        raise SpecError(f"not a NAS-Bench-201 arch string: {arch!r} (expected "
                        f"|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
    edges = match.groups()
    for op in edges:
        if op not in OPS:
            raise SpecError(f"unknown NAS-Bench-201 op {op!r} in {arch!r}; known: {', '.join(OPS)}")
    return edges


def arch_string(edges: tuple[str, ...]) -> str:
    """The NB201 arch string of a cell's six edges (the inverse of :func:`parse_arch`)."""
    nodes = ["|".join(f"{op}~{j}" for op, (i, j) in zip(edges, EDGES) if i == node)
             for node in (1, 2, 3)]
    return "+".join(f"|{n}|" for n in nodes)


def cell_form(edges: tuple[str, ...]) -> str:
    """A string equal for isomorphic cells: NB201's ``Structure.to_unique_str(consider_zero=
    True)``, by which its 15,625 cells form 6,466 classes.

    A node is written as the sorted sum of its inputs: ``none``, or any op on a zero node,
    contributes zero (``#``); ``skip_connect`` passes its input's form through; any other op
    is ``(input)@op``. So ops that cannot reach the output, and the order of a node's inputs,
    do not matter. As in the benchmark, a ``#`` stays in its sum (``#+(0)@op`` is not
    ``(0)@op``), so the classes are the benchmark's, not every functional equivalence; and a
    convolution on a zero node counts as zero, though it outputs its batch norm's shift.
    """
    nodes = {0: "0"}
    for node in (1, 2, 3):
        terms = []
        for op, (i, j) in zip(edges, EDGES):
            if i != node:
                continue
            if op == "none" or nodes[j] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[j])
            else:
                terms.append(f"({nodes[j]})@{op}")
        nodes[node] = "+".join(sorted(terms))
    return nodes[3]


def nb201_spec(arch: str | tuple[str, ...], num_classes: int = 10, input_size: int = 32) -> Spec:
    """The benchmark's network around a cell (an arch string, or six edge ops).

    Skeleton: a 3x3 convolution stem of 16 channels with batch norm (no activation: every
    cell edge starts with its own ReLU); three stages of five cells at 16, 32 and 64
    channels, the second and third opened by a residual reduction block; then batch norm,
    ReLU, global pooling and the classifier. 1,531,546 parameters with all-``nor_conv_3x3``
    cells at 10 classes, 73,306 with all-``none``, as published.
    """
    edges = parse_arch(arch) if isinstance(arch, str) else tuple(arch)
    if len(edges) != len(EDGES) or not set(edges) <= set(OPS):
        raise SpecError(f"a cell is six of {', '.join(OPS)}; got {edges}")
    stages = []
    for s, width in enumerate(WIDTHS):
        cells = tuple(Block("cell", out=width, edges=edges) for _ in range(CELLS_PER_STAGE))
        reduction = (Block("resnet_basic", out=width, stride=2),) if s else ()
        stages.append(Stage(reduction + cells))
    spec = Spec(input_size=input_size, num_classes=num_classes,
                stem=Stem(out=WIDTHS[0], stride=1, act="none"), stages=tuple(stages),
                head=Head(norm=True), name=arch_string(edges))
    spec.check()
    return spec
