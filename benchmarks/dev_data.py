"""Where the benchmarks find the public dev data: ``../shared/data`` beside the repository
(``shared/data/<benchmark>/README.md`` says what each file holds)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NB201_DEV = SHARED_DATA / "nb201" / "nb201_dev.csv"
MACRO_DEV = SHARED_DATA / "macro" / "macro_dev.csv"
