"""``attend-search refine``: successive halving of a study's trials on digits at 32 pixels,
its claims, resume after Ctrl-C, ``--jobs 2``, and what show, report, export and proxy fit
make of the measured accuracies."""

import json
import os
import shutil
import signal
import socket
import time

import pytest
import sqlalchemy as sa
import torch
from helpers import cli, start

from attend_search.studies.refinement import Plan, entrants, rung_epochs
from attend_search.studies.storage.refine_table import RefineTable, Rung

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # two cores shared: threads would fight
DIGITS = ["--data", "digits", "--input-size", "32", "--hflip", "0", "--batch-size", "64"]
QUICK = [*DIGITS, "--threads", "1"]
HALVING = ["--epochs", "2", "--min-epochs", "1", "--reduction-factor", "2"]  # rungs 1, 2


@pytest.mark.parametrize(
    "epochs, least, factor, rungs",
    [(27, 3, 3, (3, 9, 27)), (30, 3, 3, (3, 10, 30)), (4, 1, 2, (1, 2, 4)), (2, 3, 3, None)],
)
def test_rungs_end_at_the_epochs_each_a_factor_of_the_next(epochs, least, factor, rungs):
    if rungs is None:
        with pytest.raises(Exception, match="--min-epochs: 3 is more than --epochs 2"):
            rung_epochs(epochs, least, factor)
    else:
        assert rung_epochs(epochs, least, factor) == rungs


def test_the_best_fraction_of_a_finished_rung_goes_on():
    plan = Plan((1, 2, 3, 4, 5), (1, 3, 9), 2, "pareto", {}, {})
    top1 = (0.5, 0.9, 0.7, 0.9, 0.1)
    rung0 = [Rung(t, 0, 1, "h/1", 0.0, v, 0.9, 1.0) for t, v in zip(plan.trials, top1)]
    assert entrants(plan, rung0[:4], 1) is None  # trial 5 still trains
    assert entrants(plan, rung0, 1) == [2, 4]  # 5 // 2 of them; ties to the lower number
    rung1 = [Rung(2, 1, 3, "h/1", 0.0, 0.8, 0.9, 1.0), Rung(4, 1, 3, "h/1", 0.0, 0.95, 0.9, 1.0)]
    assert entrants(plan, rung0 + rung1, 2) == [4]


def test_the_measured_front_is_drawn_over_the_last_complete_rung():
    from attend_search.studies.refinement import Refinement

    plan = Plan((1, 2, 3, 4), (1, 2, 4), 2, "pareto", {}, {})
    rows = [Rung(t, 0, 1, "h/1", 0.0, 0.1 * t, 0.9, 1.0) for t in plan.trials]
    assert Refinement(plan, rows[:3]).complete_rung() == 0  # the first rung still trains
    survivor = Rung(4, 1, 2, "h/1", 0.0, 0.9, 0.9, 1.0)
    assert Refinement(plan, [*rows, survivor]).complete_rung() == 0  # trial 3 still trains
    rows += [survivor, Rung(3, 1, 2, "h/1", 0.0, 0.8, 0.9, 1.0)]
    assert Refinement(plan, rows).complete_rung() == 1


def test_a_resumed_refinement_compares_the_options_asked_not_the_label_of_the_choice():
    began = Plan((1, 2), (1, 2), 2, "top 2", {"data": "digits"}, {}, {"top": None, "sort": None})
    grown = Plan((1, 7, 2), (1, 2), 2, "top 3", {"data": "digits"}, {}, began.choice)
    assert began.settings() == grown.settings()  # a study of one objective, grown since
    other = Plan((1, 2), (1, 2), 2, "top 2 by params", {"data": "digits"}, {}, {"top": 2})
    assert began.settings() != other.settings()


def test_a_claim_is_won_once_and_taken_over_only_when_silent_by_the_database_clock(
    tmp_path, monkeypatch
):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    table = RefineTable(engine, study_id=1, grace=60, create=True)
    here = socket.gethostname()
    assert table.claim(3, 0, 1, f"{here}/{os.getpid()}")
    assert not table.claim(3, 0, 1, "elsewhere/1")  # alive and beating
    dead = f"{here}/{2**22 + 12345}"  # a pid never alive: the same host name proves nothing
    assert table.claim(4, 0, 1, dead)
    assert not table.claim(4, 0, 1, f"{here}/1")  # (another container, pid namespace)
    monkeypatch.setattr(time, "time", lambda: 4e9)  # a client clock far ahead: not read
    assert table.claim(5, 0, 1, "far/7")
    assert not table.claim(5, 0, 1, "elsewhere/1")
    monkeypatch.undo()
    engine.dispose()
    stale = RefineTable(sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"), 1, grace=0.01)
    time.sleep(0.05)
    assert [r.stale for r in stale.rungs()] == [True, True, True]
    assert stale.claim(5, 0, 1, "elsewhere/1")  # silent past the grace period
    assert not stale.beat("far/7", 5, 0)  # its owner learns it was taken over ...
    assert not stale.finish(5, 0, "far/7", {"val_top1": 0.1, "val_top5": 0.9}, 1.0)  # ... and
    assert stale.beat("elsewhere/1", 5, 0)  # cannot overwrite the new owner's result
    assert stale.finish(5, 0, "elsewhere/1", {"val_top1": 0.5, "val_top5": 0.9}, 1.0)
    assert not stale.claim(5, 0, 1, "another/2")  # measured: never again
    assert [(r.trial, r.owner, r.top1) for r in stale.rungs()] == [
        (3, f"{here}/{os.getpid()}", None),
        (4, dead, None),
        (5, "elsewhere/1", 0.5),
    ]


def _rows(workdir, name="tiny"):
    engine = sa.create_engine(f"sqlite:///{workdir}/studies/{name}/study.db")
    with engine.connect() as db:
        rows = db.execute(sa.text("SELECT trial, rung, epochs, top1 FROM attend_search_refine"))
        out = sorted(tuple(r) for r in rows)
    engine.dispose()
    return out


def test_refine_prunes_resumes_after_ctrl_c_and_feeds_show_report_export_and_fit(workdir):
    cli("run", "tiny_study.yaml", "--budget", "10", cwd=workdir)
    refine = ["refine", "tiny", "--top", "5", *HALVING, *QUICK, "--csv", "measured.csv"]
    first_run = workdir / "studies" / "tiny" / "refine"
    proc = start(
        *refine,
        cwd=workdir,
        env=ONE_THREAD,
        until=lambda: any(first_run.glob("trial-*/metrics.json")),
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "finished rungs are kept in the study" in err
    assert "to resume: attend-search refine tiny --top 5" in err
    kept = {
        p.parent.name: json.loads(p.read_text())["epochs"] for p in first_run.glob("*/metrics.json")
    }
    assert all(r[3] is not None for r in _rows(workdir))  # no claim left behind

    out = cli(*refine, cwd=workdir, env=ONE_THREAD).stdout
    rows = _rows(workdir)
    first = {t: top1 for t, rung, _, top1 in rows if rung == 0}
    second = sorted(t for t, rung, _, _ in rows if rung == 1)
    assert len(first) == 5 and all(e == 1 for _, r, e, _ in rows if r == 0)
    assert second == sorted(sorted(first, key=lambda t: (-first[t], t))[:2])  # 5 // 2 go on
    assert all(e == 2 for _, r, e, _ in rows if r == 1)
    for name, log in kept.items():  # the interrupted run's finished epoch was kept, not redone
        again = json.loads((first_run / name / "metrics.json").read_text())["epochs"]
        assert again[: len(log)] == log
    for t in first:  # each run trained to the last rung it reached, no further
        log = json.loads((first_run / f"trial-{t}" / "metrics.json").read_text())["epochs"]
        assert len(log) == (2 if t in second else 1)
        assert log[0]["val_top1"] == pytest.approx(first[t])
    assert "top-1 @1  top-1 @2" in out and "estimate synflow against measured top-1" in out
    assert "against measured top-1 after 1 of 2 epochs: Spearman" in out
    assert "(n = 5 chosen trials; fewer than 10 networks: a rough figure)" in out

    shown = cli("show", "tiny", cwd=workdir).stdout
    assert "refined on digits (top 5 by synflow; successive halving, rungs of 1, 2 epochs" in shown
    cli("report", "tiny", "--out", "report.html", cwd=workdir)
    assert "Measured accuracy (refine)" in (workdir / "report.html").read_text()
    best = second[0]
    cli("export", "tiny", "--trial", best, "--format", "json,csv", "--out", "ex", cwd=workdir)
    card = next((workdir / "ex").glob("*/MODEL_CARD.md")).read_text()
    assert "## Measured accuracy" in card and "| 2 | 2 |" in card
    assert "measured.top1,measured.epochs" in (workdir / "ex" / "tiny-trials.csv").read_text()

    other = cli(*refine[:-2], "--epochs", "3", cwd=workdir, check=False)
    assert (
        other.returncode == 2
        and "rungs: [1, 2] stored, [2, 3] asked; recipe.epochs: 2 stored, 3 asked" in other.stderr
    )

    fits = [
        cli("proxy", "fit", source, "--out", f"fit{i}.yaml", cwd=workdir, env=ONE_THREAD).stdout
        for i, source in enumerate(["tiny", "measured.csv", "tiny_study.yaml"])
    ]
    assert "fitted on 5 networks" in fits[0]
    assert fits[0].split("\n")[:2] == fits[1].split("\n")[:2] == fits[2].split("\n")[:2]


def test_two_jobs_train_each_run_once(workdir):
    cli("run", "tiny_study.yaml", "--budget", "8", cwd=workdir)
    args = ["refine", "tiny", "--top", "4", "--epochs", "1", "--min-epochs", "1", *DIGITS]
    out = cli(*args, "--jobs", "2", cwd=workdir).stdout  # each process: cores // 2 threads
    assert f"; 2 processes, {max(1, len(os.sched_getaffinity(0)) // 2)} PyTorch thread" in out
    runs = [line.split(",")[0] for line in out.splitlines() if ", rung 1 of 1" in line]
    assert len(runs) == len(set(runs)) == 4
    assert len(_rows(workdir)) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuch", "--epochs", "3"], "no study named 'nosuch'"),
        (["tiny", "--epochs", "2", "--min-epochs", "3"], "--min-epochs: 3 is more than"),
        (["tiny", "--epochs", "3", "--reduction-factor", "1"], "--reduction-factor: must be 2"),
        (["tiny", "--epochs", "3", "--sort", "synflow"], "--sort ranks the --top K"),
    ],
)
def test_mistakes_exit_2_and_write_nothing(workdir, args, message):
    out = cli("refine", *args, "--data", "digits", cwd=workdir, check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (workdir / "studies").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_refine_on_cuda(workdir):
    cli("run", "tiny_study.yaml", "--budget", "6", cwd=workdir)
    out = cli("refine", "tiny", "--top", "3", *HALVING, *QUICK, "--device", "cuda", cwd=workdir)
    assert "top-1 @1  top-1 @2" in out.stdout
    assert len(_rows(workdir)) == 3 + 1


def _sqlite_engine(path, timeout=60.0):
    """An engine as the project's storage makes one: ``BEGIN IMMEDIATE`` for writers."""
    from attend_search.studies.storage import sqlite_lock

    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": timeout})
    sa.event.listen(engine, "begin", sqlite_lock.begin)
    return engine


def test_reading_a_refinement_takes_no_write_lock(tmp_path):
    import sqlite3

    RefineTable(_sqlite_engine(tmp_path / "db.sqlite"), 1, 60, create=True).engine.dispose()
    writer = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a search or refine writing
    try:
        reader = RefineTable(_sqlite_engine(tmp_path / "db.sqlite", timeout=0.2), 1, 60)
        assert reader.exists and reader.plan() is None and reader.rungs() == []
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _sql(workdir, statement, name="tiny"):
    engine = sa.create_engine(f"sqlite:///{workdir}/studies/{name}/study.db")
    with engine.begin() as db:
        db.execute(sa.text(statement))
    engine.dispose()


def test_a_run_killed_between_its_files_resumes_from_its_checkpoint_and_exports(workdir):
    cli("run", "tiny_study.yaml", "--budget", "4", cwd=workdir)
    refine = ["refine", "tiny", "--top", "2", *HALVING, *QUICK]
    cli(*refine, cwd=workdir, env=ONE_THREAD)
    rows = _rows(workdir)
    (on,) = [t for t, rung, _, _ in rows if rung == 1]
    (stopped,) = [t for t, rung, _, _ in rows if rung == 0 and t != on]
    runs = workdir / "studies" / "tiny" / "refine"
    # killed after the checkpoint of its first epoch was renamed, before metrics.json was
    metrics = runs / f"trial-{stopped}" / "metrics.json"
    log = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**log, "epochs": []}))
    # killed while exporting the last rung's network: its claim given back, no export
    shutil.rmtree(runs / f"trial-{on}" / "export")
    _sql(workdir, f"DELETE FROM attend_search_refine WHERE trial = {stopped} AND rung = 0")
    _sql(workdir, f"DELETE FROM attend_search_refine WHERE trial = {on} AND rung = 1")
    cli(*refine, cwd=workdir, env=ONE_THREAD)
    assert _rows(workdir) == rows  # the same measurements, read back from the checkpoints
    checkpoint = torch.load(metrics.with_name("checkpoint.pt"), weights_only=True)
    assert checkpoint["epoch"] == 1  # not trained past its rung
    assert (runs / f"trial-{on}" / "export" / "MODEL_CARD.md").is_file()


def test_a_plan_that_measured_nothing_is_replaced_and_restart_begins_anew(workdir):
    cli("run", "tiny_study.yaml", "--budget", "4", cwd=workdir)
    failed = Plan((0,), (5,), 3, "pareto", {"data": "digits"}, {"epochs": 5}, {"top": None})
    engine = sa.create_engine(f"sqlite:///{workdir}/studies/tiny/study.db")
    RefineTable(engine, 1, 60, create=True).plan(failed.to_json())  # a first run that failed
    engine.dispose()
    refine = ["refine", "tiny", "--top", "2", "--epochs", "1", "--min-epochs", "1", *QUICK]
    out = cli(*refine, cwd=workdir, env=ONE_THREAD).stdout
    assert "study tiny: its refinement had measured nothing; begun anew with these" in out
    assert len(_rows(workdir)) == 2
    other = cli(*refine, "--epochs", "2", cwd=workdir, check=False)
    assert other.returncode == 2 and "or --restart to drop it and begin anew" in other.stderr
    out = cli(*refine, "--epochs", "2", "--restart", cwd=workdir, env=ONE_THREAD).stdout
    assert "--restart: dropped the refinement of study tiny (2 measured runs)" in out
    assert sorted(e for *_, e, _ in _rows(workdir)) == [2, 2]


def test_a_run_whose_claim_was_taken_over_stops_and_its_result_is_discarded(workdir):
    cli("run", "tiny_study.yaml", "--budget", "2", cwd=workdir)
    db = workdir / "studies" / "tiny" / "study.db"

    def claimed():
        if not db.is_file():
            return False
        engine = sa.create_engine(f"sqlite:///{db}")
        try:
            with engine.connect() as c:
                return bool(c.execute(sa.text("SELECT * FROM attend_search_refine")).all())
        except sa.exc.OperationalError:  # no table yet
            return False
        finally:
            engine.dispose()

    args = ["refine", "tiny", "--top", "1", "--epochs", "3", "--min-epochs", "3", *QUICK]
    env = {**ONE_THREAD, "ATTEND_SEARCH_HEARTBEAT_GRACE": "1"}
    proc = start(*args, cwd=workdir, env=env, until=claimed)
    _sql(workdir, "UPDATE attend_search_refine SET owner = 'elsewhere/1'")  # taken over
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert ": its claim was taken over by another process" in out
    assert "this run's result is discarded" in out
    assert [r[1:3] for r in _rows(workdir)] == [(0, 3)]  # taken back once silent, and measured
