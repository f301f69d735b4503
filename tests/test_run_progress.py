"""``run --jobs N`` in a terminal: one progress bar for all workers, fed by the storage."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from helpers import environment


def in_terminal(workdir, *args):
    """``run *args`` with stderr a terminal of 24 x 100, as a user's is: (stdout, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {k: v for k, v in environment().items() if k != "CI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "attend_search.cli", "run", "tiny_study.yaml", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout, _ = proc.communicate(timeout=300)
    os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, terminal
    return stdout, terminal


def test_jobs_2_shows_one_bar_that_counts_every_workers_trials(workdir):
    stdout, bar = in_terminal(workdir, "--budget", "12", "--jobs", "2")
    counts = [int(n) for n in re.findall(r"2 workers: *\d+%\S* (\d+)/12", bar)]
    assert counts and counts[-1] == 12, bar  # one bar, to the end of the budget
    assert counts == sorted(counts)
    assert "ran 12 trials in study tiny" in stdout  # not "ran 12 trials (12 trials)"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_no_progress_draws_no_bar_in_a_terminal(workdir, jobs):
    stdout, terminal = in_terminal(workdir, "--budget", "4", "--jobs", jobs, "--no-progress")
    assert "ran 4 trials in study tiny" in stdout
    assert "%" not in terminal and "trial/s" not in terminal, terminal
