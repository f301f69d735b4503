"""Studies end to end, through the command line as a user runs it."""

import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import onnxruntime as ort
import optuna
import pytest
import torch
import yaml
from helpers import DATA, POSTGRES, cli, dump, environment, postgres_trials, start, storage_trials
from optuna.trial import TrialState

from attend_search import Spec
from attend_search.explorer import record_of


def test_run_show_export_report_end_to_end(workdir):
    run = cli("run", "tiny_study.yaml", "--budget", "20", cwd=workdir)
    assert "ran 20 trials" in run.stdout and "Pareto set" in run.stdout
    assert "Warning" not in run.stderr and "[I " not in run.stderr, run.stderr
    trials = storage_trials(workdir)
    assert sum(t.state.is_finished() for t in trials) == 20
    for t in trials:  # every trial records what it was and how it did
        r = record_of(t)
        assert Spec.from_dict(r.spec).digest == r.digest
        assert {"params", "macs", "peak_activation_bytes", "latency.cortex-a72"} <= set(r.metrics)
        assert set(r.violations) >= {"simd_channels", "params <= 40000"}
        assert r.version and r.stream == 0
        assert {"resolve", "claim", "cost", "latency"} <= set(r.seconds)

    show = cli("show", "tiny", cwd=workdir)
    assert "20 trials" in show.stdout and "Pareto set" in show.stdout

    cli("export", "tiny", "--pareto", "--format", "json,csv", "--out", "out", cwd=workdir)
    folders = [p for p in (workdir / "out").iterdir() if p.is_dir()]
    pareto_numbers = {int(p.name.split("-trial")[1].split("-")[0]) for p in folders}
    assert folders and not [p for p in (workdir / "out").iterdir() if p.name.startswith(".")]
    for folder in folders:
        assert Spec.from_json((folder / "spec.json").read_text()).digest in folder.name
        assert "| NO |" not in (folder / "MODEL_CARD.md").read_text()  # constraints all met

    chosen = min(pareto_numbers)
    cli("export", "tiny", "--trial", chosen, "--format", "onnx,pt2", "--out", "one", cwd=workdir)
    (folder,) = [p for p in (workdir / "one").iterdir() if p.is_dir()]
    assert (workdir / "one" / "tiny.manifest.json").is_file()
    spec = Spec.from_json((folder / "spec.json").read_text())
    assert "opset" in (folder / "MODEL_CARD.md").read_text()
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    program = torch.export.load(str(folder / "model.pt2"))
    x = torch.randn(1, 3, spec.input_size, spec.input_size)
    onnx_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(onnx_out, program.module()(x).detach().numpy(), atol=1e-4)
    assert len((workdir / "out" / "tiny-trials.csv").read_text().splitlines()) == 21

    cli("report", "tiny", "--out", "report.html", cwd=workdir)
    page = (workdir / "report.html").read_text()
    for section in (
        "Pareto front",
        "Hypervolume history",
        "Parameter importances",
        "Feasible and infeasible",
        "Where the time goes",
        "attendnext",
    ):
        assert section in page
    assert "cdn.plot.ly" not in page.split("<script")[1][:200]  # plotly.js inlined: offline
    # the accuracy axis says it is an estimate, and how well it ranked true accuracy
    assert re.search(
        r"synflow \(log score\): accuracy estimate, not accuracy \(Spearman with CIFAR-10 "
        r"accuracy on dev data: 0\.\d\d NAS-Bench-201, 0\.\d\d NAS-Bench-Macro; unmeasured "
        r"on attention condenser networks\)",
        page,
    )


def test_resume_adds_to_the_same_study(workdir):
    cli("run", "tiny_study.yaml", "--budget", "10", cwd=workdir)
    cli("run", "tiny_study.yaml", "--budget", "10", cwd=workdir)
    trials = storage_trials(workdir)
    assert len(trials) == 20 and all(t.state.is_finished() for t in trials)
    assert [t.number for t in trials] == list(range(20))


def test_a_changed_config_is_refused_not_mixed_in(workdir):
    cli("run", "tiny_study.yaml", "--budget", "2", cwd=workdir)
    study = yaml.safe_load((workdir / "tiny_study.yaml").read_text())
    study["seed"] = 1
    (workdir / "tiny_study.yaml").write_text(yaml.safe_dump(study))
    before = dump(workdir)
    out = cli("run", "tiny_study.yaml", "--budget", "2", cwd=workdir, check=False)
    assert out.returncode == 2
    assert "different configuration (seed: 0 stored, 1 in the file)" in out.stderr, out.stderr
    assert dump(workdir) == before  # not even a sampler stream claimed


@pytest.mark.parametrize("budget", ["0", "0s"])
def test_a_zero_budget_is_refused_as_not_positive(workdir, budget):
    out = cli("run", "tiny_study.yaml", "--budget", budget, cwd=workdir, check=False)
    assert out.returncode == 2
    assert f"--budget: '{budget}' must be positive" in out.stderr, out.stderr
    assert not (workdir / "studies").exists()


def test_a_study_is_found_by_its_file_and_a_missing_one_says_where_it_was_looked_for(workdir):
    cli("run", "tiny_study.yaml", "--budget", "2", cwd=workdir)
    assert "study tiny: 2 trials" in cli("show", "tiny_study.yaml", cwd=workdir).stdout
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    out = cli("show", "tiny", cwd=elsewhere, check=False)
    assert out.returncode == 2
    assert f"no study named 'tiny' in {(elsewhere / 'studies').resolve()}" in out.stderr
    assert "--root" in out.stderr
    shown = cli("show", "tiny", "--root", workdir / "studies", cwd=elsewhere).stdout
    assert "study tiny: 2 trials" in shown


def test_two_worker_processes_share_one_sqlite_study(workdir):
    out = cli("run", "tiny_study.yaml", "--budget", "12", "--jobs", "2", cwd=workdir)
    assert "ran 12 trials" in out.stdout
    trials = storage_trials(workdir)
    assert len(trials) == 12
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_same_seed_same_trials(tmp_path):
    digests = []
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        for name in ("tiny_space.yaml", "tiny_study.yaml"):
            shutil.copy(DATA / name, folder / name)
        cli("run", "tiny_study.yaml", "--budget", "8", cwd=folder)
        digests.append([record_of(t).digest for t in storage_trials(folder)])
    assert digests[0] == digests[1]


def test_ctrl_c_loses_nothing_and_resume_counts_exactly(workdir):
    proc = subprocess.Popen(
        [sys.executable, "-m", "attend_search.cli", "run", "tiny_study.yaml", "--budget", "1000"],
        cwd=workdir,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = workdir / "studies" / "tiny" / "study.yaml"  # written once the study exists
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(1)
        if ready.exists():
            try:
                if sum(t.state.is_finished() for t in storage_trials(workdir)) >= 3:
                    break
            except Exception:
                pass
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    trials = storage_trials(workdir)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    cli("run", "tiny_study.yaml", "--budget", "3", cwd=workdir)
    after = storage_trials(workdir)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) == finished + 3


def trial_count(workdir):
    """The study's trials, counted in SQL: light enough to poll while a run writes."""
    db = sqlite3.connect(f"file:{workdir}/studies/tiny/study.db?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    finally:
        db.close()


@pytest.mark.slow
def test_ctrl_c_at_random_moments_of_a_search_stops_quickly_and_loses_nothing(workdir):
    """Ten runs of one study, each sent SIGINT a random 0-2 s (seeded) after its first trial
    began: in an evaluation, in sampling or in Optuna's bookkeeping, wherever it falls."""
    cli("run", "tiny_study.yaml", "--budget", "1", cwd=workdir)
    delays = random.Random(0)
    for _ in range(10):
        before = {t.number: t for t in storage_trials(workdir)}
        proc = start(
            "run",
            "tiny_study.yaml",
            "--budget",
            "1000",
            cwd=workdir,
            until=lambda: trial_count(workdir) > len(before),
        )
        time.sleep(delays.uniform(0, 2))
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and time.monotonic() - sent < 10, err  # a hang: 60 s
        trials = storage_trials(workdir)
        after = {t.number: t for t in trials}
        assert len(after) == len(trials)  # numbers unique
        states = Counter(t.state for t in trials)
        assert set(states) <= {TrialState.COMPLETE, TrialState.FAIL}, states  # none running
        assert states[TrialState.FAIL] <= 1 + sum(
            t.state == TrialState.FAIL for t in before.values()
        )
        assert all(after[n].values == t.values for n, t in before.items())  # kept as they were
    complete = states[TrialState.COMPLETE]
    cli("run", "tiny_study.yaml", "--budget", "2", cwd=workdir)
    assert sum(t.state == TrialState.COMPLETE for t in storage_trials(workdir)) == complete + 2


def test_validate_reports_constraints_no_spec_can_meet(workdir):
    ok = cli("validate", "tiny_study.yaml", cwd=workdir)
    assert "ok: a feasible spec was found" in ok.stdout
    study = yaml.safe_load((workdir / "tiny_study.yaml").read_text())
    study["constraints"]["params"] = {"max": 100}
    (workdir / "tiny_study.yaml").write_text(yaml.safe_dump(study))
    bad = cli("validate", "tiny_study.yaml", "--tries", "40", cwd=workdir, check=False)
    assert bad.returncode == 2
    assert "tiny_study.yaml: constraints: no spec of the space met every constraint" in bad.stderr
    # the closest candidate's parameters against the budget, in the units shown everywhere
    assert re.search(r"still violates: .*params [0-9.]+ M > 0\.0001 M", bad.stderr), bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            ("sampler: {name: tpe, n_startup_trials: 5}", "sampler: annealing"),
            "tiny_study.yaml: sampler: annealing is not one of tpe, nsga2, random, gp",
        ),
        (
            ("metric: synflow", "metric: accurracy"),
            "tiny_study.yaml: objectives[0].metric: unknown metric 'accurracy'",
        ),
        (
            ("latency.cortex-a72", "latency.cortex-m4"),
            "tiny_study.yaml: objectives[1].metric: no such device: 'cortex-m4'",
        ),
        (("space: tiny_space.yaml", "space: nowhere.yaml"), "nowhere.yaml"),
    ],
)
def test_bad_study_files_exit_2_naming_file_and_field(workdir, edit, message):
    text = (workdir / "tiny_study.yaml").read_text()
    assert edit[0] in text
    (workdir / "tiny_study.yaml").write_text(text.replace(*edit))
    out = cli("run", "tiny_study.yaml", "--budget", "1", cwd=workdir, check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (workdir / "studies" / "tiny").exists()  # nothing half-made


@pytest.mark.skipif(
    not POSTGRES, reason="set ATTEND_SEARCH_TEST_POSTGRES (.ci/run starts a server)"
)
def test_two_workers_share_a_study_on_a_real_postgresql_server(workdir):
    import uuid

    name = f"tiny-pg-{uuid.uuid4().hex[:8]}"
    study = yaml.safe_load((workdir / "tiny_study.yaml").read_text())
    (workdir / "pg.yaml").write_text(yaml.safe_dump({**study, "name": name}))
    out = cli("run", "pg.yaml", "--budget", "8", "--jobs", "2", "--storage", POSTGRES, cwd=workdir)
    assert "ran 8 trials" in out.stdout
    # a third worker joins from "another machine": only the storage URL and the study name
    cli("worker", name, "--budget", "2", "--storage", POSTGRES, cwd=workdir / "studies")
    trials = postgres_trials(name)
    assert len(trials) == 10
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.number for t in trials}) == 10
    show = cli("show", name, "--storage", POSTGRES, cwd=workdir)
    assert "10 trials" in show.stdout
