"""``evaluate STUDY --trial N``: the study's own settings give the study's own numbers."""

import json

import pytest
from helpers import cli, storage_trials

from attend_search.explorer import record_of


def test_evaluate_a_trial_reproduces_what_the_study_stored(workdir):
    cli("run", "tiny_study.yaml", "--budget", "6", cwd=workdir)
    trial = next(t for t in storage_trials(workdir) if record_of(t).feasible)
    stored = record_of(trial).metrics
    out = cli("evaluate", "tiny", "--trial", trial.number, "--json", cwd=workdir)
    data = json.loads(out.stdout)
    assert data["settings"] == {"proxy_batch_size": 4, "seed": 0}  # tiny_study.yaml's, not 16
    assert data["digest"] == record_of(trial).digest
    assert data["proxies"]["synflow"] == pytest.approx(stored["synflow"], rel=1e-6)
    assert data["latency"]["device"] == "cortex-a72"
    assert data["latency"]["ms"] == pytest.approx(stored["latency.cortex-a72"], rel=1e-9)
    assert data["stored"] == stored

    text = cli("evaluate", "tiny", "--trial", trial.number, cwd=workdir).stdout
    assert "(proxies: batch 4, seed 0)" in text and "stored in the study" in text

    missing = cli("evaluate", "tiny", "--trial", 999, cwd=workdir, check=False)
    assert (
        missing.returncode == 2
        and "--trial 999: study tiny has no evaluated trial" in missing.stderr
    )
