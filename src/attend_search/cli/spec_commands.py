"""Commands on specs, spaces and presets: ``space``, ``build``, ``presets``.

``space`` and ``presets`` read specs and spaces only (no PyTorch: they answer at once);
``build`` builds the network, and imports PyTorch in its body.
"""

from __future__ import annotations

import argparse
import json

from ..search_space.space import builtin_spaces
from .common import table


def cmd_space(args: argparse.Namespace) -> None:
    from ..constraints import read_constraints
    from ..search_space.space import load_space

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
    narrowed = read_constraints({}).narrow(space).size
    print(f"size: {space.size:.3g} architectures in the space as written ({space.size:,})")
    print(
        f"      {narrowed:.3g} left once the best-practice rules remove the choices they "
        f"forbid (what a study with `constraints: {{use: best-practices}}` searches, and "
        f"what `validate` and the report count)"
    )


def cmd_build(args: argparse.Namespace) -> None:
    from ..evaluators.graph.walk import walk_spec
    from ..search_space import load_spec
    from ..search_space.naming import layer_name
    from ..search_space.summary import layer_table

    spec = load_spec(args.spec)
    layers = layer_table(spec)
    walk = walk_spec(spec)  # MACs per layer: the walk behind the cost and latency figures
    macs = {}
    for op in walk.ops:
        name = layer_name(op.module)
        owner = next(
            (r.name for r in layers if name == r.name or name.startswith(r.name + ".")), None
        )
        if owner is not None:
            macs[owner] = macs.get(owner, 0) + op.macs
    if args.json:
        print(
            json.dumps(
                {
                    "spec": spec.name or args.spec,
                    "digest": spec.digest,
                    "input_shape": [1, spec.in_channels, spec.input_size, spec.input_size],
                    "layers": [
                        {
                            "name": r.name,
                            "type": r.kind,
                            "output_shape": list(r.output_shape),
                            "params": r.params,
                            "macs": macs.get(r.name, 0),
                        }
                        for r in layers
                    ],
                },
                indent=2,
            )
        )
        return
    rows = [["layer", "type", "output shape", "params", "MMACs"]]
    rows += [
        [
            r.name,
            r.kind,
            "x".join(map(str, r.output_shape)),
            f"{r.params:,}",
            f"{macs.get(r.name, 0) / 1e6:,.2f}",
        ]
        for r in layers
    ]
    print(
        f"{spec.name or args.spec}  digest {spec.digest}  input 1x{spec.in_channels}x"
        f"{spec.input_size}x{spec.input_size}"
    )
    print(table(rows, right={3, 4}))
    params = sum(r.params for r in layers)
    print(
        f"total: {params:,} params ({params / 1e6:.3f} M), {walk.macs / 1e6:,.1f} M MACs "
        f"(batch 1; a multi-column stage's merge is in the total, in no layer's row)"
    )


def cmd_presets(args: argparse.Namespace) -> None:
    from ..evaluators.graph.walk import walk_spec
    from ..search_space import get_preset, list_presets

    rows = [["preset", "digest", "M params", "M MACs", "stages", "blocks"]]
    for name in list_presets():
        spec = get_preset(name)
        walk = walk_spec(spec)
        rows.append(
            [
                name,
                spec.digest,
                f"{walk.params / 1e6:.3f}",
                f"{walk.macs / 1e6:,.1f}",
                str(len(spec.stages)),
                str(sum(1 for _ in spec.blocks())),
            ]
        )
    print(table(rows, right={2, 3, 4, 5}))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("space", help="list a search space's parameters and its size")
    s.add_argument(
        "space",
        nargs="?",
        default="attendnext",
        help=f"built-in space ({', '.join(builtin_spaces())}) or YAML file",
    )
    s.set_defaults(func=cmd_space)

    s = sub.add_parser("build", help="build a spec and print its layer table")
    s.add_argument("spec", help="spec JSON file, or a preset name")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("presets", help="list the reference architectures")
    s.set_defaults(func=cmd_presets)
