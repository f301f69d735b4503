"""Where exports go: each trial's folder, the names a study's folders have, the hidden
folder an export is written in until it is whole, and the study's record of where its
last export went. Apart from :mod:`.network` (PyTorch, onnxruntime, LiteRT) so that the
report can link to the folders without loading them."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from optuna.trial import FrozenTrial

from ...explorer import record_of
from ...files import process_alive, write_atomic
from ...search_space import Spec
from ..config import StudyConfig

#: in a study's directory: where ``export`` last wrote the study's networks
LAST_EXPORT = "last-export.json"


def exported_spec(trial: FrozenTrial, config: StudyConfig) -> Spec:
    """The trial's architecture, named as its export is: ``<study>-trial<N>``."""
    return Spec.from_dict(record_of(trial).spec).renamed(f"{config.name}-trial{trial.number}")


def export_folder(trial: FrozenTrial, config: StudyConfig, out: Path) -> Path:
    """Where :func:`.network.export_trial` puts a trial: ``<out>/<study>-trial<N>-<digest>``."""
    spec = exported_spec(trial, config)
    return out / f"{spec.name}-{spec.digest}"


def folder_pattern(study: str) -> str:
    """The names :func:`export_folder` gives the study's folders, as a regular expression."""
    return rf"{re.escape(study)}-trial\d+-[0-9a-f]+"


def partial_folder(folder: Path, pid: int) -> Path:
    """Where process ``pid`` writes ``folder`` until it is complete (hidden)."""
    return folder.parent / f".{folder.name}.{pid}.partial"


def remove_abandoned(out: Path, names: str) -> list[Path]:
    """Remove the partial folders in ``out`` of folders named as the regular expression
    ``names`` whose writer is gone: an export killed outright (SIGKILL, power) cannot clean
    up, and its folder would otherwise block the next export. A live writer's is left."""
    pattern = re.compile(rf"\.{names}\.(\d+)\.partial")
    abandoned = [
        p
        for p in sorted(out.glob(".*.partial"))
        if p.is_dir() and (m := pattern.fullmatch(p.name)) and not process_alive(int(m[1]))
    ]
    for path in abandoned:
        shutil.rmtree(path, ignore_errors=True)
    return abandoned


def record_export(study_directory: Path, out: Path) -> str | None:
    """Note in the study's directory (where it has one here) that its networks were exported
    to ``out``, so that ``report`` links them wherever ``--out`` put them; the line to tell
    the user. The folder is noted relative to the study's directory, so that both can move
    together. A directory that cannot be written (shared, read-only) gets a warning, not an
    error: the export itself is done."""
    if not study_directory.is_dir():
        return None
    path = study_directory / LAST_EXPORT
    folder = os.path.relpath(out.resolve(), study_directory.resolve())
    try:
        write_atomic(path, json.dumps({"folder": folder}, indent=2) + "\n")
    except OSError as exc:
        return f"warning: {path} not written ({exc.strerror or exc}): report needs --exports {out}"
    return f"{path}: the report links this export's folders"


def last_export(study_directory: Path) -> Path | None:
    """The folder :func:`record_export` noted, relative to the current folder, if it is
    still there."""
    try:
        noted = json.loads((study_directory / LAST_EXPORT).read_text())["folder"]
        folder = study_directory / noted  # an absolute path stays itself
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Path(os.path.relpath(folder)) if folder.is_dir() else None
