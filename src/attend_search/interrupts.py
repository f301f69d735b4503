"""Ctrl-C and SIGTERM as a stop request that is never lost and never cuts Optuna's books.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be. Two places are
unsafe for it during a search: Optuna's own bookkeeping between trials (raised inside
``study.tell`` it leaves Optuna's ``_run_trial`` with an ``UnboundLocalError`` and the trial
RUNNING), and SQLAlchemy's weakref callbacks, which swallow it ("Exception ignored") so that
the search runs on. So a signal always records the request; it raises at once except while a
search is :func:`deferred`, where it raises only inside the evaluation of a trial
(:func:`immediate`) and otherwise at the next trial boundary (:func:`raise_if_requested`).
A trial's own storage writes stay deferred too: an interrupt inside a transaction could
leave its connection, and SQLite's write lock, held while the heartbeat thread waits for
that lock and the trial for the heartbeat thread (a run that took a minute to stop).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_requested = threading.Event()
_immediate = True


def install() -> None:
    """Route SIGINT and SIGTERM (a scheduler, ``kill``, ``docker stop``) through :func:`_stop`."""
    _requested.clear()
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def _stop(signum: int, frame: object) -> None:
    """Remember the request, and raise it where that is safe. A second SIGTERM is ignored
    while the running trial is closed; a second Ctrl-C interrupts again."""
    _requested.set()
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if _immediate:
        raise KeyboardInterrupt


def raise_if_requested() -> None:
    """Raise the ``KeyboardInterrupt`` a signal asked for while it was deferred or swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextmanager
def _mode(immediate: bool) -> Iterator[None]:
    global _immediate
    before, _immediate = _immediate, immediate
    try:
        if immediate:  # a request that came while deferred is honoured on the way in
            raise_if_requested()
        yield
    finally:
        _immediate = before


def deferred() -> Iterator[None]:
    """Around a search loop: a signal waits for a trial boundary or :func:`immediate`."""
    return _mode(False)


def immediate() -> Iterator[None]:
    """Around a trial's evaluation, which may run for minutes: a signal stops it at once."""
    return _mode(True)
