"""A trial's parameters written to the storage in one transaction.

Optuna writes each suggested parameter at once, a transaction each: about 70 a trial in the
full space, some 60 ms, all of it under SQLite's write lock, so that parallel workers queue
for it. While the space is resolved nothing reads the trial's parameters back from the
storage (the trial object keeps them), so they are collected and written together when the
walk ends, by a storage that offers ``set_trial_params`` (:mod:`attend_search.studies.store`);
any other storage gets them one by one, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna


class _Collecting:
    """The trial's storage, except that parameters are kept aside."""

    def __init__(self, storage: Any):
        self._storage = storage
        self.params: list[tuple[str, float, Any]] = []

    def set_trial_param(self, trial_id: int, name: str, value: float, distribution: Any) -> None:
        self.params.append((name, value, distribution))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


@contextmanager
def params_written_together(trial: optuna.Trial) -> Iterator[None]:
    storage = trial.storage
    backend = getattr(storage, "_backend", storage)   # Optuna wraps RDB storages in a cache
    if not hasattr(backend, "set_trial_params"):
        yield
        return
    collecting = _Collecting(storage)
    trial.storage = collecting
    try:
        yield
    finally:
        trial.storage = storage
    backend.set_trial_params(trial._trial_id, collecting.params)
