"""Faults injected into real runs: failing, hanging and killed evaluations, signals, locks.

Evaluations misbehave through ``tests/faults/sitecustomize.py`` (see there), in a
subprocess started exactly as a user starts the command line.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import helpers
import optuna
import pytest
import yaml
from helpers import GRACE, POSTGRES, cli, fault_env, storage_trials
from optuna.trial import TrialState

from attend_search.explorer import record_of


def start(*args, cwd, fault, mark, group=False):
    """The command line in the background, with a fault; returns once the fault is reached."""
    return helpers.start(*args, cwd=cwd, env=fault_env(fault, mark), until=mark.exists, group=group)


def study_file(workdir, storage):
    """The tiny study, under a fresh name when it lives on the shared PostgreSQL server."""
    if storage is None:
        return "tiny_study.yaml", "tiny", []
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    study = yaml.safe_load((workdir / "tiny_study.yaml").read_text())
    (workdir / "named.yaml").write_text(yaml.safe_dump({**study, "name": name}))
    return "named.yaml", name, ["--storage", storage]


def trials_of(workdir, name, storage):
    url = storage or f"sqlite:///{workdir}/studies/{name}/study.db"
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


STORAGES = [
    None,
    pytest.param(
        POSTGRES,
        marks=pytest.mark.skipif(
            not POSTGRES, reason="set ATTEND_SEARCH_TEST_POSTGRES (.ci/run starts a server)"
        ),
    ),
]


@pytest.mark.parametrize("storage", STORAGES, ids=["sqlite", "postgresql"])
def test_a_worker_killed_mid_trial_loses_nothing_and_its_trial_is_retried_once(workdir, storage):
    file, name, extra = study_file(workdir, storage)
    mark = workdir / "evaluating"
    proc = start("run", file, "--budget", 50, *extra, cwd=workdir, fault="hang:4", mark=mark)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t for t in trials_of(workdir, name, storage)}
    (killed,) = [t for t in before.values() if t.state == TrialState.RUNNING]
    done = {n: t.values for n, t in before.items() if t.state == TrialState.COMPLETE}
    assert len(done) >= 3
    time.sleep(GRACE + 1)  # the dead worker's heartbeat goes stale

    cli("run", file, "--budget", 4, *extra, cwd=workdir, env=fault_env())
    after = trials_of(workdir, name, storage)
    by_number = {t.number: t for t in after}
    assert by_number[killed.number].state == TrialState.FAIL
    retries = [t for t in after if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state == TrialState.COMPLETE and not record_of(retries[0]).duplicate_of
    assert {n: by_number[n].values for n in done} == done  # nothing lost or changed
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    assert len(complete) == len(done) + 4  # nothing counted twice
    assert len({t.number for t in after}) == len(after)
    assert not [t for t in after if t.state == TrialState.RUNNING]


@pytest.mark.parametrize(
    "fault, message",
    [
        ("raise:2", "RuntimeError: CUDA out of memory"),
        ("nan:2", "ValueError: not a finite value: synflow = nan"),
    ],
    ids=["raises", "nan-proxy"],
)
def test_a_failing_evaluation_fails_its_trial_with_the_message_and_the_study_goes_on(
    workdir, fault, message
):
    cli("run", "tiny_study.yaml", "--budget", 6, cwd=workdir, env=fault_env(fault))
    trials = storage_trials(workdir)
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert message in record_of(failed).error
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5


@pytest.mark.parametrize(
    "option, limit", [(["--max-failures", 3], 3), ([], 5)], ids=["max-failures-3", "default"]
)
def test_failures_in_a_row_stop_the_run_with_exit_1_and_the_last_traceback(workdir, option, limit):
    out = cli(
        "run",
        "tiny_study.yaml",
        "--budget",
        50,
        *option,
        cwd=workdir,
        check=False,
        env=fault_env("raise:all"),
    )
    assert out.returncode == 1, out.stderr
    assert f"stopped after {limit} trials failed in a row" in out.stderr
    assert "Traceback" in out.stderr and "sitecustomize.py" in out.stderr
    assert [t.state for t in storage_trials(workdir)] == [TrialState.FAIL] * limit


def test_debug_shows_each_failed_trials_traceback(workdir):
    out = cli(
        "--debug",
        "run",
        "tiny_study.yaml",
        "--budget",
        2,
        cwd=workdir,
        check=False,
        env=fault_env("raise:1"),
    )
    assert out.returncode == 0, out.stderr
    assert "Trial 0 failed" in out.stderr and 'raise RuntimeError("CUDA out of memory' in out.stderr


def test_a_hanging_evaluation_ends_at_the_trial_timeout_and_the_worker_goes_on(workdir):
    started = time.time()
    cli(
        "run",
        "tiny_study.yaml",
        "--budget",
        3,
        "--trial-timeout",
        2,
        cwd=workdir,
        env=fault_env("hang:1"),
    )
    assert time.time() - started < 120
    trials = storage_trials(workdir)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert "took longer than 2 s" in record_of(failed).error


@pytest.mark.parametrize(
    "command, sig", [("run", signal.SIGTERM), ("worker", signal.SIGTERM), ("worker", signal.SIGINT)]
)
def test_a_signal_closes_the_running_trial_and_says_how_to_resume(workdir, command, sig):
    cli("run", "tiny_study.yaml", "--budget", 1, cwd=workdir)
    target = "tiny_study.yaml" if command == "run" else "tiny"
    mark = workdir / "evaluating"
    proc = start(command, target, "--budget", 50, cwd=workdir, fault="hang:2", mark=mark)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"to resume: attend-search {command} {target} --budget N" in err
    assert "--max-failures" not in err  # at its default
    assert err.count("interrupted") == 1 and "failed with value" not in err, err
    assert "Traceback" not in err
    trials = storage_trials(workdir)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    cli(command, target, "--budget", 2, cwd=workdir)
    assert sum(t.state == TrialState.COMPLETE for t in storage_trials(workdir)) == complete + 2


def test_ctrl_c_on_run_jobs_2_says_once_how_to_resume_and_logs_no_failed_trials(workdir):
    """Ctrl-C reaches the run and both its workers (one process group): one message, the
    run's own command to resume, and no Optuna warning for the trials it closed."""
    mark = workdir / "evaluating"
    args = ("run", "tiny_study.yaml", "--budget", 50, "--jobs", 2, "--trial-timeout", 60)
    proc = start(*args, "--max-failures", 3, cwd=workdir, fault="hang:2", mark=mark, group=True)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "interrupted: the running trial was closed as failed and completed trials are kept; "
        "to resume: attend-search run tiny_study.yaml --budget N --jobs 2 --max-failures 3 "
        "--trial-timeout 60"
    ]
    assert not [t for t in storage_trials(workdir) if t.state == TrialState.RUNNING]


def test_a_storage_locked_by_another_process_is_exit_2_with_a_message(workdir):
    cli("run", "tiny_study.yaml", "--budget", 1, cwd=workdir)
    lock = sqlite3.connect(workdir / "studies" / "tiny" / "study.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        out = cli(
            "run",
            "tiny_study.yaml",
            "--budget",
            1,
            cwd=workdir,
            check=False,
            env={"ATTEND_SEARCH_LOCK_TIMEOUT": "1"},
        )
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert out.returncode == 2, out.stderr
    assert "is locked by another process" in out.stderr and "Traceback" not in out.stderr


def test_a_folder_that_is_not_a_study_is_exit_2_and_nothing_is_written(workdir):
    """(A changed configuration: test_study_cli's test_a_changed_config_is_refused_not_mixed_in.)"""
    (workdir / "notes").mkdir()
    for command in ("show", "report", "export", "worker"):
        args = ["--budget", 1] if command == "worker" else []
        out = cli(command, "notes", *args, cwd=workdir, check=False)
        assert out.returncode == 2 and "no study named 'notes'" in out.stderr, out.stderr
        out = cli(command, str(workdir), *args, cwd=workdir, check=False)
        assert out.returncode == 2 and "is a directory but not a study" in out.stderr
    assert not (workdir / "studies").exists() and not (workdir / "study.db").exists()


class PrivateServer:
    """A throwaway PostgreSQL server of this test's own, so that restarting it disturbs no
    other test; needs the server binaries (``.ci/start-postgres`` installs them) and root."""

    PORT = 5439

    def __init__(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins or os.geteuid() != 0:
            pytest.skip("needs PostgreSQL's server binaries and root (.ci/start-postgres)")
        self.bin = bins[-1].parent
        self.data = Path(tempfile.mkdtemp(prefix="attend-search-postgres-"))  # not under
        shutil.chown(self.data, "postgres")  # pytest's tmp: root-only, and postgres isn't
        self._as_postgres(f"{self.bin}/initdb -D {self.data} -A trust -U postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.PORT}/postgres"

    def _as_postgres(self, command: str) -> None:
        out = subprocess.run(["su", "postgres", "-c", command], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

    def ctl(self, action: str) -> None:
        options = f"-p {self.PORT} -k {self.data} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            f"{self.bin}/pg_ctl -D {self.data} -m fast -w -l {self.data}/log "
            f"-o '{options}' {action}"
        )


@pytest.fixture(scope="module")
def private_server():
    server = PrivateServer()
    server.ctl("start")
    yield server
    server.ctl("stop")
    shutil.rmtree(server.data)


def run_until_paused(workdir, server, budget):
    """``run`` on the private server, its third evaluation paused until the mark is gone."""
    mark = workdir / "evaluating"
    file, name, extra = study_file(workdir, server.url)
    proc = start("run", file, "--budget", budget, *extra, cwd=workdir, fault="pause:3", mark=mark)
    return proc, mark, file, name, extra


@pytest.mark.slow
def test_a_postgresql_restart_mid_trial_costs_nothing(workdir, private_server):
    proc, mark, _, name, _ = run_until_paused(workdir, private_server, 6)
    private_server.ctl("restart")  # every pooled connection and the heartbeat's die
    mark.unlink()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, err
    trials = trials_of(workdir, name, private_server.url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6


@pytest.mark.slow
def test_a_postgresql_server_lost_mid_trial_stops_clearly_and_the_study_resumes(
    workdir, private_server
):
    proc, mark, file, name, extra = run_until_paused(workdir, private_server, 6)
    private_server.ctl("stop")
    mark.unlink()  # the trial ends while the server is away
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "lost the connection to the storage" in err and "run the same command again" in err
    private_server.ctl("start")
    before = trials_of(workdir, name, private_server.url)
    (lost,) = [t for t in before if t.state == TrialState.RUNNING]  # nothing half-written:
    assert record_of(lost) is None  # no record, no values
    time.sleep(GRACE + 1)
    cli("run", file, "--budget", 2, *extra, cwd=workdir, env=fault_env())
    after = {t.number: t for t in trials_of(workdir, name, private_server.url)}
    assert after[lost.number].state == TrialState.FAIL
    assert sum(t.state == TrialState.COMPLETE for t in after.values()) == 2 + 2
    retried = [t for t in after.values() if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
