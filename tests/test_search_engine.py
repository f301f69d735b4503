"""The search engine's contracts: fresh sampler streams, one evaluation per architecture
across workers, every parameter evolved, samplers' options checked."""

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from itertools import combinations

import numpy as np
import optuna
import pytest
import yaml
from helpers import DATA, cheap_study
from optuna.trial import TrialState

from attend_search.errors import AttendSearchError
from attend_search.explorer import open_study, optimize, record_of
from attend_search.explorer.search import quiet_optuna
from attend_search.studies import create, place
from attend_search.studies.storage.sql_ledger import SqlLedger
from attend_search.studies.storage.store import storage
from attend_search.studies.storage.trial_reader import finished_count, read_trials


# NSGA-II's first generation (population 20) is what a fresh stream draws; later generations
# may legitimately breed a parent's twin (evaluated once, see the claims test).
@pytest.mark.parametrize(
    "sampler", [{"name": "tpe", "n_startup_trials": 4}, {"name": "nsga2", "population_size": 20}]
)
def test_chunked_runs_never_replay_the_sampler(tmp_path, sampler):
    config = cheap_study(sampler=sampler)
    where = place("cheap", root=tmp_path)
    with quiet_optuna():
        for _ in range(3):
            optimize(create(config, where), n_trials=6)
    trials = optuna.load_study(study_name="cheap", storage=where.url).get_trials()
    records = [record_of(t) for t in trials]
    assert len(records) == 18 and all(r is not None for r in records)
    assert len({r.digest for r in records}) == 18  # no architecture proposed twice
    assert [r.stream for r in records] == [0] * 6 + [1] * 6 + [2] * 6


def test_a_fresh_study_is_deterministic_for_a_seed(tmp_path):
    config = cheap_study(sampler="nsga2")
    digests = []
    for folder in ("a", "b"):
        where = place("cheap", root=tmp_path / folder)
        with quiet_optuna():
            run = create(config, where)
            optimize(run, n_trials=5)
        digests.append([record_of(t).digest for t in run.study.get_trials()])
    assert digests[0] == digests[1]


def test_sql_ledger_streams_and_claims_are_atomic(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = storage(url)
    study_id = store.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    ledgers = [SqlLedger(store.engine, study_id) for _ in range(4)]
    streams, owners = [], []

    def worker(ledger, trial_id):
        streams.append(ledger.new_stream())
        owners.append(ledger.claim("abc", trial_id))

    threads = [threading.Thread(target=worker, args=(lg, 10 + i)) for i, lg in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(streams) == [0, 1, 2, 3]
    assert len(set(owners)) == 1 and owners[0] in range(10, 14)  # exactly one winner
    winner = owners[0]
    assert ledgers[0].take_over("abc", old=99, new=42) == winner  # not the owner: no change
    assert ledgers[0].take_over("abc", old=winner, new=42) == 42
    other = SqlLedger(
        store.engine, store.create_new_study([optuna.study.StudyDirection.MINIMIZE], "t")
    )
    assert other.new_stream() == 0 and other.claim("abc", 7) == 7  # per study


def test_two_worker_processes_evaluate_an_architecture_once(tmp_path):
    """A one-architecture space: both workers reach it at once; only one may train it."""
    space = yaml.safe_load((DATA / "tiny_space.yaml").read_text())
    space.update(input_size=32, stem={"out": 8})
    space["micro"] = {"block": "depthwise_separable", "downsample": "aads"}
    space["stages"] = {"count": 1, "slots": [{"stride": 2, "depth": 1, "width": 16}]}
    space["head"] = {"channels": 0}
    study = {
        "name": "one",
        "space": space,
        "presets": False,
        "sampler": "random",
        "constraints": {"use": "none"},
        "objectives": [{"metric": "accuracy"}],
        "evaluation": {"training": {"epochs": 2, "input_size": 32}},
    }
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(study))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "attend_search.cli",
            "run",
            "one.yaml",
            "--budget",
            "4",
            "--jobs",
            "2",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "true"},
    )
    assert out.returncode == 0, out.stderr
    trials = optuna.load_study(
        study_name="one", storage=f"sqlite:///{tmp_path}/studies/one/study.db"
    ).get_trials()
    records = [record_of(t) for t in trials]
    assert len(trials) == 4 and all(t.state.is_finished() for t in trials)
    evaluated = [t for t, r in zip(trials, records) if r.duplicate_of is None]
    assert len(evaluated) == 1  # trained once, not twice
    assert len({r.stream for r in records}) == 2  # one stream per worker
    assert {r.duplicate_of for r in records} == {None, evaluated[0].number}
    assert len({t.values[0] for t in trials}) == 1


def test_nsga2_children_inherit_conditional_parameters_from_their_parents():
    """With block types varying per stage, attention parameters are conditional; NSGA-II must
    still cross them over from parents rather than draw them at random."""
    config = cheap_study(
        sampler={"name": "nsga2", "population_size": 8}, constraints={"use": "none"}
    ).search
    with quiet_optuna():
        run = open_study(config, optuna.storages.InMemoryStorage())
        optimize(run, n_trials=40)
    study, sampler = run.study, run.study.sampler
    attention = [
        p.name for p in config.space.parameters() if ".attention." in p.name and not p.dim.fixed
    ]
    trials = study.get_trials(deepcopy=False)
    assert all(set(attention) <= set(t.params) for t in trials)  # asked on every trial
    assert set(attention) <= set(sampler.infer_relative_search_space(study, trials[-1]))
    inherited = total = 0
    for child in trials:
        generation = sampler.get_trial_generation(study, child)
        if generation == 0:
            continue
        parents = sampler.get_parent_population(study, generation)
        best = max(
            sum(child.params[k] in (a.params[k], b.params[k]) for k in attention)
            for a, b in combinations(parents, 2)
        )
        inherited, total = inherited + best, total + len(attention)
    assert total and inherited / total >= 0.95  # a random draw matches far less often


@pytest.mark.parametrize(
    "sampler, message",
    [
        (
            {"name": "tpe", "population_size": 8},
            "sampler.population_size: tpe has no option 'population_size'",
        ),
        (
            {"name": "random", "n_startup_trials": 3},
            "sampler.n_startup_trials: random has no option 'n_startup_trials' (it takes: no options)",
        ),
        ({"name": "nsga2", "mutation_prob": 2}, "sampler.mutation_prob: 2 is outside [0.0, 1.0]"),
    ],
)
def test_sampler_options_are_checked_with_their_field_path(sampler, message):
    with pytest.raises(AttendSearchError, match=None) as err:
        cheap_study(sampler=sampler)
    assert message in str(err.value)


def test_hypervolume_history_by_hand():
    from attend_search.explorer import Objective
    from attend_search.studies.results import hypervolume_history

    objectives = (Objective("synflow", "maximize"), Objective("params", "minimize"))
    trials = [
        optuna.trial.create_trial(values=v) for v in ([-2, 8], [-5, 5], [-8, 2], [-6, 6], [-11, 1])
    ]  # last: beyond the reference
    assert hypervolume_history(trials, objectives, [-10, 10]) == [16, 31, 37, 37, 37]


def test_the_pareto_set_is_optunas():
    """The report's and export's Pareto set (one lexicographic pass) against Optuna's
    ``best_trials``, on values with ties and repeated points, one objective maximised."""
    from attend_search.explorer import Objective
    from attend_search.studies.results import pareto

    objectives = (
        Objective("synflow", "maximize"),
        Objective("params", "minimize"),
        Objective("macs", "minimize"),
    )
    rng = np.random.default_rng(0)
    study = optuna.create_study(directions=[o.direction for o in objectives])
    a, b, c = rng.integers(0, 8, size=(3, 400))  # more synflow costs parameters or MACs
    study.add_trials(
        [
            optuna.trial.create_trial(values=[float(v) for v in values])
            for values in zip(a + b, a + c // 3, b + c % 3)
        ]
    )
    trials = study.get_trials()
    front = pareto(trials, objectives)
    assert sorted(t.number for t in front) == sorted(t.number for t in study.best_trials)
    assert len(front) > 10
    first = [-t.values[0] for t in front]
    assert first == sorted(first)  # ordered by the first objective, best first


def test_queued_trials_are_run_once_by_concurrent_workers(tmp_path):
    """Workers racing for queued trials (presets, heartbeat retries) on SQLite: each queued
    trial is started by one worker only. Without a write lock at BEGIN, two workers read the
    same WAITING trial and one dies on 'Cannot tell a COMPLETE trial'."""
    config = cheap_study(sampler="random")
    where = place("cheap", root=tmp_path)
    with quiet_optuna():
        study = create(config, where).study
    for seed in range(30):
        study.enqueue_trial(config.search.space.params_for(config.search.space.sample(seed)))
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "attend_search.cli",
                "worker",
                "cheap",
                "--root",
                str(tmp_path),
                "--budget",
                "10",
            ],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CI": "true"},
        )
        for _ in range(3)
    ]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], errors
    trials = optuna.load_study(study_name="cheap", storage=where.url).get_trials()
    assert len(trials) == 30 and all(t.state.name == "COMPLETE" for t in trials)


def test_storage_refuses_a_parameter_whose_distribution_changed(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=storage(url))
    kinds = optuna.distributions.IntDistribution(0, 9), optuna.distributions.FloatDistribution(0, 9)
    for kind in kinds:
        trial = study.ask()
        with (
            pytest.raises(ValueError, match="Cannot set different distribution kind")
            if kind is kinds[1]
            else contextlib.nullcontext()
        ):
            trial.storage._backend.set_trial_params(trial._trial_id, [("x", 2.0, kind)])


def test_reads_do_not_wait_for_the_sqlite_write_lock(tmp_path, monkeypatch):
    """Reads (a sampler's, show's, a progress bar's) go on while another process holds the
    write lock; a write waits for it, up to the lock timeout."""
    monkeypatch.setenv("ATTEND_SEARCH_LOCK_TIMEOUT", "1")
    where = place("cheap", root=tmp_path)
    with quiet_optuna():
        run = create(cheap_study(), where)
        optimize(run, n_trials=2)
    holder = sqlite3.connect(tmp_path / "cheap" / "study.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = storage(where.url)
        study_id = store.get_study_id_from_name("cheap")
        assert len(store.get_all_trials(study_id)) == 2
        assert len(read_trials(optuna.load_study(study_name="cheap", storage=store))) == 2
        assert finished_count(optuna.load_study(study_name="cheap", storage=store)) == 2
        with pytest.raises(optuna.exceptions.StorageInternalError):
            store.set_trial_user_attr(store.get_all_trials(study_id)[0]._trial_id, "x", 1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_worker_killed_at_once_leaves_a_stale_trial(tmp_path, monkeypatch):
    """The first heartbeat comes with the trial: a worker that dies before its heartbeat
    thread ever beats still leaves a trial that the next worker fails as stale."""
    monkeypatch.setenv("ATTEND_SEARCH_HEARTBEAT_GRACE", "1")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage(url))
    trial_id = study._storage.create_new_trial(study._study_id)  # no heartbeat thread
    time.sleep(2.5)
    other = optuna.load_study(study_name="s", storage=storage(url))
    optuna.storages.fail_stale_trials(other)
    assert other._storage.get_trial(trial_id).state == TrialState.FAIL
