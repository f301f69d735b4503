"""The explorer: drives Optuna over a search space under constraints.

The only package that knows Optuna's ``Trial``; it knows nothing of files (see ``studies``).
"""

from .evaluation import Evaluation, Training
from .objectives import Objective, check_metric
from .search import PRUNERS, SAMPLERS, SearchConfig, open_study, optimize

__all__ = ["PRUNERS", "SAMPLERS", "Evaluation", "Objective", "SearchConfig", "Training",
           "check_metric", "open_study", "optimize"]
