"""Helpers shared by the command modules: reading specs, printing tables."""

from __future__ import annotations

from pathlib import Path

from ..errors import SpecError
from ..search_space import Spec, get_preset, list_presets


def read_spec(arg: str) -> Spec:
    """A spec from a JSON file, or a preset by name."""
    if arg in list_presets() and not Path(arg).exists():
        return get_preset(arg)
    path = Path(arg)
    if not path.is_file():
        raise SpecError(f"no such spec file (presets: {', '.join(list_presets())})", source=arg)
    return Spec.from_json(path.read_text(), source=str(path))


def table(rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """Plain-text table; the first row is the header, ``right`` the right-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
