"""The ``attend-search`` command: a thin layer over the library.

User mistakes end with exit code 2 and one line naming the file and field; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import AttendSearchError, SpecError
from .search_space import Spec, get_preset, list_presets
from .search_space.space import builtin_spaces, load_space
from .search_space.summary import layer_table


def read_spec(arg: str) -> Spec:
    """A spec from a JSON file, or a preset by name."""
    if arg in list_presets() and not Path(arg).exists():
        return get_preset(arg)
    path = Path(arg)
    if not path.is_file():
        raise SpecError(f"no such spec file (presets: {', '.join(list_presets())})", source=arg)
    return Spec.from_json(path.read_text(), source=str(path))


def _table(rows: list[list[str]], right: set[int] = frozenset()) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
    print(_table(rows))
    print(f"\nfixed: {', '.join(fixed)}")
    print(f"size: {space.size:,} architectures ({space.size:.2e})")


def cmd_build(args: argparse.Namespace) -> None:
    spec = read_spec(args.spec)
    table = layer_table(spec)
    rows = [["layer", "type", "output shape", "params"]]
    rows += [[r.name, r.kind, "x".join(map(str, r.output_shape)), f"{r.params:,}"] for r in table]
    print(f"{spec.name or args.spec}  digest {spec.digest}  input 1x{spec.in_channels}x"
          f"{spec.input_size}x{spec.input_size}")
    print(_table(rows, right={3}))
    print(f"total parameters: {sum(r.params for r in table):,}")


def cmd_presets(args: argparse.Namespace) -> None:
    rows = [["preset", "digest", "params", "stages", "blocks"]]
    for name in list_presets():
        spec = get_preset(name)
        params = sum(r.params for r in layer_table(spec))
        rows.append([name, spec.digest, f"{params:,}", str(len(spec.stages)),
                     str(sum(1 for _ in spec.blocks()))])
    print(_table(rows, right={2, 3, 4}))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="attend-search",
        description="Design fast attention-condenser backbones for edge devices.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("space", help="list a search space's parameters and its size")
    s.add_argument("space", nargs="?", default="attendnext",
                   help=f"built-in space ({', '.join(builtin_spaces())}) or YAML file")
    s.set_defaults(func=cmd_space)

    s = sub.add_parser("build", help="build a spec and print its layer table")
    s.add_argument("spec", help="spec JSON file, or a preset name")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("presets", help="list the reference architectures")
    s.set_defaults(func=cmd_presets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except AttendSearchError as exc:
        if args.debug:
            raise
        print(f"attend-search: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
