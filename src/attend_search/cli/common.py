"""Helpers shared by the command modules: printing tables, checking numbers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def positive(kind: type) -> Callable[[str], int | float]:
    """An argparse type: a number of ``kind`` above 0 (a count, a number of seconds)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a positive {'integer' if kind is int else 'number'}"
            )
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def table(rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """Plain-text table; the first row is the header, ``right`` the right-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
