"""A study's ledger: the two facts workers must agree on without scanning trials.

- **Sampler streams.** Every run or worker of a study takes the next unused stream number;
  its sampler is seeded from the study seed and that number, so a resumed study or another
  worker (on any machine) never replays an earlier run's proposals, and one worker starting
  a study from scratch (stream 0) stays deterministic for a seed.
- **Digest claims.** The first trial to reach an architecture claims its digest; any later
  trial of the same architecture, in this worker or another one, is told the owner and
  reuses (or waits for) the owner's result instead of evaluating it again. A claim is O(1).

Both are atomic: a claim either inserts a new key or reports the key's owner. The in-memory
ledger serves in-process studies; ``studies`` provides one in the study's SQL database.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np


class Ledger(Protocol):
    def new_stream(self) -> int:
        """The next stream number no run of this study has taken (0, 1, 2, ...)."""
        ...

    def claim(self, digest: str, trial_id: int) -> int:
        """Claim ``digest`` for ``trial_id``; returns the owner's trial id (ours if we won)."""
        ...

    def take_over(self, digest: str, old: int, new: int) -> int:
        """Move the claim from a failed owner ``old`` to ``new``; returns the owner after it."""
        ...


class MemoryLedger:
    """A ledger for one process (``InMemoryStorage`` studies, feasibility checks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams = 0
        self._claims: dict[str, int] = {}

    def new_stream(self) -> int:
        with self._lock:
            self._streams += 1
            return self._streams - 1

    def claim(self, digest: str, trial_id: int) -> int:
        with self._lock:
            return self._claims.setdefault(digest, trial_id)

    def take_over(self, digest: str, old: int, new: int) -> int:
        with self._lock:
            if self._claims.get(digest) == old:
                self._claims[digest] = new
            return self._claims[digest]


def stream_seed(seed: int, stream: int) -> int:
    """The sampler seed of ``stream``: independent streams from one study seed."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])
