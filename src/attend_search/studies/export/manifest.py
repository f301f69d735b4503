"""What an export folder holds now: ``<study>.manifest.json``, and the folders it replaces.

A study's export folders are named ``<study>-trial<N>-<digest>``. Re-exporting after the
study went on (``make demo`` again) chooses other trials, and the earlier folders would be
left beside the current ones with nothing to tell them apart. So each export run writes a
manifest (which trials, in which folders, the study's state, when, with which options),
and folders of the study that the run does not write are *stale*: the export refuses to
run beside them, and removes them with ``force``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from optuna.trial import FrozenTrial

from ... import __version__
from ...errors import AttendSearchError
from ...files import write_atomic
from ..results import counts
from .folders import folder_pattern
from .network import file_sha256

SCHEMA = "attend-search/export-manifest/v1"


def manifest_path(out: Path, study: str) -> Path:
    return out / f"{study}.manifest.json"


def stale_folders(out: Path, study: str, current: Sequence[Path]) -> list[Path]:
    """The study's export folders in ``out`` that are not ``current``. Half-written ones are
    not: a live export's is its own, a dead one's :func:`.folders.remove_abandoned` removes."""
    if not out.is_dir():
        return []
    pattern = re.compile(folder_pattern(study))
    keep = {p.name for p in current}
    return sorted(
        p for p in out.iterdir() if p.is_dir() and pattern.fullmatch(p.name) and p.name not in keep
    )


def refuse_stale(stale: Sequence[Path], force: bool) -> None:
    if stale and not force:
        raise AttendSearchError(
            f"{stale[0]} is from an earlier export of this study and this export does not "
            f"write it"
            + (f" ({len(stale) - 1} more)" if len(stale) > 1 else "")
            + "; --force removes such folders, or export to another --out"
        )


def remove_stale(stale: Sequence[Path]) -> None:
    for path in stale:
        shutil.rmtree(path)


def write_manifest(
    out: Path,
    study: str,
    trials: list[FrozenTrial],
    exported: Sequence[tuple[FrozenTrial, Path]],
    tables: Sequence[Path],
    options: dict,
    removed: Sequence[Path],
) -> Path:
    """Record this export run (see the module docstring); returns the manifest's path."""
    finished = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    c = counts(trials)
    document = {
        "schema": SCHEMA,
        "study": study,
        "written_at": _iso(datetime.now(timezone.utc)),
        "attend_search": __version__,
        "options": options,  # the formats, the selection (pareto, top K, trial N)
        "study_state": {
            "trials": len(trials),
            "complete": c.complete,
            "infeasible": c.infeasible,
            "running": c.running,
            "last_trial": max((t.number for t in trials), default=None),
            "last_finished_at": _iso(max(finished)) if finished else None,
        },
        "exports": [
            {
                "trial": t.number,
                "folder": folder.name,
                "spec_digest": folder.name.rsplit("-", 1)[1],
                "weights_sha256": file_sha256(folder / "weights.safetensors"),
            }
            for t, folder in exported
        ],
        "tables": [p.name for p in tables],
        "removed_stale": [p.name for p in removed],
    }
    path = manifest_path(out, study)
    write_atomic(path, json.dumps(document, indent=2) + "\n")
    return path


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # Optuna stores local naive times
        moment = moment.astimezone()
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")
