"""The search engine's contracts: fresh sampler streams, one evaluation per architecture
across workers, every parameter evolved, samplers' options checked."""

import contextlib
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from attend_search.errors import AttendSearchError
from attend_search.explorer import open_study, optimize, record_of
from attend_search.explorer.samplers import make_sampler
from attend_search.explorer.search import quiet_optuna
from attend_search.studies import create, place, read_study
from attend_search.studies.storage import sqlite_lock, trial_reader
from attend_search.studies.storage.sql_ledger import SqlLedger
from attend_search.studies.storage.store import storage
from attend_search.studies.storage.optuna_storage import TrialCache
from attend_search.studies.storage.trial_reader import finished_count, read_trials, with_params

DATA = Path(__file__).parent / "data"


def cheap_study(**changes):
    """The AttendNeXt space (~1e23 architectures) with cheap objectives: fast trials."""
    study = {"name": "cheap", "space": "attendnext",
             "constraints": {"use": "best-practices", "params": {"max": 6.0e6}},
             "objectives": [{"metric": "params"}, {"metric": "latency.cortex-a72"}],
             "presets": False, **changes}
    return read_study(study, DATA)


# NSGA-II's first generation (population 20) is what a fresh stream draws; later generations
# may legitimately breed a parent's twin (evaluated once, see the claims test).
@pytest.mark.parametrize("sampler", [{"name": "tpe", "n_startup_trials": 4},
                                     {"name": "nsga2", "population_size": 20}])
def test_chunked_runs_never_replay_the_sampler(tmp_path, sampler):
    config = cheap_study(sampler=sampler)
    where = place("cheap", root=tmp_path)
    with quiet_optuna():
        for _ in range(3):
            optimize(create(config, where), n_trials=6)
    trials = optuna.load_study(study_name="cheap", storage=where.url).get_trials()
    records = [record_of(t) for t in trials]
    assert len(records) == 18 and all(r is not None for r in records)
    assert len({r.digest for r in records}) == 18            # no architecture proposed twice
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
    assert len(set(owners)) == 1 and owners[0] in range(10, 14)   # exactly one winner
    winner = owners[0]
    assert ledgers[0].take_over("abc", old=99, new=42) == winner    # not the owner: no change
    assert ledgers[0].take_over("abc", old=winner, new=42) == 42
    other = SqlLedger(store.engine, store.create_new_study(
        [optuna.study.StudyDirection.MINIMIZE], "t"))
    assert other.new_stream() == 0 and other.claim("abc", 7) == 7  # per study


def test_two_worker_processes_evaluate_an_architecture_once(tmp_path):
    """A one-architecture space: both workers reach it at once; only one may train it."""
    space = yaml.safe_load((DATA / "tiny_space.yaml").read_text())
    space.update(input_size=32, stem={"out": 8})
    space["micro"] = {"block": "depthwise_separable", "downsample": "aads"}
    space["stages"] = {"count": 1, "slots": [{"stride": 2, "depth": 1, "width": 16}]}
    space["head"] = {"channels": 0}
    study = {"name": "one", "space": space, "presets": False, "sampler": "random",
             "constraints": {"use": "none"}, "objectives": [{"metric": "accuracy"}],
             "evaluation": {"training": {"epochs": 2, "input_size": 32}}}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(study))
    out = subprocess.run([sys.executable, "-m", "attend_search.cli", "run", "one.yaml",
                          "--budget", "4", "--jobs", "2"], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "CI": "true"})
    assert out.returncode == 0, out.stderr
    trials = optuna.load_study(study_name="one",
                               storage=f"sqlite:///{tmp_path}/studies/one/study.db").get_trials()
    records = [record_of(t) for t in trials]
    assert len(trials) == 4 and all(t.state.is_finished() for t in trials)
    evaluated = [t for t, r in zip(trials, records) if r.duplicate_of is None]
    assert len(evaluated) == 1                                   # trained once, not twice
    assert len({r.stream for r in records}) == 2                 # one stream per worker
    assert {r.duplicate_of for r in records} == {None, evaluated[0].number}
    assert len({t.values[0] for t in trials}) == 1


def test_nsga2_children_inherit_conditional_parameters_from_their_parents():
    """With block types varying per stage, attention parameters are conditional; NSGA-II must
    still cross them over from parents rather than draw them at random."""
    config = cheap_study(sampler={"name": "nsga2", "population_size": 8},
                         constraints={"use": "none"}).search
    with quiet_optuna():
        run = open_study(config, optuna.storages.InMemoryStorage())
        optimize(run, n_trials=40)
    study, sampler = run.study, run.study.sampler
    attention = [p.name for p in config.space.parameters() if ".attention." in p.name
                 and not p.dim.fixed]
    trials = study.get_trials(deepcopy=False)
    assert all(set(attention) <= set(t.params) for t in trials)     # asked on every trial
    assert set(attention) <= set(sampler.infer_relative_search_space(study, trials[-1]))
    inherited = total = 0
    for child in trials:
        generation = sampler.get_trial_generation(study, child)
        if generation == 0:
            continue
        parents = sampler.get_parent_population(study, generation)
        best = max(sum(child.params[k] in (a.params[k], b.params[k]) for k in attention)
                   for a, b in combinations(parents, 2))
        inherited, total = inherited + best, total + len(attention)
    assert total and inherited / total >= 0.95     # a random draw matches far less often


@pytest.mark.parametrize("sampler, message", [
    ({"name": "tpe", "population_size": 8},
     "sampler.population_size: tpe has no option 'population_size'"),
    ({"name": "random", "n_startup_trials": 3},
     "sampler.n_startup_trials: random has no option 'n_startup_trials' (it takes: no options)"),
    ({"name": "nsga2", "mutation_prob": 2}, "sampler.mutation_prob: 2 is outside [0.0, 1.0]"),
])
def test_sampler_options_are_checked_with_their_field_path(sampler, message):
    with pytest.raises(AttendSearchError, match=None) as err:
        cheap_study(sampler=sampler)
    assert message in str(err.value)


def test_the_fast_trial_reader_gives_optunas_trials(tmp_path):
    """The SQL reader behind show, export and report must agree with Optuna exactly."""
    config = cheap_study(sampler="tpe", objectives=[{"metric": "accuracy"}], pruner="median",
                         space=yaml.safe_load((DATA / "tiny_space.yaml").read_text()),
                         evaluation={"training": {"epochs": 2, "input_size": 16}})
    where = place("cheap", root=tmp_path)
    with quiet_optuna():
        run = create(config, where)
        optimize(run, n_trials=6)
    study = optuna.load_study(study_name="cheap", storage=where.url)
    trials = read_trials(study)
    assert trials == study.get_trials() and len(trials) == 6
    assert any(t.intermediate_values for t in trials) and all(t.params for t in trials)
    lean = read_trials(study, params=False)
    assert [t.number for t in lean] == [t.number for t in trials]
    assert all(not t.params and t.user_attrs == f.user_attrs for t, f in zip(lean, trials))
    assert with_params(study, [lean[4], lean[1]]) == [trials[4], trials[1]]
    assert not lean[4].params   # copies: the lean trials stay lean


def test_the_storage_reads_trials_for_optunas_cache_as_optuna_does(tmp_path, monkeypatch):
    """``_get_trials`` (the cache's read on every trial) and ``get_trial`` (three a trial) in
    plain SQL, against Optuna's ORM."""
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=url)
    for value in range(8):
        trial = study.ask()
        trial.suggest_float("x", 0, 9)
        trial.set_user_attr("n", value)
        if value % 3:
            study.tell(trial, float(value))
    ours, optunas = storage(url), optuna.storages.RDBStorage(url)
    ids = [t._trial_id for t in study.get_trials()]
    monkeypatch.setattr(trial_reader, "_BATCH", 2)   # the path for many unfinished trials too
    for states in (None, (TrialState.RUNNING,), (TrialState.COMPLETE, TrialState.WAITING)):
        for included, after in ((set(), -1), (set(), ids[4]), ({ids[0]}, ids[4]),
                                ({ids[0], ids[3], ids[2]}, ids[4]), (set(ids), ids[2])):
            assert (ours._get_trials(study._study_id, states, included, after)
                    == optunas._get_trials(study._study_id, states, included, after))
    with pytest.raises(KeyError):
        ours._get_trials(study._study_id + 1, None, set(), -1)
    assert [ours.get_trial(i) for i in ids] == [optunas.get_trial(i) for i in ids]
    with pytest.raises(KeyError):
        ours.get_trial(max(ids) + 1)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")   # ask and tell, no optimize
def test_the_trial_cache_answers_as_optunas_storage(tmp_path):
    """Two workers' caches, trials in every state arriving out of order, checked at each step
    against Optuna reading the database itself."""
    url = f"sqlite:///{tmp_path}/s.db"
    workers = [optuna.create_study(study_name="s", storage=TrialCache(storage(url)))]
    workers.append(optuna.load_study(study_name="s", storage=TrialCache(storage(url))))
    truth, study_id = optuna.storages.RDBStorage(url), workers[0]._study_id
    rng, running, seen = random.Random(0), {0: [], 1: []}, set()
    choices = [None, (TrialState.WAITING,), (TrialState.COMPLETE,), (TrialState.RUNNING,),
               (TrialState.COMPLETE, TrialState.PRUNED), tuple(TrialState)]
    for _ in range(60):
        me = rng.randrange(2)
        study, action = workers[me], rng.choice(["ask", "ask", "tell", "enqueue"])
        if action == "enqueue":
            study.enqueue_trial({"x": 1.0})
        elif action == "ask" or not running[me]:
            running[me].append(study.ask())
            running[me][-1].suggest_float("x", 0, 9)
        else:
            trial = running[me].pop(rng.randrange(len(running[me])))
            state = rng.choice([TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED])
            study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
        for worker in workers:
            states = rng.choice(choices)
            assert (worker._storage.get_all_trials(study_id, deepcopy=False, states=states)
                    == truth.get_all_trials(study_id, deepcopy=False, states=states))
        seen.update(t.state for t in truth.get_all_trials(study_id, deepcopy=False))
    assert seen == set(TrialState)


def test_hypervolume_history_by_hand():
    from attend_search.explorer import Objective
    from attend_search.studies.results import hypervolume_history
    objectives = (Objective("synflow", "maximize"), Objective("params", "minimize"))
    trials = [optuna.trial.create_trial(values=v) for v in
              ([-2, 8], [-5, 5], [-8, 2], [-6, 6], [-11, 1])]   # last: beyond the reference
    assert hypervolume_history(trials, objectives, [-10, 10]) == [16, 31, 37, 37, 37]


def test_the_pareto_set_is_optunas():
    """The report's and export's Pareto set (one lexicographic pass) against Optuna's
    ``best_trials``, on values with ties and repeated points, one objective maximised."""
    from attend_search.explorer import Objective
    from attend_search.studies.results import pareto
    objectives = (Objective("synflow", "maximize"), Objective("params", "minimize"),
                  Objective("macs", "minimize"))
    rng = np.random.default_rng(0)
    study = optuna.create_study(directions=[o.direction for o in objectives])
    a, b, c = rng.integers(0, 8, size=(3, 400))   # more synflow costs parameters or MACs
    study.add_trials([optuna.trial.create_trial(values=[float(v) for v in values])
                      for values in zip(a + b, a + c // 3, b + c % 3)])
    trials = study.get_trials()
    front = pareto(trials, objectives)
    assert sorted(t.number for t in front) == sorted(t.number for t in study.best_trials)
    assert len(front) > 10
    first = [-t.values[0] for t in front]
    assert first == sorted(first)   # ordered by the first objective, best first


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
    workers = [subprocess.Popen([sys.executable, "-m", "attend_search.cli", "worker", "cheap",
                                 "--root", str(tmp_path), "--budget", "10"],
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "CI": "true"}) for _ in range(3)]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], errors
    trials = optuna.load_study(study_name="cheap", storage=where.url).get_trials()
    assert len(trials) == 30 and all(t.state.name == "COMPLETE" for t in trials)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_a_trials_parameters_are_stored_in_one_write(tmp_path, sampler, monkeypatch):
    def one_by_one(*args):
        raise AssertionError("a parameter written on its own")
    monkeypatch.setattr("attend_search.studies.storage.optuna_storage.Storage.set_trial_param", one_by_one)
    with quiet_optuna():
        run = create(cheap_study(sampler=sampler), place("cheap", root=tmp_path))
        optimize(run, n_trials=4)
    trials = run.study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    asked = {"tpe": 20, "nsga2": 60}[sampler]   # nsga2 asks every parameter of the space
    assert all(len(t.params) >= asked for t in trials)
    assert {t.number: t.params for t in trials} == {
        t.number: t.params for t in optuna.load_study(
            study_name="cheap", storage=run.study._storage._backend.url).get_trials()}


def test_storage_refuses_a_parameter_whose_distribution_changed(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=storage(url))
    kinds = optuna.distributions.IntDistribution(0, 9), optuna.distributions.FloatDistribution(0, 9)
    for kind in kinds:
        trial = study.ask()
        with pytest.raises(ValueError, match="Cannot set different distribution kind") \
                if kind is kinds[1] else contextlib.nullcontext():
            trial.storage._backend.set_trial_params(trial._trial_id, [("x", 2.0, kind)])


def test_tpe_reads_the_trials_once_per_trial_and_samples_as_optunas_tpe():
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["a", "b"])
        x = trial.suggest_float("x", -3, 3)
        return x * x + (trial.suggest_int("n", 0, 5) if kind == "a" else 1.0)

    reads, params = {}, {}
    for name, sampler in (("ours", make_sampler("tpe", {"n_startup_trials": 5}, seed=3)),
                          ("optuna's", optuna.samplers.TPESampler(
                              multivariate=True, group=True, n_startup_trials=5, seed=3))):
        with quiet_optuna():
            study = optuna.create_study(sampler=sampler)
        storage_reads = study._storage.get_all_trials
        reads[name] = 0

        def counted(*args, **kwargs):
            reads[name] += 1
            return storage_reads(*args, **kwargs)
        study._storage.get_all_trials = counted
        with quiet_optuna():
            study.optimize(objective, n_trials=30)
        params[name] = [t.params for t in study.trials]
    assert params["ours"] == params["optuna's"]
    assert reads["ours"] <= 2 * 30 + 1 < reads["optuna's"], reads  # per trial: queue, space


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


def test_a_trial_takes_the_write_lock_five_times(tmp_path):
    """What parallel workers cannot share: a trial's write transactions on SQLite (create
    with its first heartbeat, parameters, claim, record and constraints, tell). Not TPE's
    relative parameters, nor the heartbeat thread's first beat. Reads take no lock."""
    with quiet_optuna():
        run = create(cheap_study(sampler={"name": "tpe", "n_startup_trials": 2}),
                     place("cheap", root=tmp_path))
        locks = []
        sqlalchemy.event.listen(run.study._storage._backend.engine, "begin",
                                lambda conn: locks.append(sqlite_lock.writing()))
        optimize(run, n_trials=10)
    trials = run.study.get_trials()
    assert len(trials) == 10
    assert sum(locks) <= 5 * 10, sum(locks)
    assert len(locks) > sum(locks)     # some transactions read without the lock
    assert not any(k.startswith("tpe:") for t in trials for k in t.system_attrs)
    with sqlite3.connect(tmp_path / "cheap" / "study.db") as db:   # heartbeats made at birth
        beats = db.execute("SELECT COUNT(*) FROM trial_heartbeats").fetchone()[0]
    assert beats == 10


def test_a_worker_killed_at_once_leaves_a_stale_trial(tmp_path, monkeypatch):
    """The first heartbeat comes with the trial: a worker that dies before its heartbeat
    thread ever beats still leaves a trial that the next worker fails as stale."""
    monkeypatch.setenv("ATTEND_SEARCH_HEARTBEAT_GRACE", "1")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage(url))
    trial_id = study._storage.create_new_trial(study._study_id)   # no heartbeat thread
    time.sleep(2.5)
    other = optuna.load_study(study_name="s", storage=storage(url))
    optuna.storages.fail_stale_trials(other)
    assert other._storage.get_trial(trial_id).state == TrialState.FAIL


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")   # ask and tell, no optimize
def test_trials_are_numbered_and_running_ones_found_without_a_scan(tmp_path):
    """A new trial's number is the previous one's plus one (one index lookup), exactly
    Optuna's count of the study's earlier trials, queued trials and a second study in the
    same database included; the running trials of a study are found through an index."""
    where = place("cheap", root=tmp_path)
    with quiet_optuna():
        create(cheap_study(), where)                   # the first run makes the index
    store = TrialCache(storage(where.url))
    studies = [optuna.create_study(study_name=n, storage=store) for n in ("a", "b")]
    for step in range(12):
        study = studies[step % 3 == 0]
        if step % 4 == 1:
            study.enqueue_trial({"x": 1.0})
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 9)}), 1.0)
    with sqlite3.connect(tmp_path / "cheap" / "study.db") as db:
        for study in studies:
            numbers = [n for n, in db.execute("SELECT number FROM trials WHERE study_id = ? "
                                              "ORDER BY trial_id", (study._study_id,))]
            assert numbers == list(range(len(numbers))) and len(numbers) >= 4
        plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM trials WHERE study_id = 1 "
                          "AND state = 'RUNNING'").fetchall()
    assert "ix_attend_search_trials_study_state" in str(plan), plan
