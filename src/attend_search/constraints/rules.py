"""Best-practice rules: structural checks on a spec, each returning a violation amount.

A violation is 0 when the rule holds and grows with how badly it is broken (a count of
offending layers, channels over a bound), so samplers that learn from constraint values
(Optuna's NSGA-II, TPE, GP) are pulled towards the feasible region, not just told no.
Rules read the spec only: they run before anything is built or evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..search_space import Spec
from ..search_space.space import Dim, Space


@dataclass(frozen=True)
class Rule:
    name: str
    doc: str
    check: Callable[..., float]
    params: dict[str, type | int]  # bool, or the least value of an integer parameter
    narrow: Callable[..., Space] | None = None


RULES: dict[str, Rule] = {}


def rule(
    narrow: Callable[..., Space] | None = None, **params: type | int
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register ``fn(spec, **params) -> violation`` under its name; its docstring says why.
    Each parameter is ``bool`` or an integer given by its least allowed value.

    ``narrow(space, **params)``, when given, removes from the space the choices that could
    only break the rule, so sampling does not waste trials on them (the rule is still
    checked on every candidate).
    """

    def register(fn: Callable[..., float]) -> Callable[..., float]:
        RULES[fn.__name__] = Rule(
            fn.__name__, (fn.__doc__ or "").strip().split("\n")[0], fn, params, narrow
        )
        return fn

    return register


def _only(dim: Dim, value: Any) -> Dim:
    """The dimension fixed to ``value`` when it offers it (else unchanged: the rule will say)."""
    return Dim((value,)) if value in dim.values else dim


def _narrow_micro(space: Space, key: str, value: Any, applies: Callable[[Any], bool]) -> Space:
    slots = tuple(
        replace(slot, micro={**slot.micro, key: _only(slot.micro[key], value)})
        if applies(slot)
        else slot
        for slot in space.slots
    )
    return replace(space, slots=slots)


def _aads_only(space: Space, stem: bool = False) -> Space:
    space = _narrow_micro(
        space, "downsample", "aads", lambda slot: any(s > 1 for s in slot.stride.values)
    )
    if stem:
        space = replace(
            space, stem={**space.stem, "downsample": _only(space.stem["downsample"], "aads")}
        )
    return space


def _condensers_only(space: Space, min: int = 1) -> Space:
    """Block types are chosen per stage, so a condenser in a stage means a condenser stage."""
    return _narrow_micro(space, "block", "condenser", lambda slot: min > 0)


def _channel_counts(spec: Spec) -> list[int]:
    counts = [spec.stem.out]
    for layout in spec.blocks():
        block = layout.block
        counts += [block.out] + ([block.mid] if block.mid else [])
        if block.attention:
            counts.append(block.attention.embed)
    if spec.head.channels:
        counts.append(spec.head.channels)
    if spec.head.hidden:
        counts.append(spec.head.hidden)
    return counts


@rule(multiple=1)
def simd_channels(spec: Spec, multiple: int = 8) -> float:
    """Channel counts are multiples of the SIMD width, so no vector lane is wasted."""
    return float(sum(1 for c in _channel_counts(spec) if c % multiple))


@rule(narrow=_aads_only, stem=bool)
def aads_downsampling(spec: Spec, stem: bool = False) -> float:
    """Every stride-2 layer is anti-aliased (blur-pool), for shift robustness (Zhang 2019)."""
    bad = sum(1 for lay in spec.blocks() if lay.block.stride > 1 and lay.block.downsample != "aads")
    if stem and spec.stem.stride > 1 and spec.stem.downsample != "aads":
        bad += 1
    return float(bad)


@rule(narrow=_condensers_only, min=0)
def condensers_per_stage(spec: Spec, min: int = 1) -> float:
    """Each stage holds at least ``min`` attention condenser blocks (per column)."""
    return float(
        sum(max(0, min - sum(b.type == "condenser" for b in stage.blocks)) for stage in spec.stages)
    )


@rule(max=1)
def max_depth(spec: Spec, max: int = 24) -> float:
    """At most ``max`` blocks in sequence: deep, narrow nets are latency-bound on small CPUs."""
    depth = sum(len(stage.blocks) for stage in spec.stages)
    return float(depth - max) if depth > max else 0.0


@rule()
def width_non_decreasing(spec: Spec) -> float:
    """Stage widths never shrink with depth (the information bottleneck rule of MobileNets)."""
    widths = [spec.stem.out] + [spec.stage_out(i) for i in range(len(spec.stages))]
    return float(sum(max(0, a - b) for a, b in zip(widths, widths[1:])) / max(widths))


def check_rule(name: str, spec: Spec, params: dict[str, Any]) -> float:
    return RULES[name].check(spec, **params)
