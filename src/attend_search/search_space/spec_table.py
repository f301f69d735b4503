"""CSV tables with one network a row: ``spec`` and figures measured of it (latencies for
``latency calibrate``, accuracies for ``proxy fit``). Every error names the file, the line and
the column."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path

from ..errors import AttendSearchError
from .fields import read_user_file
from .presets import load_spec
from .spec import Spec


def read_spec_table(
    path: Path,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    error: type[AttendSearchError],
    what: str,
) -> Iterator[tuple[Spec, dict[str, str], str]]:
    """Each row's spec (a spec JSON path relative to the CSV, else what :func:`load_spec`
    reads: a preset, ``nb201:ARCH``, ``macro:ARCH``), its cells, and where it is
    (``file:line``). ``required`` are the columns after ``spec``."""
    text = read_user_file(path, error, what)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = ("spec", *required, *optional)
    header = reader.fieldnames or []
    expected = f"expected {', '.join(('spec', *required))}" + (
        f" and optionally {', '.join(optional)}" if optional else ""
    )
    for c in ("spec", *required):
        if c not in header:
            raise error(f"header lacks column {c!r} ({expected})", source=f"{path}:1")
    for c in header:
        if c not in columns:
            raise error(f"unknown column {c!r} ({expected})", source=f"{path}:1")
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row or None in row.values():
                raise error(
                    f"{'more' if None in row else 'fewer'} fields than the header", source=where
                )
            yield _spec(row["spec"].strip(), path, where, error), row, where
    except csv.Error as exc:
        raise error(f"malformed CSV: {exc}", source=f"{path}:{reader.line_num}") from None


def _spec(name: str, path: Path, where: str, error: type[AttendSearchError]) -> Spec:
    if not name:
        raise error("empty", path="spec", source=where)
    candidate = path.parent / name
    try:
        return load_spec(str(candidate) if candidate.exists() else name)
    except AttendSearchError as exc:
        raise error(str(exc), path="spec", source=where) from None


def number(
    text: str,
    column: str,
    where: str,
    error: type[AttendSearchError],
    kind: type = float,
    positive: bool = True,
) -> float:
    """A cell's finite number (positive unless told), or ``error`` naming the file, line and
    column."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or (positive and not value > 0):
        sign = "positive " if positive else ""
        raise error(
            f"expected a {sign}{'integer' if kind is int else 'number'}, got {text.strip()!r}",
            path=column,
            source=where,
        )
    return value
