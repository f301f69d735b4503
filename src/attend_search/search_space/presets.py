"""Named reference architectures, as specs.

The MobileNets are exact transcriptions of torchvision's models (their parameter counts are a
check of the builder); the attention condenser networks are reconstructions from the papers'
descriptions, as the exact layer tables were not published.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import AttendSearchError, SpecError
from .fields import read_user_file
from .spec import Attention, Block, Head, Spec, Stage, Stem, make_divisible

_PRESETS: dict[str, Callable[[], Spec]] = {}


def _preset(fn: Callable[[], Spec]) -> Callable[[], Spec]:
    _PRESETS[fn.__name__] = fn
    return fn


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str, num_classes: int = 1000, input_size: int = 224) -> Spec:
    """A reference architecture by name, optionally for another class count or input size."""
    if name not in _PRESETS:
        raise AttendSearchError(f"unknown preset {name!r}; known: {', '.join(list_presets())}")
    spec = _PRESETS[name]()
    spec = Spec(**{**spec.__dict__, "num_classes": num_classes, "input_size": input_size})
    spec.check()
    return spec


def load_spec(arg: str) -> Spec:
    """A spec from a JSON file, a preset by name, or a benchmark's architecture
    (``nb201:ARCH``, ``macro:ARCH``); a file of that name wins."""
    if not Path(arg).exists():
        if arg in list_presets():
            return get_preset(arg)
        benchmark, _, arch = arg.partition(":")
        if benchmark in ("nb201", "macro") and arch:
            from .macro import macro_spec
            from .nb201 import nb201_spec

            return {"nb201": nb201_spec, "macro": macro_spec}[benchmark](arch)
    path = Path(arg)
    if not path.exists():
        raise SpecError(
            f"no such spec file (presets: {', '.join(list_presets())}; or nb201:ARCH, macro:ARCH)",
            source=arg,
        )
    return Spec.from_json(read_user_file(path, SpecError, "spec file"), source=str(path))


@_preset
def mobilenet_v2() -> Spec:
    """torchvision ``mobilenet_v2`` (Sandler et al. 2018): 3,504,872 parameters at 1000 classes."""
    table = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]  # expansion t, channels c, repeats n, stride s
    stages, cin = [], 32
    for t, c, n, s in table:
        blocks = []
        for i in range(n):
            blocks.append(
                Block(
                    "inverted_residual",
                    out=c,
                    kernel=3,
                    stride=s if i == 0 else 1,
                    act="relu6",
                    mid=cin * t,
                )
            )
            cin = c
        stages.append(Stage(tuple(blocks)))
    return Spec(
        name="mobilenet_v2",
        input_size=224,
        num_classes=1000,
        stem=Stem(out=32, act="relu6"),
        stages=tuple(stages),
        head=Head(channels=1280, act="relu6", dropout=0.2),
    )


@_preset
def mobilenet_v3_large() -> Spec:
    """torchvision ``mobilenet_v3_large`` (Howard et al. 2019): 5,483,032 parameters."""
    table = [  # kernel, expanded, out, SE, activation, stride; one stage per resolution
        [(3, 16, 16, False, "relu", 1)],
        [(3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1)],
        [
            (5, 72, 40, True, "relu", 2),
            (5, 120, 40, True, "relu", 1),
            (5, 120, 40, True, "relu", 1),
        ],
        [
            (3, 240, 80, False, "hswish", 2),
            (3, 200, 80, False, "hswish", 1),
            (3, 184, 80, False, "hswish", 1),
            (3, 184, 80, False, "hswish", 1),
            (3, 480, 112, True, "hswish", 1),
            (3, 672, 112, True, "hswish", 1),
        ],
        [
            (5, 672, 160, True, "hswish", 2),
            (5, 960, 160, True, "hswish", 1),
            (5, 960, 160, True, "hswish", 1),
        ],
    ]
    stages = [
        Stage(
            tuple(
                Block(
                    "inverted_residual",
                    out=out,
                    kernel=k,
                    stride=s,
                    act=act,
                    mid=mid,
                    se=make_divisible(mid // 4) if se else 0,
                    se_gate="hardsigmoid",
                )
                for k, mid, out, se, act, s in rows
            )
        )
        for rows in table
    ]
    return Spec(
        name="mobilenet_v3_large",
        input_size=224,
        num_classes=1000,
        stem=Stem(out=16, act="hswish"),
        stages=tuple(stages),
        head=Head(channels=960, act="hswish", hidden=1280, hidden_act="hswish", dropout=0.2),
    )


def _condenser_stage(
    cin: int,
    width: int,
    depth: int,
    stride: int,
    attention: dict,
    kernel: int = 3,
    act: str = "relu",
    downsample: str = "aads",
    embed_ratio: float = 0.25,
    columns: int = 1,
    merge: str = "add",
) -> Stage:
    per_column = make_divisible(width / columns) if merge == "concat" else width
    blocks, ch = [], cin
    for i in range(depth):
        att = Attention(embed=make_divisible(ch * embed_ratio), **attention)
        blocks.append(
            Block(
                "condenser",
                out=per_column,
                kernel=kernel,
                stride=stride if i == 0 else 1,
                act=act,
                downsample=downsample,
                attention=att,
            )
        )
        ch = per_column
    return Stage(tuple(blocks), columns=columns, merge=merge)


_DC_AC = dict(
    stages=2,
    condense="max",
    factor=2,
    groups=2,
    kernel=3,
    expand="nearest",
    gate="sigmoid",
    skip=False,
)


@_preset
def attendnext() -> Spec:
    """AttendNeXt (Wong et al. 2022), reconstructed: DC-AC condenser blocks in every stage,
    anti-aliased downsampling, a two-column first stage, widths on multiples of 8; 3.24M
    parameters at 1000 classes (the paper: > 1.37x smaller than MobileNetV3-Large's 5.48M)."""
    widths, depths = (64, 128, 256, 512), (2, 2, 4, 2)
    stages, cin = [], 32
    for i, (w, d) in enumerate(zip(widths, depths)):
        stages.append(
            _condenser_stage(
                cin,
                w,
                d,
                2,
                _DC_AC,
                columns=2 if i == 0 else 1,
                merge="concat" if i == 0 else "add",
            )
        )
        cin = w
    return Spec(
        name="attendnext",
        input_size=224,
        num_classes=1000,
        stem=Stem(out=32, act="relu"),
        stages=tuple(stages),
        head=Head(channels=1024, act="relu", dropout=0.2),
    )


@_preset
def attendnets() -> Spec:
    """AttendNets (Wong et al. 2020), reconstructed: single-condensation attention condensers
    (AC, ``stages=1``) with strided downsampling; a small, low-precision-friendly network."""
    ac = {**_DC_AC, "stages": 1, "groups": 1}
    widths, depths = (32, 64, 128, 256), (1, 2, 2, 1)
    stages, cin = [], 24
    for w, d in zip(widths, depths):
        stages.append(_condenser_stage(cin, w, d, 2, ac, downsample="conv", embed_ratio=0.5))
        cin = w
    return Spec(
        name="attendnets",
        input_size=224,
        num_classes=1000,
        stem=Stem(out=24, act="relu"),
        stages=tuple(stages),
        head=Head(channels=512, act="relu", dropout=0.2),
    )
