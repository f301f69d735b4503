"""Helpers shared by the command modules: printing tables, checking numbers."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import AttendSearchError


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


def check_output_file(out: str | Path, what: str) -> None:
    """Fail before minutes of measuring or scoring, not after: ``out`` must be a file that can
    be written (not a folder; its folder exists and is writable)."""
    out = Path(out)
    if out.is_dir():
        raise AttendSearchError(f"is a directory, expected the {what} to write", source=str(out))
    folder = out.resolve().parent
    if not folder.is_dir():
        raise AttendSearchError(
            f"the folder to write the {what} in does not exist", source=str(out)
        )
    if not os.access(folder, os.W_OK):
        raise AttendSearchError(
            f"the folder to write the {what} in is not writable", source=str(out)
        )


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


def check_top(args: argparse.Namespace) -> None:
    """``--sort`` only with ``--top``."""
    if args.sort is not None and args.top is None:
        raise AttendSearchError("--sort ranks the --top K; give --top K as well")


def study_arguments(p: argparse.ArgumentParser) -> None:
    """``--storage`` and ``--root``: where a command finds the study it names."""
    p.add_argument(
        "--storage",
        help="Optuna storage URL (default: sqlite in the study "
        "directory; also $ATTEND_SEARCH_STORAGE), e.g. postgresql://user@host/db",
    )
    p.add_argument(
        "--root",
        default="studies",
        help="folder of study directories (default: studies, in the current folder)",
    )
