"""One ``refine`` process: it trains the runs of a study's refinement it can claim, rung by rung.

Each chosen trial is one training run (:func:`.training_run.run_training`) in the study's
directory, ``refine/trial-N/``, whose learning-rate schedule spans the last rung's epochs: a
rung stops the run at its epochs and the next rung continues it from its checkpoint, so a
trial that reaches the last rung has had exactly ``attend-search train --epochs E``. Any
number of processes (``--jobs``, or other machines on the same storage) share the runs
through their claims (:mod:`.storage.refine_table`), each taking first the runs whose
checkpoint it holds; at a rung's end each waits for the others' runs of that rung, whose
top-1 decide the next rung's trials. A process whose claim was taken over (its heartbeats
did not reach the storage for the grace period) stops that run and discards its result.

Stopped (Ctrl-C, SIGTERM), a process gives its unfinished claims back; the same command
again reads the finished rungs back and continues each unfinished run from its last epoch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy.exc

from .. import interrupts
from ..errors import AttendSearchError
from ..evaluators.training.datasets import Dataset
from ..evaluators.training.recipe import Recipe
from ..files import write_atomic
from .config import StudyConfig
from .export.folders import exported_spec
from .refinement import Plan, entrants, run_folder
from .results import candidates
from .storage.refine_table import RefineTable, me
from .storage.trial_reader import read_trials
from .training_run import CHECKPOINT, EXPORT, read_checkpoint, run_training

POLL_SECONDS = 1.0  # how often a process waiting at a rung's end looks again


class ClaimLost(AttendSearchError):
    """This process's claim of the run it trains was taken over by another."""


class _Holder:
    """The claim this process trains now, and the one whose renewal found it taken over."""

    def __init__(self) -> None:
        self.current: tuple[int, int] | None = None
        self.lost: tuple[int, int] | None = None


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
    owner, trained, last = me(), 0, len(plan.rungs) - 1
    holder = _Holder()
    with interrupts.deferred(), _heartbeat(table, owner, holder):
        try:
            for rung, epochs in enumerate(plan.rungs):
                while True:
                    interrupts.raise_if_requested()
                    rows = table.rungs()
                    chosen = entrants(plan, rows, rung)
                    held = {r.trial: r for r in rows if r.rung == rung}
                    if chosen is not None and all(t in held and held[t].done for t in chosen):
                        break
                    # free or abandoned runs, those whose checkpoint is here first
                    free = [
                        t
                        for t in chosen or []
                        if t not in held or (not held[t].done and held[t].stale)
                    ]
                    free.sort(key=lambda t: not (run_folder(directory, t) / CHECKPOINT).is_file())
                    mine = next((t for t in free if table.claim(t, rung, epochs, owner)), None)
                    if mine is None:  # the others' runs of this rung are still training
                        time.sleep(POLL_SECONDS)
                        continue
                    holder.current, holder.lost = (mine, rung), None
                    began = time.perf_counter()
                    lost = (
                        f"trial {mine}, rung {rung + 1}: its claim was taken over by another "
                        f"process (no heartbeat reached the storage for {table.grace:g} s); "
                        f"this run's result is discarded"
                    )
                    try:
                        scores = _train_to(
                            trials[mine],
                            config,
                            directory,
                            recipe,
                            data,
                            epochs,
                            options,
                            export=rung == last,
                            still_mine=lambda claim=(mine, rung): holder.lost != claim,
                        )
                    except ClaimLost:
                        report(lost)
                        continue
                    finally:
                        holder.current = None
                    seconds = time.perf_counter() - began
                    if not table.finish(mine, rung, owner, scores, seconds):
                        report(lost)
                        continue
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
    export: bool = False,
    still_mine: Callable[[], bool] = lambda: True,
) -> dict[str, float]:
    """Continue the trial's run to ``epochs`` (from its checkpoint, if any, whose epoch is
    where it stands); its log entry there. A run already past them (trained by a process
    that died before recording) is read, not trained; at the last rung (``export``) one
    whose export is missing is resumed for no epoch, which exports it. ``still_mine`` is
    asked after each epoch: False stops the run (:class:`ClaimLost`)."""
    folder = run_folder(directory, trial.number)
    spec = exported_spec(trial, config)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "spec.json", spec.to_json())
    state = read_checkpoint(folder)
    at, log = (0, []) if state is None else (state["epoch"], state["log"])
    if at < epochs or (export and not (folder / EXPORT).is_dir()):

        def check(_entry: dict[str, float]) -> None:
            if not still_mine():
                raise ClaimLost(f"trial {trial.number}: claim taken over")

        with interrupts.immediate():
            trained = run_training(
                spec,
                data,
                recipe,
                folder,
                source=f"study {config.name}, trial {trial.number}, refined",
                resume=state is not None,
                formats=("json",),
                stop_after=max(0, epochs - at),
                progress=False,
                report=check,
                **options,
            )
        log = trained.log
    return log[epochs - 1]


@contextmanager
def _heartbeat(table: RefineTable, owner: str, holder: _Holder) -> Iterator[None]:
    """Renew the claim ``holder`` trains every third of the grace period while the block
    runs; a renewal that finds it taken over marks it lost. A missed beat (the storage away
    for a moment) only risks a take-over, which the run's finish then finds."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(table.grace / 3):
            claim = holder.current
            if claim is None:
                continue
            try:
                if not table.beat(owner, *claim) and holder.current == claim:
                    holder.lost = claim
            except sqlalchemy.exc.SQLAlchemyError:
                pass

    thread = threading.Thread(target=beat, name="refine-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
