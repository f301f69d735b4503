"""The explorer: drives Optuna over a search space under constraints.

The only package that knows Optuna's ``Trial``; it knows nothing of files (see ``studies``).
"""

from .evaluation import Evaluation, Training
from .ledger import Ledger, MemoryLedger
from .metrics import METRICS, Objective, check_metric, kind_of
from .record import TrialRecord, record_of
from .samplers import PRUNERS, SAMPLERS
from .search import Run, SearchConfig, open_study, optimize

__all__ = [
    "METRICS",
    "PRUNERS",
    "SAMPLERS",
    "Evaluation",
    "Ledger",
    "MemoryLedger",
    "Objective",
    "Run",
    "SearchConfig",
    "Training",
    "TrialRecord",
    "check_metric",
    "kind_of",
    "open_study",
    "optimize",
    "record_of",
]
