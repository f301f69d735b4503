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
    match = _DURATION.match(text.strip())
    if text.isdigit() or match:
        amount = int(text) if text.isdigit() else float(match[1])
        if amount > 0:
            return (
                Budget(trials=amount)
                if text.isdigit()
                else Budget(seconds=amount * _SECONDS[match[2]])
            )
        raise AttendSearchError(
            f"--budget: {text!r} must be positive: at least 1 trial, or a duration above 0"
        )
    raise AttendSearchError(
        f"--budget: {text!r} is neither a number of trials (200) nor a duration (90s, 30m, 2h)"
    )
