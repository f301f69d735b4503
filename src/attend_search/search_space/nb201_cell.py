"""NAS-Bench-201 (Dong and Yang, ICLR 2020): its cell notation and isomorphism (the
network around a cell is :mod:`.nb201`).

A cell has four nodes; node ``i`` sums ``op(node j)`` over ``j < i`` and node 3 is the output.
Its six edges are kept in the benchmark's order: ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``, the
order of the arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
"""

from __future__ import annotations

import re

from ..errors import SpecError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (node, input) per edge

_ARCH = re.compile(r"^\|(\w+)~0\|\+\|(\w+)~0\|(\w+)~1\|\+\|(\w+)~0\|(\w+)~1\|(\w+)~2\|$")


def parse_arch(arch: str) -> tuple[str, ...]:
    """The six edge ops of an NB201 arch string, in :data:`EDGES` order."""
    match = _ARCH.match(arch.strip())
    if not match:
        raise SpecError(
            f"not a NAS-Bench-201 arch string: {arch!r} (expected "
            f"|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"
        )
    edges = match.groups()
    for op in edges:
        if op not in OPS:
            raise SpecError(f"unknown NAS-Bench-201 op {op!r} in {arch!r}; known: {', '.join(OPS)}")
    return edges


def arch_string(edges: tuple[str, ...]) -> str:
    """The NB201 arch string of a cell's six edges (the inverse of :func:`parse_arch`)."""
    nodes = [
        "|".join(f"{op}~{j}" for op, (i, j) in zip(edges, EDGES) if i == node) for node in (1, 2, 3)
    ]
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
