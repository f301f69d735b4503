"""Commands on specs, spaces and presets: ``space``, ``build``, ``presets``."""

from __future__ import annotations

import argparse

from ..search_space import get_preset, list_presets
from ..search_space.space import builtin_spaces, load_space
from ..search_space.summary import layer_table
from ..search_space import load_spec
from .common import table


def cmd_space(args: argparse.Namespace) -> None:
    space = load_space(args.space)
    print(f"space {space.name}" + (f" ({space.source})" if space.source else ""))
    if space.description:
        print(space.description.strip())
    rows = [["parameter", "choices", "asked when"]]
    fixed = []
    for p in space.parameters():
        if p.dim.fixed:
            fixed.append(f"{p.name}={p.dim.values[0]}")
        else:
            rows.append([p.name, str(p.dim), p.when])
    print()
    print(table(rows))
    print(f"\nfixed: {', '.join(fixed)}")
    print(f"size: {space.size:,} architectures ({space.size:.2e})")


def cmd_build(args: argparse.Namespace) -> None:
    spec = load_spec(args.spec)
    layers = layer_table(spec)
    rows = [["layer", "type", "output shape", "params"]]
    rows += [[r.name, r.kind, "x".join(map(str, r.output_shape)), f"{r.params:,}"] for r in layers]
    print(f"{spec.name or args.spec}  digest {spec.digest}  input 1x{spec.in_channels}x"
          f"{spec.input_size}x{spec.input_size}")
    print(table(rows, right={3}))
    print(f"total parameters: {sum(r.params for r in layers):,}")


def cmd_presets(args: argparse.Namespace) -> None:
    rows = [["preset", "digest", "params", "stages", "blocks"]]
    for name in list_presets():
        spec = get_preset(name)
        params = sum(r.params for r in layer_table(spec))
        rows.append([name, spec.digest, f"{params:,}", str(len(spec.stages)),
                     str(sum(1 for _ in spec.blocks()))])
    print(table(rows, right={2, 3, 4}))



def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("space", help="list a search space's parameters and its size")
    s.add_argument("space", nargs="?", default="attendnext",
                   help=f"built-in space ({', '.join(builtin_spaces())}) or YAML file")
    s.set_defaults(func=cmd_space)

    s = sub.add_parser("build", help="build a spec and print its layer table")
    s.add_argument("spec", help="spec JSON file, or a preset name")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("presets", help="list the reference architectures")
    s.set_defaults(func=cmd_presets)
