"""Optuna's internals that attend-search relies on (explorer/optuna_adapter.py,
studies/storage/optuna_storage.py and trial_reader.py): each test fails if a new Optuna
changes what the adapter assumes, before a user meets it. pyproject.toml declares only the
Optuna versions CI runs these on."""

import inspect
import random
import sqlite3

import numpy as np
import optuna
import pytest
import sqlalchemy
import yaml
from helpers import DATA, cheap_study
from optuna.trial import TrialState

from attend_search.explorer import optimize
from attend_search.explorer.samplers import make_sampler
from attend_search.explorer.search import quiet_optuna
from attend_search.studies import create, place
from attend_search.studies.storage import sqlite_lock, trial_reader
from attend_search.studies.storage.optuna_storage import TrialCache
from attend_search.studies.storage.store import storage
from attend_search.studies.storage.trial_reader import read_trials, with_params


def test_the_fast_trial_reader_gives_optunas_trials(tmp_path):
    """The SQL reader behind show, export and report must agree with Optuna exactly."""
    config = cheap_study(
        sampler="tpe",
        objectives=[{"metric": "accuracy"}],
        pruner="median",
        space=yaml.safe_load((DATA / "tiny_space.yaml").read_text()),
        evaluation={"training": {"epochs": 2, "input_size": 16}},
    )
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
    assert not lean[4].params  # copies: the lean trials stay lean


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
    monkeypatch.setattr(trial_reader, "_BATCH", 2)  # the path for many unfinished trials too
    for states in (None, (TrialState.RUNNING,), (TrialState.COMPLETE, TrialState.WAITING)):
        for included, after in (
            (set(), -1),
            (set(), ids[4]),
            ({ids[0]}, ids[4]),
            ({ids[0], ids[3], ids[2]}, ids[4]),
            (set(ids), ids[2]),
        ):
            assert ours._get_trials(
                study._study_id, states, included, after
            ) == optunas._get_trials(study._study_id, states, included, after)
    with pytest.raises(KeyError):
        ours._get_trials(study._study_id + 1, None, set(), -1)
    assert [ours.get_trial(i) for i in ids] == [optunas.get_trial(i) for i in ids]
    with pytest.raises(KeyError):
        ours.get_trial(max(ids) + 1)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask and tell, no optimize
def test_the_trial_cache_answers_as_optunas_storage(tmp_path):
    """Two workers' caches, trials in every state arriving out of order, checked at each step
    against Optuna reading the database itself."""
    url = f"sqlite:///{tmp_path}/s.db"
    workers = [optuna.create_study(study_name="s", storage=TrialCache(storage(url)))]
    workers.append(optuna.load_study(study_name="s", storage=TrialCache(storage(url))))
    truth, study_id = optuna.storages.RDBStorage(url), workers[0]._study_id
    rng, running, seen = random.Random(0), {0: [], 1: []}, set()
    choices = [
        None,
        (TrialState.WAITING,),
        (TrialState.COMPLETE,),
        (TrialState.RUNNING,),
        (TrialState.COMPLETE, TrialState.PRUNED),
        tuple(TrialState),
    ]
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
            assert worker._storage.get_all_trials(
                study_id, deepcopy=False, states=states
            ) == truth.get_all_trials(study_id, deepcopy=False, states=states)
        seen.update(t.state for t in truth.get_all_trials(study_id, deepcopy=False))
    assert seen == set(TrialState)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_a_trials_parameters_are_stored_in_one_write(tmp_path, sampler, monkeypatch):
    def one_by_one(*args):
        raise AssertionError("a parameter written on its own")

    monkeypatch.setattr(
        "attend_search.studies.storage.optuna_storage.Storage.set_trial_param", one_by_one
    )
    with quiet_optuna():
        run = create(cheap_study(sampler=sampler), place("cheap", root=tmp_path))
        optimize(run, n_trials=4)
    trials = run.study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    asked = {"tpe": 20, "nsga2": 60}[sampler]  # nsga2 asks every parameter of the space
    assert all(len(t.params) >= asked for t in trials)
    assert {t.number: t.params for t in trials} == {
        t.number: t.params
        for t in optuna.load_study(
            study_name="cheap", storage=run.study._storage._backend.url
        ).get_trials()
    }


def test_tpe_reads_the_trials_once_per_trial_and_samples_as_optunas_tpe():
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["a", "b"])
        x = trial.suggest_float("x", -3, 3)
        return x * x + (trial.suggest_int("n", 0, 5) if kind == "a" else 1.0)

    reads, params = {}, {}
    for name, sampler in (
        ("ours", make_sampler("tpe", {"n_startup_trials": 5}, seed=3)),
        (
            "optuna's",
            optuna.samplers.TPESampler(multivariate=True, group=True, n_startup_trials=5, seed=3),
        ),
    ):
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


def test_a_trial_takes_the_write_lock_five_times(tmp_path):
    """What parallel workers cannot share: a trial's write transactions on SQLite (create
    with its first heartbeat, parameters, claim, record and constraints, tell). Not TPE's
    relative parameters, nor the heartbeat thread's first beat. Reads take no lock."""
    with quiet_optuna():
        run = create(
            cheap_study(sampler={"name": "tpe", "n_startup_trials": 2}),
            place("cheap", root=tmp_path),
        )
        locks = []
        sqlalchemy.event.listen(
            run.study._storage._backend.engine,
            "begin",
            lambda conn: locks.append(sqlite_lock.writing()),
        )
        optimize(run, n_trials=10)
    trials = run.study.get_trials()
    assert len(trials) == 10
    assert sum(locks) <= 5 * 10, sum(locks)
    assert len(locks) > sum(locks)  # some transactions read without the lock
    assert not any(k.startswith("tpe:") for t in trials for k in t.system_attrs)
    with sqlite3.connect(tmp_path / "cheap" / "study.db") as db:  # heartbeats made at birth
        beats = db.execute("SELECT COUNT(*) FROM trial_heartbeats").fetchone()[0]
    assert beats == 10


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask and tell, no optimize
def test_trials_are_numbered_and_running_ones_found_without_a_scan(tmp_path):
    """A new trial's number is the previous one's plus one (one index lookup), exactly
    Optuna's count of the study's earlier trials, queued trials and a second study in the
    same database included; the running trials of a study are found through an index."""
    where = place("cheap", root=tmp_path)
    with quiet_optuna():
        create(cheap_study(), where)  # the first run makes the index
    store = TrialCache(storage(where.url))
    studies = [optuna.create_study(study_name=n, storage=store) for n in ("a", "b")]
    for step in range(12):
        study = studies[step % 3 == 0]
        if step % 4 == 1:
            study.enqueue_trial({"x": 1.0})
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 9)}), 1.0)
    with sqlite3.connect(tmp_path / "cheap" / "study.db") as db:
        for study in studies:
            numbers = [
                n
                for (n,) in db.execute(
                    "SELECT number FROM trials WHERE study_id = ? ORDER BY trial_id",
                    (study._study_id,),
                )
            ]
            assert numbers == list(range(len(numbers))) and len(numbers) >= 4
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM trials WHERE study_id = 1 AND state = 'RUNNING'"
        ).fetchall()
    assert "ix_attend_search_trials_study_state" in str(plan), plan


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_private_methods_overridden_keep_their_signatures():
    from optuna.storages import RDBStorage
    from optuna.storages._cached_storage import _CachedStorage

    assert _parameters(RDBStorage._get_prepared_new_trial) == [
        "self",
        "study_id",
        "template_trial",
        "session",
    ]
    assert _parameters(RDBStorage._get_trials) == [
        "self",
        "study_id",
        "states",
        "included_trial_ids",
        "trial_id_greater_than",
    ]
    assert _parameters(RDBStorage._set_trial_attr_without_commit) == [
        "self",
        "session",
        "model_cls",
        "trial_id",
        "key",
        "value",
    ]
    assert _parameters(_CachedStorage._add_trials_to_cache) == ["self", "study_id", "trials"]
    assert _parameters(_CachedStorage._read_trials_from_remote_storage) == ["self", "study_id"]
    assert {"_backend", "_studies", "_lock"} <= set(
        vars(_CachedStorage(optuna.storages.RDBStorage("sqlite://")))
    )


def test_a_trials_suggestions_go_through_its_storage_attribute_and_ids_are_where_read():
    from attend_search.explorer.optuna_adapter import storage_of, trial_id

    study = optuna.create_study()
    trial = study.ask()
    seen = []
    real = trial.storage

    class Spy:
        def set_trial_param(self, *args):
            seen.append(args[1])
            real.set_trial_param(*args)

        def __getattr__(self, name):
            return getattr(real, name)

    trial.storage = Spy()
    trial.suggest_int("n", 0, 3)
    trial.storage = real
    assert seen == ["n"]
    assert storage_of(trial) is study._storage
    assert trial_id(trial) == study.trials[-1]._trial_id


def test_constraints_are_stored_where_optunas_constrained_samplers_read_them():
    from attend_search.explorer.optuna_adapter import CONSTRAINTS_KEY

    sampler = optuna.samplers.NSGAIISampler(constraints_func=lambda t: (t.params["x"] - 1,))
    with quiet_optuna():
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=3)
    assert all(list(t.system_attrs[CONSTRAINTS_KEY]) == [t.params["x"] - 1] for t in study.trials)


def test_tpe_writes_its_relative_parameters_under_the_key_left_out():
    from optuna.samplers._tpe.sampler import _RELATIVE_PARAMS_KEY

    with quiet_optuna():
        study = optuna.create_study(
            sampler=optuna.samplers.TPESampler(
                multivariate=True, n_startup_trials=2, constant_liar=True, seed=0
            )
        )
        study.optimize(
            lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), n_trials=4
        )
    assert any(k.startswith(_RELATIVE_PARAMS_KEY) for k in study.trials[-1].system_attrs)


def test_hypervolume_is_optunas_on_a_front_by_hand():
    from attend_search.explorer.optuna_adapter import hypervolume

    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([3.0, 3.0])) == 3.0


def test_a_draw_forgotten_is_asked_of_the_sampler_again_and_never_stored():
    from attend_search.explorer.optuna_adapter import is_enqueued, params_written_together

    calls = []

    class Counting(optuna.samplers.TPESampler):
        def sample_relative(self, study, trial, search_space):
            calls.append(trial.number)
            return super().sample_relative(study, trial, search_space)

    with quiet_optuna():
        study = optuna.create_study(sampler=Counting(n_startup_trials=2, multivariate=True, seed=0))
        study.optimize(lambda t: t.suggest_int("a", 0, 99) + t.suggest_int("b", 0, 99), 4)
    trial, draws = study.ask(), []
    with params_written_together(trial) as draw:
        for _ in range(5):
            draws.append((trial.suggest_int("a", 0, 99), trial.suggest_int("b", 0, 99)))
            draw.again()
        last = (trial.suggest_int("a", 0, 99), trial.suggest_int("b", 0, 99))
    assert calls[-6:] == [4] * 6  # the relative parameters were sampled anew each time
    assert len(set(draws)) > 1
    stored = study._storage.get_trial(trial._trial_id)
    assert (stored.params["a"], stored.params["b"]) == last
    trial = study.ask()
    with params_written_together(trial) as draw:
        trial.suggest_int("a", 0, 99)
        draw.again(independent=True)  # parameter by parameter: no relative proposal
        trial.suggest_int("a", 0, 99)
    assert calls[-2:] == [4, 5]
    assert not is_enqueued(trial)
    study.enqueue_trial({"a": 1, "b": 2})
    assert is_enqueued(study.ask())
