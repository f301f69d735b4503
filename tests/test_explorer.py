"""The explorer in-process: duplicates, infeasible candidates, presets, pruning reports."""

import dataclasses
from pathlib import Path

import optuna
import pytest
import yaml

from attend_search.explorer import Evaluation, open_study, optimize, record_of
from attend_search.explorer.search import TrialObjective, quiet_optuna
from attend_search.studies import read_study
from attend_search.studies.results import best, candidates, counts

DATA = Path(__file__).parent / "data"


def config(**changes):
    study = yaml.safe_load((DATA / "tiny_study.yaml").read_text())
    study.update(changes)
    return read_study(study, DATA).search


class CountingEvaluation(Evaluation):
    """The real evaluation, counting the expensive calls it makes."""

    calls: list = []

    def expensive(self, spec, metrics, report=None, clock=None):
        CountingEvaluation.calls.append(spec.digest)
        return super().expensive(spec, metrics, report, clock)


def run(search, n, sampler_seed=0):
    with quiet_optuna():
        run = open_study(search, optuna.storages.InMemoryStorage())
        optimize(run, n_trials=n)
    return run.study


def few_architectures(widths=(16, 24)):
    """A space of ``2 * len(widths)`` architectures (two kernels, the widths given)."""
    space = yaml.safe_load((DATA / "tiny_space.yaml").read_text())
    space["micro"] = {"block": "depthwise_separable", "kernel": [3, 5], "downsample": "aads"}
    space["stages"] = {
        "count": 2,
        "slots": [
            {"stride": 2, "depth": 1, "width": 16, "micro": {"kernel": 3}},
            {"stride": 2, "depth": 1, "width": list(widths)},
        ],
    }
    space.update(input_size=32, stem={"out": 8})
    space["head"] = {"channels": 0}
    return space


def test_duplicate_architectures_are_evaluated_once():
    # more trials than architectures: once the space is spent, repeats remain after the
    # redraws and are reused
    search = config(space=few_architectures(), sampler="random", presets=False)
    search = dataclasses.replace(search, evaluation=CountingEvaluation(proxy_batch_size=4))
    CountingEvaluation.calls = []
    study = run(search, 12)
    digests = [record_of(t).digest for t in study.trials]
    assert len(set(digests)) == 4 < len(digests)
    assert sorted(CountingEvaluation.calls) == sorted(set(digests))  # each evaluated once
    for t in study.trials:
        if record_of(t).duplicate_of is not None:
            twin = study.trials[record_of(t).duplicate_of]
            assert record_of(twin).digest == record_of(t).digest and twin.values == t.values
            assert record_of(t).redraws == TrialObjective.MAX_REDRAWS  # bounded, recorded
    assert counts(study.trials).duplicates == len(digests) - len(set(digests))


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_a_proposal_that_repeats_an_architecture_is_drawn_again(sampler):
    # 8 architectures, 8 trials: without redraws a sampler repeats some (random: surely)
    search = config(
        space=few_architectures((16, 24, 32, 40)),
        sampler=sampler,
        presets=False,
        objectives=[{"metric": "params"}],
    )
    study = run(search, 8)
    records = [record_of(t) for t in study.trials]
    assert len({r.digest for r in records}) == 8
    assert all(r.duplicate_of is None for r in records)
    assert sum(r.redraws for r in records) == counts(study.trials).redraws > 0
    for t, r in zip(study.trials, records):  # the stored parameters are the last draw's
        assert len(t.params) == len(study.trials[0].params)


def test_infeasible_candidates_cost_nothing_and_are_never_best():
    search = config(
        constraints={
            "use": "best-practices",
            "rules": {"condensers_per_stage": False},
            "params": {"max": 12000},
        },
        sampler="random",
    )
    CountingEvaluation.calls = []
    search = dataclasses.replace(search, evaluation=CountingEvaluation(proxy_batch_size=4))
    study = run(search, 16)
    infeasible = [t for t in study.trials if not record_of(t).feasible]
    feasible = [t for t in study.trials if record_of(t).feasible]
    assert infeasible and feasible
    for t in infeasible:
        assert any(v > 0 for v in t.constraints.values())  # Optuna knows
        assert record_of(t).imputed == ("synflow",)  # no proxy was paid for
        assert record_of(t).digest not in CountingEvaluation.calls
    assert all(record_of(t).feasible for t in best(study.trials, search.objectives))
    assert {t.number for t in candidates(study.trials)} <= {t.number for t in feasible}
    assert counts(study.trials).infeasible == len(infeasible)


def test_presets_in_the_space_start_the_study_when_they_meet_the_constraints():
    space = yaml.safe_load(
        Path(__file__)
        .parents[1]
        .joinpath("src/attend_search/search_space/spaces/attendnext.yaml")
        .read_text()
    )
    loose = config(space=space, constraints={"use": "best-practices"}, sampler="random")
    with quiet_optuna():
        study = open_study(loose, optuna.storages.InMemoryStorage()).study
    queued = [t.user_attrs.get("preset") for t in study.get_trials(deepcopy=False)]
    assert queued == ["attendnext"]  # attendnets breaks aads_downsampling; MobileNets are outside
    tight = config(space=space, constraints={"params": {"max": 1.0e6}}, sampler="random")
    with quiet_optuna():
        study = open_study(tight, optuna.storages.InMemoryStorage()).study
    assert [t.user_attrs.get("preset") for t in study.get_trials(deepcopy=False)] == []


def test_training_objective_reports_every_epoch_to_the_pruner():
    search = config(
        objectives=[{"metric": "accuracy"}],
        pruner="median",
        presets=False,
        evaluation={"training": {"epochs": 2, "input_size": 16, "batch_size": 64}},
    )
    study = run(search, 2)
    trained = [t for t in study.trials if record_of(t).feasible]
    assert trained  # else nothing below would be checked
    for t in trained:
        assert sorted(t.intermediate_values) == [0, 1]
        assert 0.0 <= t.values[0] <= 1.0


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "gp"])
def test_every_sampler_runs_a_constrained_multi_objective_study(sampler):
    study = run(config(sampler=sampler), 6)
    assert sum(t.state.is_finished() for t in study.trials) == 6
    assert counts(study.trials).failed == 0


def test_an_accuracy_estimate_is_labelled_with_its_measured_rank_correlation():
    from attend_search.explorer.metrics import SPEARMAN, Objective

    label = Objective("ensemble", "maximize").label
    assert label.startswith("ensemble (score): accuracy estimate, not accuracy (Spearman ")
    for benchmark in ("NAS-Bench-201", "NAS-Bench-Macro"):
        assert f"{SPEARMAN['ensemble'][benchmark]:.2f} {benchmark}" in label
    assert "unmeasured on attention condenser networks" in label
    assert Objective("params", "minimize").label == "params (M)"  # a cost, not an estimate
    assert Objective("latency.cortex-a72", "minimize").label == "latency.cortex-a72 (ms)"
