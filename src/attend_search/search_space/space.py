"""Declarative search spaces: YAML files of macro and micro choices, walked one parameter at a time.

A space is resolved into a :class:`Spec` by asking a *chooser* for each parameter in turn
(define-by-run): :class:`RandomChooser` for ``space.sample(seed)``, an Optuna trial for the
explorer. Parameters that do not apply (the attention micro-parameters of a stage whose block
is not a condenser, the merge mode of a single column) are never asked for.

Micro-parameters are chosen per stage and shared by the stage's blocks, the factorised
hierarchical scheme of MnasNet: a far smaller space than per-block choices, with the
macro-level freedom (depth, width, block type per stage) where it matters most.

Cell spaces (NAS-Bench-201): a stage whose block is ``cell`` is ``depth`` cells, opened by a
``resnet_basic`` reduction where it strides or changes the width; the six edge ops of the
cell (domain ``cell.edges``) are chosen once and shared by every cell stage, as the
benchmark shares one cell across its network.

Macro spaces (NAS-Bench-Macro): a stage whose block is ``macro`` is ``depth`` layers, each
chosen on its own (parameter ``s<i>.layer<j>``, domain ``macro.layers``) among an identity and
two inverted residuals (:mod:`.macro`); an identity at stride 1 is no block, one that strides
a ``projection``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from ..errors import SpaceError
from .fields import (
    MISSING,
    Fields,
    check_choice,
    check_int,
    describe,
    join,
    parse_yaml,
    read_user_file,
)
from .macro import LAYERS, macro_layer
from .nb201_cell import EDGES, OPS
from .spec import (
    ACTIVATIONS,
    ATTENTION_KERNELS,
    BLOCK_TYPES,
    CONDENSE,
    DOWNSAMPLE,
    EXPAND,
    GATES,
    INPUT_SIZES,
    KERNELS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MERGE,
    STEM_ACTIVATIONS,
    Attention,
    Block,
    Head,
    Spec,
    Stage,
    Stem,
    make_divisible,
)

SCHEMA = "attend-search/space/v1"


class Chooser(Protocol):
    """What a space asks while it resolves: one value per named parameter."""

    def choose(self, name: str, choices: Sequence[Any]) -> Any: ...

    def integer(self, name: str, low: int, high: int, step: int) -> int: ...


class RandomChooser:
    """Uniform random choices from a seeded generator; records what it chose."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}

    def choose(self, name: str, choices: Sequence[Any]) -> Any:
        self.params[name] = choices[self.rng.randrange(len(choices))]
        return self.params[name]

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        self.params[name] = low + step * self.rng.randrange((high - low) // step + 1)
        return self.params[name]


@dataclass(frozen=True)
class Dim:
    """One searchable dimension: a fixed value, a list of choices, or an integer range."""

    choices: tuple[Any, ...] = ()
    low: int = 0
    high: int = 0
    step: int = 1

    @property
    def values(self) -> tuple[Any, ...]:
        return self.choices or tuple(range(self.low, self.high + 1, self.step))

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def fixed(self) -> bool:
        return self.size == 1

    def pick(self, chooser: Chooser, name: str) -> Any:
        if self.fixed:
            return self.values[0]
        if self.choices:
            return chooser.choose(name, self.choices)
        return chooser.integer(name, self.low, self.high, self.step)

    def __str__(self) -> str:
        if self.choices:
            return describe(self.choices)
        return f"{self.low}..{self.high}" + (f" step {self.step}" if self.step != 1 else "")


@dataclass(frozen=True)
class Param:
    """A parameter as listed by ``attend-search space``: name, domain, when it is asked."""

    name: str
    dim: Dim
    when: str = ""


# How each micro-parameter is checked: allowed values (None: any number in range) and defaults.
_MICRO: dict[str, tuple[Sequence[Any] | None, Any]] = {
    # a slot's block: a spec's block types but NAS-Bench-Macro's projection, which only a
    # ``macro`` slot makes (from an identity layer)
    "block": ((*(b for b in BLOCK_TYPES if b != "projection"), "macro"), "condenser"),
    "kernel": (KERNELS, 3),
    "act": (ACTIVATIONS, "relu"),
    "downsample": (DOWNSAMPLE, "conv"),
    "residual": ((False, True), True),
    "columns": (range(1, 9), 1),
    "merge": (MERGE, "add"),
    "expand_ratio": (None, 4),
    "se_ratio": (None, 0),
    "se_gate": (GATES, "hardsigmoid"),
}
_ATTENTION: dict[str, tuple[Sequence[Any] | None, Any]] = {
    "stages": ((1, 2), 2),
    "condense": (CONDENSE, "max"),
    "factor": ((2, 3, 4), 2),
    "embed_ratio": (None, 0.25),
    "groups": ((1, 2, 4, 8), 1),
    "kernel": (ATTENTION_KERNELS, 3),
    "expand": (EXPAND, "nearest"),
    "gate": (GATES, "sigmoid"),
    "skip": ((False, True), False),
}
_RATIO_RANGE = {"expand_ratio": (1.0, 8.0), "se_ratio": (0.0, 1.0), "embed_ratio": (0.05, 2.0)}


@dataclass(frozen=True)
class Slot:
    """One stage position: its stride, depth and width, and its micro-parameter domains."""

    stride: Dim
    depth: Dim
    width: Dim
    micro: dict[str, Dim]
    attention: dict[str, Dim]


@dataclass(frozen=True)
class Space:
    name: str
    input_size: Dim
    in_channels: int
    num_classes: int
    stem: dict[str, Dim]
    count: Dim
    slots: tuple[Slot, ...]
    head: dict[str, Dim]
    cell: Dim = Dim(OPS)  # the ops each cell edge may take
    macro: Dim = Dim(LAYERS)  # what each layer of a macro stage may be
    description: str = ""
    source: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    # ---------------------------------------------------------------- resolving
    def sample(self, seed: int) -> Spec:
        """A spec drawn uniformly per parameter; the same seed always gives the same spec."""
        return self.resolve(RandomChooser(seed))

    def resolve(self, chooser: Chooser) -> Spec:
        stem = Stem(
            out=self.stem["out"].pick(chooser, "stem.out"),
            kernel=self.stem["kernel"].pick(chooser, "stem.kernel"),
            stride=(stride := self.stem["stride"].pick(chooser, "stem.stride")),
            act=self.stem["act"].pick(chooser, "stem.act"),
            downsample=self.stem["downsample"].pick(chooser, "stem.downsample")
            if stride > 1
            else "conv",
        )
        input_size = self.input_size.pick(chooser, "input_size")
        stages, channels = [], stem.out
        cell: list[tuple[str, ...]] = []  # chosen when a stage first needs it

        def cell_edges() -> tuple[str, ...]:
            if not cell:
                cell.append(tuple(self.cell.pick(chooser, _edge_param(e)) for e in EDGES))
            return cell[0]

        for i in range(self.count.pick(chooser, "stages.count")):
            stage = _resolve_stage(
                self.slots[i], f"s{i}", channels, chooser, cell_edges, self.macro
            )
            stages.append(stage)
            last = stage.blocks[-1].out
            channels = last * stage.columns if stage.merge == "concat" else last
        h = self.head
        channels_out = h["channels"].pick(chooser, "head.channels")
        norm = h["norm"].pick(chooser, "head.norm") if not channels_out else False
        hidden = h["hidden"].pick(chooser, "head.hidden")
        head = Head(
            channels=channels_out,
            norm=norm,
            act=h["act"].pick(chooser, "head.act") if channels_out or norm else "relu",
            hidden=hidden,
            hidden_act=h["hidden_act"].pick(chooser, "head.hidden_act") if hidden else "hswish",
            dropout=h["dropout"].pick(chooser, "head.dropout"),
        )
        spec = Spec(
            input_size=input_size,
            num_classes=self.num_classes,
            stem=stem,
            stages=tuple(stages),
            head=head,
            in_channels=self.in_channels,
        )
        spec.check()
        return spec

    def params_for(self, spec: Spec) -> dict[str, Any] | None:
        """The parameter values that resolve to ``spec``, or None if it is not in the space.

        Used to enqueue reference architectures (presets) as starting trials.
        """
        replay = _SpecReplay(spec)
        try:
            resolved = self.resolve(replay)
        except (_NotInSpace, IndexError):
            return None
        return replay.params if resolved.digest == spec.digest else None

    # ---------------------------------------------------------------- describing
    def parameters(self) -> list[Param]:
        """Every parameter the space can ask for, with the condition under which it is asked."""
        out = [Param("input_size", self.input_size)]
        for key in ("out", "kernel", "stride", "act"):
            out.append(Param(f"stem.{key}", self.stem[key]))
        out.append(Param("stem.downsample", self.stem["downsample"], "stem.stride > 1"))
        out.append(Param("stages.count", self.count))
        for i, slot in enumerate(self.slots):
            p, used = f"s{i}", f"stages.count > {i}" if i >= min(self.count.values) else ""

            def add(name: str, dim: Dim, when: str = "") -> None:
                out.append(Param(f"{p}.{name}", dim, " and ".join(w for w in (used, when) if w)))

            add("stride", slot.stride)
            add("depth", slot.depth)
            add("width", slot.width)
            m, blocks = slot.micro, set(slot.micro["block"].values)
            for key in ("block", "kernel", "act", "residual", "columns"):
                add(key, m[key])
            if any(s > 1 for s in slot.stride.values):
                add("downsample", m["downsample"], f"{p}.stride > 1")
            if any(c > 1 for c in m["columns"].values):
                add("merge", m["merge"], f"{p}.columns > 1")
            if "inverted_residual" in blocks:
                add("expand_ratio", m["expand_ratio"], f"{p}.block = inverted_residual")
            if blocks - {"condenser"}:
                add("se_ratio", m["se_ratio"], f"{p}.block != condenser")
                if any(m["se_ratio"].values):
                    add("se_gate", m["se_gate"], f"{p}.se_ratio > 0")
            if "condenser" in blocks:
                for key, dim in slot.attention.items():
                    add(f"attention.{key}", dim, f"{p}.block = condenser")
            if "macro" in blocks:
                for j in range(max(slot.depth.values)):
                    add(
                        f"layer{j}",
                        self.macro,
                        f"{p}.block = macro"
                        + (f" and {p}.depth > {j}" if j >= min(slot.depth.values) else ""),
                    )
        if any("cell" in slot.micro["block"].values for slot in self.slots):
            out.extend(Param(_edge_param(e), self.cell, "a stage's block = cell") for e in EDGES)
        out.append(Param("head.channels", self.head["channels"]))
        out.append(Param("head.norm", self.head["norm"], "head.channels = 0"))
        out.append(Param("head.act", self.head["act"], "head.channels > 0 or head.norm"))
        out.append(Param("head.hidden", self.head["hidden"]))
        out.append(Param("head.hidden_act", self.head["hidden_act"], "head.hidden > 0"))
        out.append(Param("head.dropout", self.head["dropout"]))
        return out

    @property
    def size(self) -> int:
        """Number of distinct parameter assignments (distinct architectures) in the space."""
        stem = self.stem
        n = self.input_size.size * stem["out"].size * stem["kernel"].size * stem["act"].size
        n *= sum(stem["downsample"].size if s > 1 else 1 for s in stem["stride"].values)
        h = self.head
        n *= sum(
            h["act"].size if c else sum(h["act"].size if norm else 1 for norm in h["norm"].values)
            for c in h["channels"].values
        )
        n *= sum(h["hidden_act"].size if c else 1 for c in h["hidden"].values)
        n *= h["dropout"].size
        # the cell's edges multiply every assignment with at least one cell stage
        cells = self.cell.size ** len(EDGES)
        per_slot = [_slot_size(slot, self.macro) for slot in self.slots]
        return n * sum(
            cells
            * (
                math.prod(c + o for c, o in per_slot[:count])
                - math.prod(o for _, o in per_slot[:count])
            )
            + math.prod(o for _, o in per_slot[:count])
            for count in self.count.values
        )


def _slot_size(slot: Slot, layers: Dim) -> tuple[int, int]:
    """The slot's assignments as cell stages (edges apart) and as other stages."""
    m, a = slot.micro, slot.attention
    kinds = m["block"].values
    shape = slot.depth.size * slot.width.size
    cells = shape * slot.stride.size if "cell" in kinds else 0
    n = shape * sum(m["downsample"].size if s > 1 else 1 for s in slot.stride.values)
    n *= m["kernel"].size * m["act"].size * m["residual"].size
    n *= sum(m["merge"].size if c > 1 else 1 for c in m["columns"].values)
    se = sum(m["se_gate"].size if r else 1 for r in m["se_ratio"].values)
    per_block = {
        "inverted_residual": m["expand_ratio"].size * se,
        "depthwise_separable": se,
        "condenser": math.prod(d.size for d in a.values()),
        "resnet_basic": 1,
        "cell": 0,
        "macro": 0,
    }
    macro = (
        slot.width.size * slot.stride.size * sum(layers.size**d for d in slot.depth.values)
        if "macro" in kinds
        else 0
    )
    return cells, n * sum(per_block[b] for b in kinds) + macro


def _edge_param(edge: tuple[int, int]) -> str:
    return f"cell.{edge[0]}<-{edge[1]}"


def _resolve_stage(
    slot: Slot,
    p: str,
    cin: int,
    chooser: Chooser,
    cell_edges: Callable[[], tuple[str, ...]],
    layers: Dim,
) -> Stage:
    m, a = slot.micro, slot.attention
    stride = slot.stride.pick(chooser, f"{p}.stride")
    depth = slot.depth.pick(chooser, f"{p}.depth")
    width = slot.width.pick(chooser, f"{p}.width")
    kind = m["block"].pick(chooser, f"{p}.block")
    if kind == "cell":  # no micro-parameter applies
        edges = cell_edges()
        reduction = (
            (Block("resnet_basic", out=width, stride=stride),) if stride > 1 or cin != width else ()
        )
        return Stage(reduction + tuple(Block("cell", out=width, edges=edges) for _ in range(depth)))
    if kind == "macro":  # one choice per layer, no micro-parameter applies
        blocks, ch = [], cin
        for j in range(depth):
            block = macro_layer(
                layers.pick(chooser, f"{p}.layer{j}"), ch, width, stride if j == 0 else 1
            )
            blocks += [block] if block else []
            ch = width
        return Stage(tuple(blocks))  # never empty: its first layer strides (read_space)
    kernel = m["kernel"].pick(chooser, f"{p}.kernel")
    act = m["act"].pick(chooser, f"{p}.act")
    residual = m["residual"].pick(chooser, f"{p}.residual")
    columns = m["columns"].pick(chooser, f"{p}.columns")
    downsample = m["downsample"].pick(chooser, f"{p}.downsample") if stride > 1 else "conv"
    merge = m["merge"].pick(chooser, f"{p}.merge") if columns > 1 else "add"
    ratio = se_ratio = 0.0
    se_gate = "hardsigmoid"
    att: dict[str, Any] = {}
    if kind == "inverted_residual":
        ratio = m["expand_ratio"].pick(chooser, f"{p}.expand_ratio")
    if kind != "condenser":
        se_ratio = m["se_ratio"].pick(chooser, f"{p}.se_ratio")
        if se_ratio:
            se_gate = m["se_gate"].pick(chooser, f"{p}.se_gate")
    else:
        att = {key: dim.pick(chooser, f"{p}.attention.{key}") for key, dim in a.items()}
    embed_ratio = att.pop("embed_ratio", 0.0)
    out = make_divisible(width / columns) if merge == "concat" else width
    blocks, ch = [], cin
    for j in range(depth):
        mid = make_divisible(ch * ratio) if kind == "inverted_residual" else 0
        se = make_divisible((mid or ch) * se_ratio) if se_ratio else 0
        attention = None
        if kind == "condenser":
            divisor = math.lcm(8, att["groups"])
            attention = Attention(embed=make_divisible(ch * embed_ratio, divisor), **att)
        blocks.append(
            Block(
                kind,
                out=out,
                kernel=kernel,
                stride=stride if j == 0 else 1,
                act=act,
                residual=residual,
                downsample=downsample,
                mid=mid,
                se=se,
                se_gate=se_gate,
                attention=attention,
            )
        )
        ch = out
    return Stage(tuple(blocks), columns=columns, merge=merge)


class _NotInSpace(Exception):
    pass


class _SpecReplay:
    """A chooser that answers every parameter from a target spec (see ``params_for``)."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.params: dict[str, Any] = {}

    def choose(self, name: str, choices: Sequence[Any]) -> Any:
        return self._answer(name, list(choices))

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        return self._answer(name, list(range(low, high + 1, step)))

    def _answer(self, name: str, options: list[Any]) -> Any:
        value = self._value(name, options)
        if value not in options:
            raise _NotInSpace(name)
        self.params[name] = value
        return value

    def _value(self, name: str, options: list[Any]) -> Any:
        spec = self.spec
        head, _, key = name.partition(".")
        if name == "input_size":
            return spec.input_size
        if name == "stages.count":
            return len(spec.stages)
        if head == "cell":
            cells = [b for stage in spec.stages for b in stage.blocks if b.type == "cell"]
            return (
                cells[0].edges[[_edge_param(e) for e in EDGES].index(name)]
                if cells
                else _NotInSpace
            )
        if head in ("stem", "head"):
            return getattr(getattr(spec, head), key)
        index = int(head[1:])
        stage = spec.stages[index]
        first = stage.blocks[0]
        cin = spec.stem.out if index == 0 else spec.stage_out(index - 1)
        inputs = [(b, cin if j == 0 else first.out) for j, b in enumerate(stage.blocks)]

        def matching(derived) -> Any:
            """The option that reproduces a derived field on every block of the stage."""
            return next(
                (o for o in options if all(derived(o, b, c) for b, c in inputs)), _NotInSpace
            )

        cells = sum(b.type == "cell" for b in stage.blocks)
        if key == "depth":
            return cells or len(stage.blocks)
        if key in ("columns", "merge"):
            return getattr(stage, key)
        if key == "block":
            return "cell" if cells else first.type if first.type in options else "macro"
        if key == "residual":  # only observable on blocks where it can apply
            return stage.blocks[-1].residual if len(stage.blocks) > 1 else options[0]
        if key == "width":
            return matching(
                lambda w, b, c: (
                    (make_divisible(w / stage.columns) if stage.merge == "concat" else w) == b.out
                )
            )
        if key == "expand_ratio":
            return matching(lambda r, b, c: make_divisible(c * r) == b.mid)
        if key == "se_ratio":
            return matching(lambda r, b, c: (make_divisible((b.mid or c) * r) if r else 0) == b.se)
        if key == "attention.embed_ratio":
            return matching(
                lambda r, b, c: (
                    make_divisible(c * r, math.lcm(8, b.attention.groups)) == b.attention.embed
                )
            )
        if key.startswith("attention."):
            return getattr(first.attention, key.partition(".")[2])
        if key.startswith("layer"):  # a macro stage: its identities at stride 1 are no blocks
            names = [_layer_name(b, c) for b, c in inputs]
            j = int(key[len("layer") :])
            return names[j] if j < len(names) else "identity"
        return getattr(first, key)


def _layer_name(block: Block, cin: int) -> Any:
    """The macro layer (:data:`.macro.LAYERS`) a block is, or _NotInSpace."""
    for name in LAYERS:
        if macro_layer(name, cin, block.out, block.stride) == block:
            return name
    return _NotInSpace


# --------------------------------------------------------------------------- loading
def builtin_spaces() -> list[str]:
    folder = resources.files(__package__) / "spaces"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_space(name_or_path: str | Path) -> Space:
    """A built-in space by name (``attendnext``) or a space YAML file by path."""
    text, source = _space_text(str(name_or_path))
    data = parse_yaml(text, source, SpaceError)
    try:
        return read_space(data, source)
    except SpaceError as exc:
        raise exc.located(source)


def _space_text(name_or_path: str) -> tuple[str, str]:
    if name_or_path in builtin_spaces():
        path = resources.files(__package__) / "spaces" / f"{name_or_path}.yaml"
        return path.read_text(), f"<built-in space {name_or_path}>"
    path = Path(name_or_path)
    if not path.exists():
        raise SpaceError(
            f"no such space: {name_or_path!r} is neither a built-in space "
            f"({', '.join(builtin_spaces())}) nor a file"
        )
    return read_user_file(path, SpaceError, "space file"), str(path)


def read_space(data: Any, source: str = "") -> Space:
    f = Fields(data, "", SpaceError)
    schema = f.str("schema")
    if schema != SCHEMA:
        raise f.fail("schema", f"unsupported schema {schema!r}, expected {SCHEMA!r}")
    stem_f = f.sub("stem")
    stem = {
        "out": _dim(stem_f, "out", None, lo=1, hi=MAX_CHANNELS),
        "kernel": _dim(stem_f, "kernel", KERNELS, 3),
        "stride": _dim(stem_f, "stride", (1, 2), 2),
        "act": _dim(stem_f, "act", STEM_ACTIVATIONS, "relu"),
        "downsample": _dim(stem_f, "downsample", DOWNSAMPLE, "conv"),
    }
    stem_f.done()
    micro_f = f.sub("micro", {})
    micro, attention = _read_micro(micro_f, {}, {})
    micro_f.done()
    stages_f = f.sub("stages")
    slots = []
    for slot_f in stages_f.items("slots", min_len=1):
        override = slot_f.sub("micro", {})
        slot_micro, slot_att = _read_micro(override, micro, attention)
        override.done()
        slots.append(
            Slot(
                stride=_dim(slot_f, "stride", (1, 2), 2),
                depth=_dim(slot_f, "depth", None, lo=1, hi=32),
                width=_dim(slot_f, "width", None, lo=1, hi=MAX_CHANNELS),
                micro=slot_micro,
                attention=slot_att,
            )
        )
        slot_f.done()
    count = _dim(stages_f, "count", None, len(slots), lo=1, hi=len(slots))
    stages_f.done()
    head_f = f.sub("head", {})
    head = {
        "channels": _dim(head_f, "channels", None, 0, lo=0, hi=MAX_CHANNELS),
        "act": _dim(head_f, "act", ACTIVATIONS, "relu"),
        "hidden": _dim(head_f, "hidden", None, 0, lo=0, hi=MAX_CHANNELS),
        "hidden_act": _dim(head_f, "hidden_act", ACTIVATIONS, "hswish"),
        "dropout": _dim(head_f, "dropout", None, 0.0, number=True, lo=0.0, hi=0.9),
        "norm": _dim(head_f, "norm", (False, True), False),
    }
    head_f.done()
    cell_f = f.sub("cell", {})
    cell = _dim(cell_f, "edges", OPS, Dim(OPS))
    cell_f.done()
    macro_f = f.sub("macro", {})
    macro = _dim(macro_f, "layers", LAYERS, Dim(LAYERS))
    macro_f.done()
    space = Space(
        name=f.str("name"),
        description=f.str("description", ""),
        cell=cell,
        macro=macro,
        input_size=_dim(f, "input_size", None, lo=INPUT_SIZES[0], hi=INPUT_SIZES[1]),
        in_channels=f.int("in_channels", 3, lo=1, hi=64),
        num_classes=f.int("num_classes", lo=1, hi=MAX_CLASSES),
        stem=stem,
        count=count,
        slots=tuple(slots),
        head=head,
        source=source,
        raw=data,
    )
    f.done()
    _check_groups_fit(space)
    _check_macro_strides(space)
    return space


def _read_micro(f: Fields, base: dict[str, Dim], base_att: dict[str, Dim]):
    """Per-stage micro domains: the global ``micro`` section, overridden per slot."""
    micro = _read_table(f, _MICRO, base)
    att_f = f.sub("attention", {})
    attention = _read_table(att_f, _ATTENTION, base_att)
    att_f.done()
    return micro, attention


def _read_table(
    f: Fields, table: dict[str, tuple[Sequence[Any] | None, Any]], base: dict[str, Dim]
) -> dict[str, Dim]:
    return {
        key: _dim(
            f,
            key,
            allowed,
            base.get(key) or Dim((default,)),
            number=key in _RATIO_RANGE,
            **_ratio_bounds(key),
        )
        for key, (allowed, default) in table.items()
    }


def _ratio_bounds(key: str) -> dict[str, float]:
    if key not in _RATIO_RANGE:
        return {}
    lo, hi = _RATIO_RANGE[key]
    return {"lo": lo, "hi": hi}


def _dim(
    f: Fields,
    key: str,
    allowed: Sequence[Any] | None,
    default: Any = MISSING,
    *,
    number: bool = False,
    lo: float | None = None,
    hi: float | None = None,
) -> Dim:
    """Read ``key`` as a fixed value, a list / ``{choices: [...]}``, or ``{low, high, step}``.

    Every value is checked here, so a space that loads can only produce valid specs.
    """
    if key not in f.data and isinstance(default, Dim):
        f.raw(key, None)
        return default
    raw, path = f.raw(key, default), join(f.path, key)
    if isinstance(raw, dict) and ("low" in raw or "high" in raw):
        r = Fields(raw, path, SpaceError)
        low = r.int("low", lo=None if lo is None else int(lo))
        high = r.int("high", lo=low, hi=None if hi is None else int(hi))
        step = r.int("step", 1, lo=1)
        r.done()
        return Dim(low=low, high=high, step=step)
    if isinstance(raw, dict):
        r = Fields(raw, path, SpaceError)
        values, path = r.list("choices", min_len=1), f"{path}.choices"
        r.done()
    else:
        values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise SpaceError("needs at least one choice", path=path)
    reader = Fields(
        {join(path, i) if isinstance(raw, (list, dict)) else path: v for i, v in enumerate(values)},
        "",
        SpaceError,
    )
    for where, value in reader.data.items():
        if allowed is not None:
            check_choice(value, tuple(allowed), where, SpaceError)
        elif number:
            reader.float(where, lo=lo, hi=hi)
        else:
            check_int(
                value,
                where,
                SpaceError,
                None if lo is None else int(lo),
                None if hi is None else int(hi),
            )
    if len(set(map(repr, values))) != len(values):
        raise SpaceError("choices repeat a value", path=path)
    return Dim(tuple(values))


def _check_macro_strides(space: Space) -> None:
    """A macro stage opens with a strided layer, so that it is never empty (an identity at
    stride 1 is no layer)."""
    for i, slot in enumerate(space.slots):
        if "macro" in slot.micro["block"].values and 1 in slot.stride.values:
            raise SpaceError(
                "a macro stage opens with a strided layer (an identity at stride 1 "
                "is no layer, so a stage of them would be empty); stride: 2",
                path=f"stages.slots[{i}].stride",
            )


def _check_groups_fit(space: Space) -> None:
    """Every channel count that can enter a condenser must be divisible by every group choice
    (channels derived from ratios are multiples of 8, hence the 8)."""
    widths = set(space.stem["out"].values) | {8}
    for slot in space.slots:
        widths |= set(slot.width.values)
    for i, slot in enumerate(space.slots):
        if "condenser" not in slot.micro["block"].values:
            continue
        for groups in slot.attention["groups"].values:
            bad = sorted(w for w in widths if w % groups)
            if bad:
                own = "groups" in (
                    (space.raw["stages"]["slots"][i].get("micro") or {}).get("attention") or {}
                )
                path = (
                    f"stages.slots[{i}].micro.attention.groups" if own else "micro.attention.groups"
                )
                raise SpaceError(
                    f"groups={groups} does not divide the {bad[0]} channels that "
                    f"can enter a condenser of stage {i}",
                    path=path,
                )
