"""Optuna's side of the space walk: each space parameter becomes a trial suggestion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from ..search_space.space import Space


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


class FullSpaceChooser:
    """Asks the trial for *every* parameter of the space first, then answers the space walk
    from those values; the ones the walk does not reach are ignored. For samplers that only
    evolve parameters asked on every trial (see :mod:`.samplers`)."""

    def __init__(self, trial: optuna.Trial, space: Space):
        asker = TrialChooser(trial)
        self.values = {
            p.name: p.dim.pick(asker, p.name) for p in space.parameters() if not p.dim.fixed
        }

    def choose(self, name: str, choices: Sequence[Any]) -> Any:
        return self.values[name]

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        return self.values[name]
