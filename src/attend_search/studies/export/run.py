"""One ``export`` run over a study: the trials table, the chosen trials' folders, the stale
folders of earlier runs, and the manifest that says what is current (:mod:`.manifest`).

Everything that can be refused is checked before anything is written: the formats, the
calibration images, files that exist, stale folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from optuna.trial import FrozenTrial

from ...errors import AttendSearchError
from ...evaluators.runtimes.quantize import calibration_batch
from ...explorer import record_of
from ...files import atomic_path, write_atomic
from ...search_space import Spec
from ..config import StudyConfig
from ..refinement import Refinement
from ..results import trials_frame
from .folders import export_folder, folder_pattern, record_export, remove_abandoned
from .manifest import refuse_stale, remove_stale, stale_folders, write_manifest
from .network import TABLE_FORMATS, Int8, export_trial, refuse_overwrite


@dataclass(frozen=True)
class ExportOptions:
    """The ``export`` command's options, as the manifest records them."""

    formats: tuple[str, ...]
    selection: str  # "pareto", "top 3", "trial 17"
    seed: int = 0
    quantize: str | None = None
    calibration: str | None = None
    calibration_images: int = 64


def export_study(
    config: StudyConfig,
    trials: list[FrozenTrial],
    chosen: list[FrozenTrial],
    out: Path,
    options: ExportOptions,
    force: bool = False,
    study_directory: Path | None = None,
    refinement: Refinement | None = None,
) -> Iterator[str]:
    """Write the export; yields a line per file or folder written or removed. Where networks
    were exported, ``study_directory`` records ``out`` for the report
    (:func:`.folders.record_export`). A study's ``refinement`` puts the accuracy measured
    beside the estimates, in the table and on the cards."""
    if options.quantize and not options.calibration:
        raise AttendSearchError(
            f"--quantize {options.quantize} needs --calibration: images to "
            f"calibrate on (digits, a .npz file or an image folder)"
        )
    model_formats = [f for f in options.formats if f not in TABLE_FORMATS]
    tables = {f: out / f"{config.name}-trials.{f}" for f in options.formats if f in TABLE_FORMATS}
    folders = [export_folder(t, config, out) for t in chosen]
    stale = stale_folders(out, config.name, folders) if model_formats else []
    refuse_stale(stale, force)
    refuse_overwrite([*tables.values(), *folders], force)
    calibration = [_int8(t, options) for t in chosen]
    out.mkdir(parents=True, exist_ok=True)
    for path in remove_abandoned(out, folder_pattern(config.name)):
        yield f"{path}: removed (half-written by an export that was killed)"
    for fmt, path in tables.items():
        frame = trials_frame(trials)
        for column, values in (refinement.columns() if refinement else {}).items():
            frame[column] = frame["number"].map(values)
        if fmt == "csv":
            write_atomic(path, frame.to_csv(index=False))
        else:
            with atomic_path(path) as tmp:
                frame.to_parquet(tmp, index=False)
        yield f"{path}: {len(frame)} trials"
    exported = []
    for trial, int8 in zip(chosen, calibration):
        folder = export_trial(
            trial,
            config,
            model_formats,
            out,
            seed=options.seed,
            int8=int8,
            force=force,
            details=refinement.card(trial.number) if refinement else (),
        )
        exported.append((trial, folder))
        yield (
            f"{folder}: trial {trial.number} "
            f"({', '.join(sorted(p.name for p in folder.iterdir()))})"
        )
    remove_stale(stale)
    yield from (f"{path}: removed (from an earlier export, no longer chosen)" for path in stale)
    manifest = write_manifest(
        out, config.name, trials, exported, list(tables.values()), asdict(options), stale
    )
    yield f"{manifest}: {len(exported)} network(s), {len(tables)} table(s)"
    whole_front = options.selection == "pareto"  # not a single trial's folder
    if whole_front and exported and study_directory:
        yield from filter(None, [record_export(study_directory, out)])


def _int8(trial: FrozenTrial, options: ExportOptions) -> Int8 | None:
    if not options.quantize:
        return None
    spec = Spec.from_dict(record_of(trial).spec)
    images, labels = calibration_batch(
        options.calibration, spec, options.calibration_images, seed=options.seed
    )
    return Int8(options.calibration, images, labels)
