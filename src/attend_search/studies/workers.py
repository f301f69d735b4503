"""``--jobs N``: N worker processes on this machine, each a plain ``attend-search worker``.

Processes, not threads: evaluation is CPU-bound Python and PyTorch. Each worker joins the
study through its storage and takes its own sampler stream from the study's ledger, exactly
as a worker on another machine would. Stopping the parent (Ctrl-C, SIGTERM) stops the
workers the same way, each closing its running trial, before the parent returns.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from .budget import Budget
from ..errors import RunStopped


def run_workers(name: str, url: str, root: str, budget: Budget, jobs: int,
                options: list[str] = (), debug: bool = False) -> None:
    """Split ``budget`` among ``jobs`` workers (each given ``options``) and wait for all."""
    procs = []
    for share in budget.split(jobs):
        cmd = [sys.executable, "-m", "attend_search.cli", *["--debug"] * debug, "worker", name,
               *options, "--storage", url, "--root", root, "--no-progress", "--budget",
               str(share.trials) if share.trials is not None else f"{share.seconds:g}s"]
        procs.append(subprocess.Popen(cmd))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        _stop(procs)
        raise
    failed = [c for c in codes if c != 0]
    if failed:
        raise RunStopped(f"{len(failed)} of {len(procs)} workers failed (see their messages above)")


def _stop(procs: list[subprocess.Popen]) -> None:
    """Ask the workers still running to stop as Ctrl-C would, and wait for them."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()
