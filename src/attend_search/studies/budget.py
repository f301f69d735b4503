"""``--budget``: a number of trials (``200``) or a duration (``90s``, ``30m``, ``2h``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import AttendSearchError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Budget:
    trials: int | None = None
    seconds: float | None = None

    def split(self, workers: int) -> list["Budget"]:
        """Per-worker budgets: trials divided exactly, time shared."""
        if self.trials is None:
            return [self] * workers
        share, extra = divmod(self.trials, workers)
        return [Budget(share + (i < extra), None) for i in range(workers) if share + (i < extra)]

    def __str__(self) -> str:
        return f"{self.trials} trials" if self.trials is not None else f"{self.seconds:g} s"


def parse_budget(text: str) -> Budget:
    if text.isdigit() and int(text) > 0:
        return Budget(trials=int(text))
    match = _DURATION.match(text.strip())
    if match and float(match[1]) > 0:
        return Budget(seconds=float(match[1]) * _SECONDS[match[2]])
    raise AttendSearchError(
        f"--budget: {text!r} is neither a number of trials (200) nor a duration (90s, 30m, 2h)"
    )
