"""NAS-Bench-201's network around a cell: the benchmark's published skeleton as a spec."""

from __future__ import annotations

from ..errors import SpecError
from .nb201_cell import EDGES, OPS, arch_string, parse_arch
from .spec import Block, Head, Spec, Stage, Stem

CELLS_PER_STAGE = 5
WIDTHS = (16, 32, 64)


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
    spec = Spec(
        input_size=input_size,
        num_classes=num_classes,
        stem=Stem(out=WIDTHS[0], stride=1, act="none"),
        stages=tuple(stages),
        head=Head(norm=True),
        name=arch_string(edges),
    )
    spec.check()
    return spec
