"""``--jobs N``: N worker processes on this machine, each a plain ``attend-search worker``.

Processes, not threads: evaluation is CPU-bound Python and PyTorch. Each worker joins the
study through its storage and takes its own sampler stream from the study's ledger, exactly
as a worker on another machine would. The parent draws one progress bar for all of them by
counting the study's finished trials in the storage, so it shows every worker's trials
(and those of workers on other machines) without any channel but the database. Stopping the
parent (Ctrl-C, SIGTERM) stops the workers the same way, each closing its running trial,
before the parent returns.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from ..errors import RunStopped
from .budget import Budget

POLL_SECONDS = 0.5


def run_workers(
    name: str,
    url: str,
    root: str,
    budget: Budget,
    jobs: int,
    options: list[str] = (),
    debug: bool = False,
    finished: Callable[[], int] | None = None,
) -> None:
    """Split ``budget`` among ``jobs`` workers (each given ``options``) and wait for all;
    with ``finished`` (the study's count of finished trials), show their progress in one bar."""
    commands = [
        [
            sys.executable,
            "-m",
            "attend_search.cli",
            *["--debug"] * debug,
            "worker",
            name,
            *options,
            "--storage",
            url,
            "--root",
            root,
            "--no-progress",
            "--spawned",
            "--budget",
            str(share.trials) if share.trials is not None else f"{share.seconds:g}s",
        ]
        for share in budget.split(jobs)
    ]
    supervise(
        commands,
        None if finished is None else lambda procs: _progress(procs, finished, budget),
    )


def supervise(
    commands: list[list[str]],
    watch: Callable[[list[subprocess.Popen]], None] | None = None,
) -> None:
    """Run ``commands`` as processes at once (``watch`` given them while they run) and wait
    for all: stopped together on Ctrl-C, and a failure of any reported once they end."""
    procs = [subprocess.Popen(cmd) for cmd in commands]
    try:
        if watch is not None:
            watch(procs)
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        _stop(procs)
        raise
    failed = [c for c in codes if c != 0]
    if failed:  # a spawned worker stopped by a signal of its own (130) prints nothing
        interrupted = sum(c == 130 for c in failed)
        raise RunStopped(
            f"{len(failed)} of {len(procs)} workers stopped"
            + (f" ({interrupted} interrupted)" if interrupted else "")
            + (" (see their messages above)" if interrupted < len(failed) else "")
        )


def _progress(procs: list[subprocess.Popen], finished: Callable[[], int], budget: Budget) -> None:
    """One bar, advanced by the trials the storage says have finished since the start."""
    start = finished()
    with tqdm(
        total=budget.trials, unit="trial", desc=f"{len(procs)} workers", dynamic_ncols=True
    ) as bar:
        while True:
            done = all(p.poll() is not None for p in procs)
            bar.update(finished() - start - bar.n)
            if done:
                return
            time.sleep(POLL_SECONDS)


def _stop(procs: list[subprocess.Popen]) -> None:
    """Ask the workers still running to stop as Ctrl-C would, and wait for them."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()
