"""The Spec: one fully resolved backbone architecture, stored as versioned JSON.

A spec names every layer's shape explicitly (channels, kernels, strides, condenser micro
parameters), so it can be built, costed and compared without the search space it came from.
Its :attr:`Spec.digest` hashes a canonical form: defaults filled in and settings that cannot
change the network (a residual flag on a strided block, a merge mode of a single column)
normalised, so two specs that build the same network share a digest. NAS-Bench-201 cells are
hashed by their isomorphism class (:func:`.nb201_cell.cell_form`), as the benchmark counts them.
NAS-Bench-Macro networks need nothing more: an identity at stride 1 is no block at all, so
archs that differ only in where those identities sit are one spec (:mod:`.macro`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import SpecError
from .fields import Fields, check_choice, join
from .nb201_cell import OPS, cell_form

SCHEMA = "attend-search/spec/v1"

BLOCK_TYPES = (
    "condenser",
    "depthwise_separable",
    "inverted_residual",
    "cell",
    "resnet_basic",
    "projection",
)
ACTIVATIONS = ("relu", "relu6", "hswish", "silu")
STEM_ACTIVATIONS = (*ACTIVATIONS, "none")  # none: pre-activation networks (NAS-Bench-201)
GATES = ("sigmoid", "hardsigmoid")
KERNELS = (3, 5, 7)
ATTENTION_KERNELS = (1, 3, 5, 7)
DOWNSAMPLE = ("conv", "aads")
CONDENSE = ("max", "avg")
EXPAND = ("nearest", "bilinear")
MERGE = ("add", "concat")
#: bounds against absurd sizes: a hostile or mistyped 10**12 must not reach the allocator
MAX_CHANNELS = 8192
MAX_CLASSES = 100_000
INPUT_SIZES = (32, 2048)  # the smallest and largest image side a spec may take


@dataclass(frozen=True)
class Attention:
    """Attention condenser micro-architecture (``stages=1``: AC, ``stages=2``: DC-AC)."""

    embed: int  # embedding channels (both condensation stages)
    stages: int = 2  # number of condensation + embedding stages
    condense: str = "max"  # condensation pooling operator
    factor: int = 2  # condensation factor (pool kernel = stride)
    groups: int = 1  # groups of the k x k embedding convolutions
    kernel: int = 3  # kernel of the embedding convolutions
    expand: str = "nearest"  # upsampling mode of the expansion
    gate: str = "sigmoid"  # gate applied to the expanded attention map
    skip: bool = False  # V' = V + V * gate(A) * s instead of V * gate(A) * s


@dataclass(frozen=True)
class Block:
    type: str
    out: int
    kernel: int = 3
    stride: int = 1
    act: str = "relu"
    residual: bool = True  # only takes effect when stride == 1 and in == out
    downsample: str = "conv"  # how stride 2 is done: strided conv, or AADS blur-pool first
    mid: int = 0  # inverted_residual: expanded channels (== in: no expansion)
    se: int = 0  # squeeze-excitation channels, 0 = none
    se_gate: str = "hardsigmoid"
    attention: Attention | None = None  # condenser blocks only
    edges: tuple[str, ...] = ()  # cell blocks only: the six NAS-Bench-201 edge ops (nb201_cell.py)


@dataclass(frozen=True)
class Stage:
    blocks: tuple[Block, ...]
    columns: int = 1  # parallel copies of the block sequence
    merge: str = "add"  # how columns are merged


@dataclass(frozen=True)
class Stem:
    out: int
    kernel: int = 3
    stride: int = 2
    act: str = "relu"
    downsample: str = "conv"


@dataclass(frozen=True)
class Head:
    channels: int = 0  # final 1x1 conv width before pooling, 0 = none
    act: str = "relu"
    hidden: int = 0  # hidden linear layer after pooling, 0 = none
    hidden_act: str = "hswish"
    dropout: float = 0.0
    norm: bool = False  # batch norm and ``act`` before pooling, without ``channels``
    # (pre-activation networks, whose blocks end on batch norm)


@dataclass(frozen=True)
class BlockLayout:
    """Where a block sits and the shapes around it (derived from the spec, not stored)."""

    path: str
    block: Block
    in_channels: int
    in_size: int
    out_size: int


@dataclass(frozen=True)
class Spec:
    input_size: int
    num_classes: int
    stem: Stem
    stages: tuple[Stage, ...]
    head: Head = field(default_factory=Head)
    in_channels: int = 3
    name: str = ""  # metadata, not part of the digest

    # ----------------------------------------------------------------- (de)serialisation
    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> "Spec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", source=source
            ) from None
        except RecursionError:
            raise SpecError("JSON nested too deeply", source=source) from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> "Spec":
        try:
            spec = _read_spec(Fields(data, "", SpecError))
            spec.check()
        except SpecError as exc:
            raise exc.located(source) if source else exc
        return spec

    def to_dict(self, metadata: bool = True) -> dict[str, Any]:
        data = {"schema": SCHEMA, **_prune(asdict(self.canonical()))}
        if not metadata or not self.name:
            data.pop("name")
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @property
    def digest(self) -> str:
        """Stable 16-hex-digit hash of the canonical network (metadata excluded); a cell is
        hashed by its isomorphism class, so isomorphic cells share a digest (even where one
        carries convolutions that cannot reach its output, and so more parameters)."""
        text = json.dumps(
            _cell_classes(self.to_dict(metadata=False)), sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def renamed(self, name: str) -> "Spec":
        return replace(self, name=name)

    # ----------------------------------------------------------------- structure
    @property
    def stem_size(self) -> int:
        return conv_out(self.input_size, self.stem.stride)

    def blocks(self) -> Iterator[BlockLayout]:
        """Every block with its input channels and spatial sizes, columns included."""
        channels, size = self.stem.out, self.stem_size
        for s, stage in enumerate(self.stages):
            for c in range(stage.columns):
                ch, sz = channels, size
                for b, block in enumerate(stage.blocks):
                    col = f".columns[{c}]" if stage.columns > 1 else ""
                    out_size = conv_out(sz, block.stride)
                    yield BlockLayout(f"stages[{s}]{col}.blocks[{b}]", block, ch, sz, out_size)
                    ch, sz = block.out, out_size
            channels, size = self.stage_out(s), sz

    def stage_out(self, index: int) -> int:
        stage = self.stages[index]
        last = stage.blocks[-1].out
        return last * stage.columns if stage.merge == "concat" else last

    @property
    def features(self) -> int:
        """Channels entering global pooling."""
        if self.head.channels:
            return self.head.channels
        return self.stage_out(len(self.stages) - 1) if self.stages else self.stem.out

    @property
    def final_size(self) -> int:
        size = self.stem_size
        for stage in self.stages:
            for block in stage.blocks:
                size = conv_out(size, block.stride)
        return size

    # ----------------------------------------------------------------- validation
    def check(self) -> None:
        """Refuse specs whose channels do not fit together (field values are checked on read)."""
        for layout in self.blocks():
            _check_block_fit(layout)

    def canonical(self) -> "Spec":
        """Equivalent spec with ineffective settings normalised (see module docstring)."""
        stages = []
        channels = self.stem.out
        for s, stage in enumerate(self.stages):
            blocks, ch = [], channels
            for block in stage.blocks:
                blocks.append(_canonical_block(block, ch))
                ch = block.out
            merge = stage.merge if stage.columns > 1 else "add"
            stages.append(Stage(tuple(blocks), stage.columns, merge))
            channels = self.stage_out(s)
        head = self.head
        if head.channels:
            head = replace(head, norm=False)
        elif not head.norm:
            head = replace(head, act="relu")
        if not head.hidden:
            head = replace(head, hidden_act="hswish")
        stem = self.stem if self.stem.stride > 1 else replace(self.stem, downsample="conv")
        return replace(self, stem=stem, stages=tuple(stages), head=head)


def conv_out(size: int, stride: int) -> int:
    """Spatial size after an odd-kernel, 'same'-padded op (or AADS blur-pool) of this stride."""
    return (size - 1) // stride + 1


def _canonical_block(block: Block, in_channels: int) -> Block:
    if block.type in _FIXED:
        return replace(block, **_FIXED[block.type])
    changes: dict[str, Any] = {}
    if block.residual and not (block.stride == 1 and block.out == in_channels):
        changes["residual"] = False
    if block.stride == 1:
        changes["downsample"] = "conv"
    if not block.se:
        changes["se_gate"] = "hardsigmoid"
    return replace(block, **changes) if changes else block


def _check_block_fit(layout: BlockLayout) -> None:
    block, cin, path = layout.block, layout.in_channels, layout.path
    if block.type == "cell" and (block.out != cin or block.stride != 1):
        raise SpecError(
            f"a cell keeps its {cin} input channels and size (a resnet_basic block changes them)",
            path=f"{path}.out",
        )
    if block.type == "inverted_residual" and block.se > block.mid:
        raise SpecError(
            f"{block.se} squeeze channels exceed the {block.mid} expanded channels",
            path=f"{path}.se",
        )
    if block.type == "condenser" and block.se:
        raise SpecError(
            "condenser blocks have no squeeze-excitation (their attention "
            "condenser gates the features)",
            path=f"{path}.se",
        )
    if block.type != "inverted_residual" and block.se > cin:
        raise SpecError(
            f"{block.se} squeeze channels exceed the {cin} input channels", path=f"{path}.se"
        )
    att = block.attention
    if att is not None:
        for name, channels in (("input", cin), ("embed", att.embed)):
            if channels % att.groups:
                raise SpecError(
                    f"groups={att.groups} does not divide the {channels} {name} channels",
                    path=f"{path}.attention.groups",
                )


def _prune(data: Any) -> Any:
    """Drop fields that do not apply to a block's type, and the head's ``norm`` when off, so
    stored JSON stays readable (and the JSON and digests of specs without them unchanged)."""
    if isinstance(data, dict):
        if data.get("type") in BLOCK_TYPES:
            data = {k: v for k, v in data.items() if k not in _NOT_FOR[data["type"]]}
        elif data.get("norm") is False:
            data = {k: v for k, v in data.items() if k != "norm"}
        return {k: _prune(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_prune(v) for v in data]
    return data


_CELL_ONLY = {"edges"}
_NOT_FOR = {
    "condenser": {"mid", "se", "se_gate", *_CELL_ONLY},  # the attention condenser gates
    "depthwise_separable": {"mid", "attention", *_CELL_ONLY},
    "inverted_residual": {"attention", *_CELL_ONLY},
    # NAS-Bench-201's blocks: ReLU-conv-BN edges, 3x3 reductions, no micro-parameters
    "cell": {
        "kernel",
        "stride",
        "act",
        "residual",
        "downsample",
        "mid",
        "se",
        "se_gate",
        "attention",
    },
    "resnet_basic": {
        "kernel",
        "act",
        "residual",
        "downsample",
        "mid",
        "se",
        "se_gate",
        "attention",
        *_CELL_ONLY,
    },
    # NAS-Bench-Macro's strided identity: 1x1 convolution (strided) and batch norm, no act
    "projection": {
        "kernel",
        "act",
        "residual",
        "downsample",
        "mid",
        "se",
        "se_gate",
        "attention",
        *_CELL_ONLY,
    },
}
# The fields NAS-Bench-201's blocks do not read, at the values their builders assume.
_FIXED = {
    kind: {
        "kernel": 3,
        "act": "relu",
        "residual": True,
        "downsample": "conv",
        "mid": 0,
        "se": 0,
        "se_gate": "hardsigmoid",
        "attention": None,
    }
    for kind in ("cell", "resnet_basic")
}
_FIXED["projection"] = {**_FIXED["cell"], "kernel": 1, "residual": False}


def _cell_classes(data: Any) -> Any:
    """A spec's pruned dict with every cell's edges replaced by its isomorphism class."""
    if isinstance(data, dict):
        if data.get("type") == "cell":
            return {**data, "edges": cell_form(tuple(data["edges"]))}
        return {k: _cell_classes(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_cell_classes(v) for v in data]
    return data


# --------------------------------------------------------------------------- reading
def _read_spec(f: Fields) -> Spec:
    schema = f.str("schema")
    if schema != SCHEMA:
        raise f.fail("schema", f"unsupported schema {schema!r}, expected {SCHEMA!r}")
    spec = Spec(
        name=f.str("name", ""),
        input_size=f.int("input_size", lo=INPUT_SIZES[0], hi=INPUT_SIZES[1]),
        in_channels=f.int("in_channels", 3, lo=1, hi=64),
        num_classes=f.int("num_classes", lo=1, hi=MAX_CLASSES),
        stem=_read_stem(f.sub("stem")),
        stages=tuple(_read_stage(s) for s in f.items("stages", min_len=1)),
        head=_read_head(f.sub("head", {})),
    )
    f.done()
    return spec


def _read_stem(f: Fields) -> Stem:
    stem = Stem(
        out=f.int("out", lo=1, hi=MAX_CHANNELS),
        kernel=f.int("kernel", 3, choices=KERNELS),
        stride=f.int("stride", 2, choices=(1, 2)),
        act=f.choice("act", STEM_ACTIVATIONS, "relu"),
        downsample=f.choice("downsample", DOWNSAMPLE, "conv"),
    )
    f.done()
    return stem


def _read_stage(f: Fields) -> Stage:
    stage = Stage(
        blocks=tuple(_read_block(b) for b in f.items("blocks", min_len=1)),
        columns=f.int("columns", 1, lo=1, hi=8),
        merge=f.choice("merge", MERGE, "add"),
    )
    f.done()
    return stage


def _read_block(f: Fields) -> Block:
    kind = f.choice("type", BLOCK_TYPES)
    if kind in _FIXED:
        return _read_nb201_block(f, kind)
    d = Block("", 0)
    block = Block(
        type=kind,
        out=f.int("out", lo=1, hi=MAX_CHANNELS),
        kernel=f.int("kernel", d.kernel, choices=KERNELS),
        stride=f.int("stride", d.stride, choices=(1, 2)),
        act=f.choice("act", ACTIVATIONS, d.act),
        residual=f.bool("residual", d.residual),
        downsample=f.choice("downsample", DOWNSAMPLE, d.downsample),
        se=f.int("se", d.se, lo=0, hi=MAX_CHANNELS) if kind != "condenser" else 0,
        se_gate=f.choice("se_gate", GATES, d.se_gate) if kind != "condenser" else d.se_gate,
        mid=f.int("mid", lo=1, hi=MAX_CHANNELS) if kind == "inverted_residual" else 0,
        attention=_read_attention(f.sub("attention")) if kind == "condenser" else None,
    )
    f.done()
    return block


def _read_nb201_block(f: Fields, kind: str) -> Block:
    """A ``cell`` (its six ``edges``), or a ``resnet_basic`` or ``projection`` block (its
    ``stride``)."""
    if kind == "cell":
        ops = f.list("edges")
        if len(ops) != 6:
            raise f.fail("edges", f"a cell has 6 edges, got {len(ops)}")
        for i, op in enumerate(ops):
            check_choice(op, OPS, f"{join(f.path, 'edges')}[{i}]", SpecError)
        block = Block(kind, out=f.int("out", lo=1), edges=tuple(ops))
    else:
        block = Block(
            kind,
            out=f.int("out", lo=1, hi=MAX_CHANNELS),
            stride=f.int("stride", 1, choices=(1, 2)),
            **_FIXED[kind],
        )
    f.done()
    return block


def _read_attention(f: Fields) -> Attention:
    d = Attention(embed=0)
    att = Attention(
        embed=f.int("embed", lo=1, hi=MAX_CHANNELS),
        stages=f.int("stages", d.stages, choices=(1, 2)),
        condense=f.choice("condense", CONDENSE, d.condense),
        factor=f.int("factor", d.factor, choices=(2, 3, 4)),
        groups=f.int("groups", d.groups, lo=1, hi=MAX_CHANNELS),
        kernel=f.int("kernel", d.kernel, choices=ATTENTION_KERNELS),
        expand=f.choice("expand", EXPAND, d.expand),
        gate=f.choice("gate", GATES, d.gate),
        skip=f.bool("skip", d.skip),
    )
    f.done()
    return att


def _read_head(f: Fields) -> Head:
    d = Head()
    head = Head(
        channels=f.int("channels", d.channels, lo=0, hi=MAX_CHANNELS),
        act=f.choice("act", ACTIVATIONS, d.act),
        hidden=f.int("hidden", d.hidden, lo=0, hi=MAX_CHANNELS),
        hidden_act=f.choice("hidden_act", ACTIVATIONS, d.hidden_act),
        dropout=f.float("dropout", d.dropout, lo=0.0, hi=0.9),
        norm=f.bool("norm", d.norm),
    )
    f.done()
    return head


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` (the SIMD width), never losing > 10%.

    Same rule as torchvision's MobileNets, so their presets reproduce parameter counts exactly.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded
