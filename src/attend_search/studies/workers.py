"""``--jobs N``: N worker processes on this machine, each a plain ``attend-search worker``.

Processes, not threads: evaluation is CPU-bound Python and PyTorch. Each worker joins the
study through its storage and takes its own sampler stream from the study's ledger, exactly
as a worker on another machine would.
"""

from __future__ import annotations

import subprocess
import sys

from .budget import Budget
from .config import StudyError


def run_workers(name: str, url: str, root: str, budget: Budget, jobs: int) -> None:
    """Split ``budget`` among ``jobs`` workers and wait for all of them."""
    procs = []
    for share in budget.split(jobs):
        cmd = [sys.executable, "-m", "attend_search.cli", "worker", name, "--storage", url,
               "--root", root, "--no-progress", "--budget",
               str(share.trials) if share.trials is not None else f"{share.seconds:g}s"]
        procs.append(subprocess.Popen(cmd))
    failed = [p.args for p in procs if p.wait() != 0]
    if failed:
        raise StudyError(f"{len(failed)} of {len(procs)} workers failed (see their messages above)")
