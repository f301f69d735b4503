"""``--trial-timeout``: end an evaluation that hangs, so one bad candidate cannot stall a worker.

A timer signal (SIGALRM) raises :class:`TrialTimeout` in the evaluating thread at its next
Python bytecode or interruptible wait. PyTorch returns to Python between operators, so a
slow or stuck evaluation ends within one operator; code stuck inside a single C call is
beyond its reach (kill the worker: the heartbeat retries its trial). POSIX only, and only
in the main thread, which is where Optuna runs trials with one job per process.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class TrialTimeout(Exception):
    """An evaluation ran past its deadline; the trial fails and the worker goes on."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TrialTimeout` in the body after ``seconds`` (None: no deadline)."""
    if seconds is None:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TrialTimeout(f"the evaluation took longer than {seconds:g} s (--trial-timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
