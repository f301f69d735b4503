"""One ``refine`` process: it trains the runs of a study's refinement it can claim, rung by rung.

Each chosen trial is one training run (:func:`.training_run.run_training`) in the study's
directory, ``refine/trial-N/``, whose learning-rate schedule spans the last rung's epochs: a
rung stops the run at its epochs and the next rung continues it from its checkpoint, so a
trial that reaches the last rung has had exactly ``attend-search train --epochs E``. Any
number of processes (``--jobs``, or other machines on the same storage) share the runs
through their claims (:mod:`.storage.refine_table`); at a rung's end each waits for the
others' runs of that rung, whose top-1 decide the next rung's trials.

Stopped (Ctrl-C, SIGTERM), a process gives its unfinished claims back; the same command
again reads the finished rungs back and continues each unfinished run from its last epoch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy.exc

from .. import interrupts
from ..evaluators.training.datasets import Dataset
from ..evaluators.training.recipe import Recipe
from ..files import write_atomic
from .config import StudyConfig
from .export.folders import exported_spec
from .refinement import Plan, entrants, run_folder
from .results import candidates
from .storage.refine_table import RefineTable, me
from .storage.trial_reader import read_trials
from .training_run import CHECKPOINT, METRICS, run_training

POLL_SECONDS = 1.0  # how often a process waiting at a rung's end looks again


def refine(
    study: optuna.Study,
    config: StudyConfig,
    directory: Path,
    table: RefineTable,
    plan: Plan,
    data: Dataset,
    report: Callable[[str], None],
    **options,
) -> int:
    """Train what this process can claim until every rung is measured; returns how many runs
    it trained. ``options`` go to :func:`run_training` (device, amp, channels_last)."""
    trials = {t.number: t for t in candidates(read_trials(study, params=False))}
    recipe = Recipe(**plan.recipe)
    owner, trained = me(), 0
    with interrupts.deferred(), _heartbeat(table, owner):
        try:
            for rung, epochs in enumerate(plan.rungs):
                while True:
                    interrupts.raise_if_requested()
                    rows = table.rungs()
                    chosen = entrants(plan, rows, rung)
                    done = {r.trial for r in rows if r.rung == rung and r.done}
                    left = [] if chosen is None else [t for t in chosen if t not in done]
                    if chosen is not None and not left:
                        break
                    mine = next((t for t in left if table.claim(t, rung, epochs, owner)), None)
                    if mine is None:  # the others' runs of this rung are still training
                        time.sleep(POLL_SECONDS)
                        continue
                    began = time.perf_counter()
                    scores = _train_to(
                        trials[mine], config, directory, recipe, data, epochs, options
                    )
                    seconds = time.perf_counter() - began
                    table.finish(mine, rung, scores, seconds)
                    trained += 1
                    report(
                        f"trial {mine}, rung {rung + 1} of {len(plan.rungs)} ({epochs} "
                        f"epoch{'s' * (epochs != 1)}): top-1 {scores['val_top1']:.4f} "
                        f"({seconds:.1f} s)"
                    )
        finally:
            table.release(owner)
    return trained


def _train_to(
    trial: optuna.trial.FrozenTrial,
    config: StudyConfig,
    directory: Path,
    recipe: Recipe,
    data: Dataset,
    epochs: int,
    options: dict,
) -> dict[str, float]:
    """Continue the trial's run to ``epochs`` (from its checkpoint, if any); its log entry
    there. A run already past them (trained by a process that died before recording) is
    read, not trained."""
    folder = run_folder(directory, trial.number)
    spec = exported_spec(trial, config)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "spec.json", spec.to_json())
    log = _log(folder)
    if len(log) < epochs:
        with interrupts.immediate():
            trained = run_training(
                spec,
                data,
                recipe,
                folder,
                source=f"study {config.name}, trial {trial.number}, refined",
                resume=(folder / CHECKPOINT).is_file(),
                formats=("json",),
                stop_after=epochs - len(log),
                progress=False,
                **options,
            )
        log = trained.log
    return log[epochs - 1]


def _log(folder: Path) -> list[dict[str, float]]:
    metrics = folder / METRICS
    return json.loads(metrics.read_text())["epochs"] if metrics.is_file() else []


@contextmanager
def _heartbeat(table: RefineTable, owner: str) -> Iterator[None]:
    """Renew ``owner``'s claims every third of the grace period while the block runs. A
    missed beat (the storage away for a moment) only risks a take-over, never a stop."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(table.grace / 3):
            try:
                table.beat(owner)
            except sqlalchemy.exc.SQLAlchemyError:
                pass

    thread = threading.Thread(target=beat, name="refine-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
