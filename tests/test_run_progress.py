"""``run --jobs N`` in a terminal: one progress bar for all workers, fed by the storage."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

from helpers import environment


def test_jobs_2_shows_one_bar_that_counts_every_workers_trials(workdir):
    master, slave = pty.openpty()  # stderr a terminal of 24 x 100, as a user's is
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {k: v for k, v in environment().items() if k != "CI"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "attend_search.cli",
            "run",
            "tiny_study.yaml",
            "--budget",
            "12",
            "--jobs",
            "2",
        ],
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
    bar = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, bar
    counts = [int(n) for n in re.findall(r"2 workers: *\d+%\S* (\d+)/12", bar)]
    assert counts and counts[-1] == 12, bar  # one bar, to the end of the budget
    assert counts == sorted(counts)
    assert "ran 12 trials in study tiny" in stdout  # not "ran 12 trials (12 trials)"
