"""NAS-Bench-Macro (Su et al., CVPR 2021): its arch strings, their classes and its skeleton.

An arch is 8 digits, one per searchable layer (written with a leading ``a`` in the benchmark's
tables, so that the leading zeros survive a spreadsheet): ``0`` identity, ``1`` a MobileNetV2
inverted residual with a 3x3 depthwise kernel and expansion 3, ``2`` one with a 5x5 kernel and
expansion 6. The layers sit in three stages of 2, 3 and 3; the first layer of each stage
strides by 2 and doubles the width (32 -> 64 -> 128 -> 256).

An identity at stride 1 is no layer at all; an identity that strides and widens is a 1x1
convolution of stride 2 and batch norm (the ``projection`` block). So archs that differ only
in where a stage's stride-1 identities sit build one network, and one spec: the benchmark
lists 3,969 such classes of its 6,561 archs, each written with its identities moved to the end
of their stage (:func:`canonical_arch`).
"""

from __future__ import annotations

import re

from ..errors import SpecError
from .spec import Block, Head, Spec, Stage, Stem

LAYERS = ("identity", "ir_k3_e3", "ir_k5_e6")  # by digit: what each layer may be
_SHAPE = {"ir_k3_e3": (3, 3), "ir_k5_e6": (5, 6)}  # (kernel, expansion)
DEPTHS = (2, 3, 3)  # searchable layers per stage
WIDTHS = (64, 128, 256)
STEM_WIDTH = 32
HEAD_WIDTH = 1280
ARCHS = 3 ** sum(DEPTHS)  # 6,561

_ARCH = re.compile(r"^a?([012]{8})$")


def parse_arch(arch: str) -> str:
    """The 8 digits of an arch string, with or without its leading ``a``."""
    match = _ARCH.match(str(arch).strip())
    if not match:
        raise SpecError(
            f"not a NAS-Bench-Macro arch string: {arch!r} (expected 8 digits 0, 1 "
            f"or 2, optionally after an 'a', e.g. a01202011)"
        )
    return match.group(1)


def stage_digits(arch: str) -> list[str]:
    """The digits of each stage: ``"01202011"`` -> ``["01", "202", "011"]``."""
    digits, out, start = parse_arch(arch), [], 0
    for depth in DEPTHS:
        out.append(digits[start : start + depth])
        start += depth
    return out


def canonical_arch(arch: str) -> str:
    """The benchmark's name of an arch's class, ``a`` and 8 digits: every stage's stride-1
    identities moved to its end (its first, strided, layer stays where it is)."""
    stages = [
        s[0] + "".join(d for d in s[1:] if d != "0").ljust(len(s) - 1, "0")
        for s in stage_digits(arch)
    ]
    return "a" + "".join(stages)


def macro_layer(choice: str, cin: int, out: int, stride: int) -> Block | None:
    """One layer (a name of :data:`LAYERS`) as a block: None for an identity that neither
    strides nor widens; a ``projection`` for one that does; else an inverted residual (ReLU,
    no squeeze-excitation; residual where it strides by 1 and keeps the width)."""
    if choice not in LAYERS:
        raise SpecError(f"unknown NAS-Bench-Macro layer {choice!r}; known: {', '.join(LAYERS)}")
    residual = stride == 1 and cin == out  # the fields as a spec's canonical form has them
    if choice == "identity":
        return (
            None
            if residual
            else Block("projection", out=out, kernel=1, stride=stride, residual=False)
        )
    kernel, expansion = _SHAPE[choice]
    return Block(
        "inverted_residual",
        out=out,
        kernel=kernel,
        stride=stride,
        act="relu",
        residual=residual,
        mid=cin * expansion,
    )


def macro_spec(arch: str, num_classes: int = 10, input_size: int = 32) -> Spec:
    """The benchmark's network of an arch string (named by its class, :func:`canonical_arch`).

    Skeleton: a 3x3 convolution stem of 32 channels, batch norm and ReLU (stride 1, at CIFAR's
    32x32); the three stages; a 1x1 convolution to 1,280 channels with batch norm and ReLU,
    global pooling and the classifier. Its parameter count is the benchmark's ``params``.
    """
    stages, cin = [], STEM_WIDTH
    for digits, width in zip(stage_digits(arch), WIDTHS):
        blocks = []
        for j, digit in enumerate(digits):
            block = macro_layer(LAYERS[int(digit)], cin, width, 2 if j == 0 else 1)
            if block is not None:
                blocks.append(block)
            cin = width
        stages.append(Stage(tuple(blocks)))
    spec = Spec(
        input_size=input_size,
        num_classes=num_classes,
        stem=Stem(out=STEM_WIDTH, kernel=3, stride=1, act="relu"),
        stages=tuple(stages),
        head=Head(channels=HEAD_WIDTH, act="relu"),
        name=canonical_arch(arch),
    )
    spec.check()
    return spec


def all_archs() -> list[str]:
    """Every one of the benchmark's 6,561 arch strings, ``a00000000`` to ``a22222222``."""
    out = []
    for n in range(ARCHS):
        digits = ""
        for _ in range(sum(DEPTHS)):
            n, d = divmod(n, 3)
            digits = str(d) + digits
        out.append("a" + digits)
    return out
