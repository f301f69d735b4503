"""The cluster recipe of docs/many-machines.md: one PostgreSQL study, N ``attend-search worker``
processes started independently (as a SLURM job array starts them), and ``show`` following
the whole study from anywhere while they run."""

import re
import subprocess
import sys
import time
import uuid

import pytest
import yaml
from helpers import POSTGRES, cli, environment, postgres_trials

from attend_search.explorer import record_of

pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="set ATTEND_SEARCH_TEST_POSTGRES (bash .ci/start-postgres prints one)"
)


def _counts(text: str) -> tuple[int, int]:
    """(finished, running) from `show`'s first line."""
    total = int(re.search(r": (\d+) trials:", text)[1])
    running = re.search(r", (\d+) running", text)
    return total - (int(running[1]) if running else 0), int(running[1]) if running else 0


def test_n_workers_on_one_postgresql_study_and_show_follows_them(workdir):
    name = f"tiny-cluster-{uuid.uuid4().hex[:8]}"
    study = yaml.safe_load((workdir / "tiny_study.yaml").read_text())
    (workdir / "cluster.yaml").write_text(yaml.safe_dump({**study, "name": name}))
    # step 1, once (the job the array depends on): create the study, run its first trials
    cli("run", "cluster.yaml", "--budget", "2", "--storage", POSTGRES, cwd=workdir)
    # step 2, the array: each task is one worker knowing only the study's name and URL
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "attend_search.cli",
                "worker",
                name,
                "--storage",
                POSTGRES,
                "--budget",
                "30",
            ],
            cwd=workdir,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    seen = []
    while any(w.poll() is None for w in workers):
        show = cli("show", name, "--storage", POSTGRES, cwd=workdir)
        seen.append(_counts(show.stdout))
        time.sleep(0.5)
    for w in workers:
        _, err = w.communicate()
        assert w.returncode == 0, err
    final = cli("show", name, "--storage", POSTGRES, cwd=workdir).stdout
    assert _counts(final) == (92, 0)
    assert "Pareto set" in final
    # while the workers ran, show saw the study grow (how many ran at once depends on load)
    middle = [finished for finished, _ in seen if 2 < finished < 92]
    assert middle and middle == sorted(middle), seen
    trials = postgres_trials(name)
    assert sorted(t.number for t in trials) == list(range(92))
    # each worker sampled from its own stream of the study's ledger: the run's and three more
    assert len({record_of(t).stream for t in trials}) == 4
