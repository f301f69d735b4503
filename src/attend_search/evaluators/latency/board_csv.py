"""Latencies measured on a board, as a CSV for ``latency calibrate``.

``spec,latency_ms[,input_size]`` with a header; ``spec`` is a spec JSON path relative to the
CSV, or a preset name. Every error names the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ...errors import AttendSearchError
from ...search_space import load_spec
from ...search_space.fields import read_user_file
from ..runtimes import MeasurementError
from .calibrate import Sample

_COLUMNS = ("spec", "latency_ms", "input_size")


def read_measurements(path: Path) -> list[Sample]:
    """Rows of ``spec,latency_ms[,input_size]`` with a header; ``spec`` is a spec JSON path
    relative to the CSV, or a preset name. Errors name the file, line and column."""
    text = read_user_file(path, MeasurementError, "measurements file")
    samples: list[Sample] = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        _check_header(reader.fieldnames or [], f"{path}:1")
        for row in reader:
            samples.append(_read_row(row, path, reader.line_num))
    except csv.Error as exc:
        raise MeasurementError(
            f"malformed CSV: {exc}", source=f"{path}:{reader.line_num}"
        ) from None
    if len(samples) < 2:
        raise MeasurementError(
            f"needs at least 2 measurements, got {len(samples)}", source=str(path)
        )
    return samples


def _check_header(header: list[str], where: str) -> None:
    expected = "expected spec, latency_ms and optionally input_size"
    missing = [c for c in _COLUMNS[:2] if c not in header]
    if missing:
        raise MeasurementError(f"header lacks column {missing[0]!r} ({expected})", source=where)
    unknown = [c for c in header if c not in _COLUMNS]
    if unknown:
        raise MeasurementError(f"unknown column {unknown[0]!r} ({expected})", source=where)


def _read_row(row: dict, path: Path, line: int) -> Sample:
    where = f"{path}:{line}"
    if None in row or None in row.values():
        raise MeasurementError(
            f"{'more' if None in row else 'fewer'} fields than the header", source=where
        )
    name = row["spec"].strip()
    if not name:
        raise MeasurementError("empty", path="spec", source=where)
    candidate = path.parent / name
    try:
        spec = load_spec(str(candidate) if candidate.exists() else name)
    except AttendSearchError as exc:
        raise MeasurementError(str(exc), path="spec", source=where) from None
    ms = _number(row["latency_ms"], "latency_ms", where, float)
    if not row.get("input_size", "").strip():
        return spec, None, ms
    size = _number(row["input_size"], "input_size", where, int)
    return spec, (1, spec.in_channels, size, size), ms


def _number(text: str, column: str, where: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise MeasurementError(
            f"expected a positive {'integer' if kind is int else 'number'}, got {text.strip()!r}",
            path=column,
            source=where,
        )
    return value
