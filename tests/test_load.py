"""Load: 4 worker processes x 50 trials on one study, on SQLite and on PostgreSQL."""

import time

import pytest
from helpers import cli
from optuna.trial import TrialState
from test_faults import STORAGES, study_file, trials_of

from attend_search.explorer import record_of


@pytest.mark.slow
@pytest.mark.parametrize("storage", STORAGES, ids=["sqlite", "postgresql"])
def test_four_workers_finish_exactly_200_trials_with_no_lock_failure(workdir, storage):
    file, name, extra = study_file(workdir, storage)
    started = time.time()
    out = cli("run", file, "--budget", 200, "--jobs", 4, *extra, cwd=workdir)
    print(
        f"{storage and 'postgresql' or 'sqlite'}: 200 trials, 4 workers, "
        f"{time.time() - started:.0f} s"
    )
    assert "ran 200 trials" in out.stdout and "locked" not in out.stderr
    trials = trials_of(workdir, name, storage)
    assert sorted(t.number for t in trials) == list(range(200))
    failed = [record_of(t).error for t in trials if t.state == TrialState.FAIL]
    assert failed == []
    assert len({record_of(t).stream for t in trials}) == 4  # one sampler stream per worker
