"""When an SQLite transaction takes the database's write lock.

Every transaction that may write begins with the lock (``BEGIN IMMEDIATE``). Python's
sqlite3 otherwise begins one only at the first write, so Optuna's ``SELECT ... FOR UPDATE``
of a queued trial (a no-op on SQLite) reads outside any lock, and two workers both start the
same queued trial; the second fails on ``Cannot tell a COMPLETE trial``. SQLAlchemy's recipe
for pysqlite.

Transactions that only read begin deferred (plain ``BEGIN``): in write-ahead-log mode they
read a consistent snapshot without the lock, so readers (the sampler's read of every trial,
``show``, a progress bar) never queue behind writers nor hold them up. Reads were more than
half of the time a trial held the lock, the part of a trial that parallel workers cannot
share.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.local()  # each thread its own: heartbeat threads write beside a worker


@contextmanager
def reading() -> Iterator[None]:
    """Transactions begun inside (on this thread) only read."""
    before = getattr(_state, "reading", False)
    _state.reading = True
    try:
        yield
    finally:
        _state.reading = before


def writing() -> bool:
    """Whether a transaction begun now on this thread takes the write lock."""
    return not getattr(_state, "reading", False)


def begin(connection) -> None:
    """SQLAlchemy's ``begin`` event on an SQLite engine (autocommit driver connections)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing() else "BEGIN")
