"""Optuna's side of the space walk: each space parameter becomes a trial suggestion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna


class TrialChooser:
    """A :class:`~attend_search.search_space.space.Chooser` backed by an Optuna trial.

    Categorical choices keep their YAML types (int, float, str, bool), which Optuna stores
    as they are, so ``optuna-dashboard`` shows ``s2.block = condenser``.
    """

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def choose(self, name: str, choices: Sequence[Any]) -> Any:
        return self.trial.suggest_categorical(name, list(choices))

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        return self.trial.suggest_int(name, low, high, step=step)
