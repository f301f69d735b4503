"""Studies on disk: configuration files, storage, results, export and reports.

The only package that knows files and storage URLs.
"""

from .budget import Budget, parse_budget
from .config import StudyConfig, StudyError, load_study_file, read_study
from .storage.store import StudyPlace, create, join, load, place

__all__ = [
    "Budget",
    "StudyConfig",
    "StudyError",
    "StudyPlace",
    "create",
    "join",
    "load",
    "load_study_file",
    "parse_budget",
    "place",
    "read_study",
]
