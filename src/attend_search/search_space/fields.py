"""Reading untrusted mappings (parsed JSON / YAML) with errors that name the field path.

Every reader knows where it is (``stages[2].blocks[0]``), so a bad value is reported as
``stages[2].blocks[0].kernel: 4 is not one of 3, 5, 7`` instead of a KeyError deep inside.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import AttendSearchError

MISSING: Any = object()

#: the largest input file read: a study, space, spec or profile is a few KiB
MAX_FILE_BYTES = 8 * 2**20
#: the most values a document may hold once YAML aliases are expanded (a "billion laughs"
#: file is a few hundred bytes that expand to 10^9 values when walked)
MAX_VALUES = 100_000


def read_user_file(path: str | Path, error: type[AttendSearchError], what: str = "file") -> str:
    """The text of a file the user named, or ``error`` naming it: missing, a directory, too
    large, unreadable or not UTF-8 are a user's mistakes, not tracebacks."""
    p, source = Path(path), str(path)
    if p.is_dir():
        raise error(f"is a directory, expected a {what}", source=source)
    if not p.is_file():
        raise error(f"no such {what}", source=source)
    try:
        data = p.read_bytes() if p.stat().st_size <= MAX_FILE_BYTES else None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", source=source) from None
    if data is None:
        raise error(f"too large for a {what} (over {MAX_FILE_BYTES // 2**20} MiB)", source=source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line}", source=source
        ) from None


def parse_yaml(text: str, source: str, error: type[AttendSearchError]) -> Any:
    """Parsed YAML (safe loader: plain data, never objects), or ``error`` naming the file,
    line and column of the syntax mistake, or saying the document is too deep or too big."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise error(
            f"malformed YAML{where}: {getattr(exc, 'problem', None) or exc}", source=source
        ) from None
    except RecursionError:
        raise error("YAML nested too deeply", source=source) from None
    check_size(data, source, error)
    return data


def check_size(data: Any, source: str, error: type[AttendSearchError]) -> None:
    """Refuse a document of more than :data:`MAX_VALUES` values, aliases expanded, before
    anything walks it (readers, digests, ``json.dumps`` of the stored configuration)."""
    pending, seen = [data], 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise error(
                f"document too large: more than {MAX_VALUES:,} values once YAML "
                f"aliases are expanded",
                source=source,
            )
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(values: Sequence[Any]) -> str:
    return ", ".join(_show(v) for v in values)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return repr(value)


def did_you_mean(word: str, names: Sequence[str]) -> str | None:
    """The one of ``names`` that looks like a typo of ``word`` (or ``word`` of it), if any:
    one rule of likeness for every "did you mean" a user reads."""
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.75)
    return close[0] if close else None


class Fields:
    """A mapping being read, with its path; unread keys are an error at :meth:`done`."""

    def __init__(self, data: Any, path: str, error: type[AttendSearchError]):
        self.path = path
        self.error = error
        if not isinstance(data, Mapping):
            raise error(f"expected a mapping, got {type(data).__name__}", path=path or "<root>")
        self.data = data
        self._read: set[str] = set()

    def fail(self, key: str | int, message: str) -> AttendSearchError:
        return self.error(message, path=join(self.path, key))

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = MISSING) -> Any:
        self._read.add(key)
        if key not in self.data or self.data[key] is None and default is not MISSING:
            if default is MISSING:
                raise self._unknown_or_missing(key)
            return default
        return self.data[key]

    def _unknown_or_missing(self, key: str) -> AttendSearchError:
        """A required key is absent: name the unread key that looks like a typo of it."""
        typo = did_you_mean(key, [str(k) for k in self.data if k not in self._read])
        if typo:
            return self.fail(typo, f"unknown field (did you mean {key!r}?)")
        return self.error("missing required field", path=join(self.path, key))

    def sub(self, key: str, default: Any = MISSING) -> "Fields":
        return Fields(self.raw(key, default), join(self.path, key), self.error)

    def items(self, key: str, default: Any = MISSING, min_len: int = 0) -> list["Fields"]:
        """A list of mappings."""
        return [
            Fields(v, join(join(self.path, key), i), self.error)
            for i, v in enumerate(self.list(key, default, min_len))
        ]

    def list(self, key: str, default: Any = MISSING, min_len: int = 0) -> list[Any]:
        value = self.raw(key, default)
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {type(value).__name__}")
        if len(value) < min_len:
            raise self.fail(key, f"needs at least {min_len} item(s), got {len(value)}")
        return value

    def int(
        self,
        key: str,
        default: Any = MISSING,
        lo: int | None = None,
        hi: int | None = None,
        choices: Sequence[int] | None = None,
    ) -> int:
        value = self.raw(key, default)
        return check_int(value, join(self.path, key), self.error, lo, hi, choices)

    def float(
        self, key: str, default: Any = MISSING, lo: float | None = None, hi: float | None = None
    ) -> float:
        value = self.raw(key, default)
        if value is None and default is None:  # optional and absent
            return None
        value = _yaml_number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {_show(value)}")
        if not math.isfinite(float(value) if abs(value) < 1e308 else math.inf):
            raise self.fail(key, f"expected a finite number, got {_show(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(key, f"{_show(value)} is outside [{lo}, {hi}]")
        return float(value)

    def bool(self, key: str, default: Any = MISSING) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_show(value)}")
        return value

    def str(self, key: str, default: Any = MISSING) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_show(value)}")
        return value

    def choice(self, key: str, choices: Sequence[Any], default: Any = MISSING) -> Any:
        value = self.raw(key, default)
        return check_choice(value, choices, join(self.path, key), self.error)

    def done(self, allowed_extra: Sequence[str] = ()) -> None:
        """Refuse keys nobody read: a typo must not be silently ignored."""
        unknown = [k for k in self.data if k not in self._read and k not in allowed_extra]
        if unknown:
            raise self.fail(str(unknown[0]), "unknown field")


def _yaml_number(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``4.0e6`` as a string; accept what Python reads as a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def check_int(
    value: Any,
    path: str,
    error: type[AttendSearchError],
    lo: int | None = None,
    hi: int | None = None,
    choices: Sequence[int] | None = None,
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"expected an integer, got {_show(value)}", path=path)
    if choices is not None and value not in choices:
        raise error(f"{value} is not one of {describe(choices)}", path=path)
    if lo is not None and value < lo:
        raise error(f"{value} is below the minimum {lo}", path=path)
    if hi is not None and value > hi:
        raise error(f"{value} is above the maximum {hi}", path=path)
    return value


def check_choice(
    value: Any, choices: Sequence[Any], path: str, error: type[AttendSearchError]
) -> Any:
    if isinstance(value, bool) != any(isinstance(c, bool) for c in choices) or value not in choices:
        raise error(f"{_show(value)} is not one of {describe(choices)}", path=path)
    return value
