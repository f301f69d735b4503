"""Latencies measured on a board, as a CSV for ``latency calibrate``.

``spec,latency_ms[,input_size]`` with a header; ``spec`` is a spec JSON path relative to the
CSV, or a preset name. Every error names the file, the line and the column.
"""

from __future__ import annotations

from pathlib import Path

from ...search_space.spec_table import number, read_spec_table
from ..runtimes import MeasurementError
from .calibrate import Sample


def read_measurements(path: Path) -> list[Sample]:
    """Rows of ``spec,latency_ms[,input_size]`` with a header; ``spec`` is a spec JSON path
    relative to the CSV, or a preset name. Errors name the file, line and column."""
    samples: list[Sample] = []
    for spec, row, where in read_spec_table(
        path, ("latency_ms",), ("input_size",), MeasurementError, "measurements file"
    ):
        ms = number(row["latency_ms"], "latency_ms", where, MeasurementError)
        if not (row.get("input_size") or "").strip():
            samples.append((spec, None, ms))
            continue
        size = number(row["input_size"], "input_size", where, MeasurementError, int)
        samples.append((spec, (1, spec.in_channels, size, size), ms))
    if len(samples) < 2:
        raise MeasurementError(
            f"needs at least 2 measurements, got {len(samples)}", source=str(path)
        )
    return samples
