"""optuna-dashboard, the real server, on one of our studies: infeasible trials are flagged.

The dashboard (0.21) reads a trial's constraints from the list-form ``constraints`` system
attribute only, and marks a trial infeasible when one of them is above 0; the explorer writes
that form (``explorer.search._constrain``), so the dashboard's plots grey out exactly the
trials ``attend-search show`` counts as infeasible.
"""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import cli, environment, storage_trials

from attend_search.explorer import record_of


def _dashboard() -> str:
    beside = Path(sys.executable).parent / "optuna-dashboard"
    found = str(beside) if beside.exists() else shutil.which("optuna-dashboard")
    if found is None:
        pytest.fail("optuna-dashboard is not installed: pip install 'attend-search[dashboard]'")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, deadline: float):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except (ConnectionError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_dashboard_shows_infeasible_trials_as_infeasible(workdir):
    study = yaml.safe_load((workdir / "tiny_study.yaml").read_text())
    study["constraints"]["params"] = {"max": 15000}  # about a third of the trials exceed it
    (workdir / "tiny_study.yaml").write_text(yaml.safe_dump(study))
    cli("run", "tiny_study.yaml", "--budget", "12", cwd=workdir)
    records = {t.number: record_of(t) for t in storage_trials(workdir)}
    ours = {number: r.feasible for number, r in records.items()}
    assert 0 < sum(ours.values()) < len(ours)  # both kinds, or the test proves nothing

    port = _free_port()
    server = subprocess.Popen(
        [
            _dashboard(),
            "sqlite:///studies/tiny/study.db",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        deadline = time.monotonic() + 60
        (summary,) = _get(base, deadline)["study_summaries"]
        detail = _get(f"{base}/{summary['study_id']}", deadline)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # the dashboard's own rule (its bundle.js): feasible when every constraint is <= 0
    theirs = {t["number"]: all(c <= 0 for c in t["constraints"]) for t in detail["trials"]}
    assert theirs == ours
    for t in detail["trials"]:  # the worst violation is the one the record names
        assert max(t["constraints"]) == pytest.approx(max(records[t["number"]].violations.values()))
