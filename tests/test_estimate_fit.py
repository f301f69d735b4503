"""The ensemble fitted to trained networks: the fit, its file, ``proxy fit`` and a study that
names ``ensemble@FILE``."""

import math

import numpy as np
import pytest
import yaml
from helpers import MACRO_DEV, cli, needs, storage_trials

from attend_search.errors import AttendSearchError
from attend_search.evaluators.estimate_fit import (
    SIGNALS,
    FitError,
    fit_ensemble,
    load_fit,
)
from attend_search.evaluators.proxies import ENSEMBLE_SCALES, zero_cost_all
from attend_search.explorer import record_of
from attend_search.explorer.metrics import Objective, check_metric

BUILT_IN = dict.fromkeys(SIGNALS, 1.0)


def _signals(n, seed=0):
    rng = np.random.default_rng(seed)
    return [dict(zip(SIGNALS, row)) for row in rng.normal(size=(n, 3))]


def test_the_fit_learns_what_the_networks_reward_and_keeps_the_built_in_with_few():
    signals = _signals(200)
    # accuracy rewards naswot, and complexity backwards: unlike the built-in weights
    accuracy = [s["naswot"] - 0.5 * s["complexity"] + 0.05 * s["expressivity"] for s in signals]
    fit = fit_ensemble(signals, accuracy, BUILT_IN)
    w = fit.weights
    assert w["naswot"] > 0 > w["complexity"] and w["naswot"] > 5 * abs(w["expressivity"])
    assert fit.spearman["fitted"] > 0.95 > fit.spearman["built-in"]
    assert fit.networks == 200
    # noise alone: the leave-one-out choice keeps the built-in direction
    noise = list(np.random.default_rng(1).normal(size=8))
    few = fit_ensemble(_signals(8, seed=2), noise, BUILT_IN)
    ratios = [few.weights[s] / few.weights["naswot"] for s in SIGNALS]
    assert ratios == pytest.approx([1.0, 1.0, 1.0], abs=0.2)


@pytest.mark.parametrize(
    ("signals", "accuracy", "message"),
    [
        (_signals(4), [1, 2, 3, 4], "at least 5 trained networks, got 4"),
        (_signals(6), [3.0] * 6, "every accuracy is the same"),
        (_signals(6), [1, 2, 3, 4, 5, math.nan], "not a finite number"),
        ([dict.fromkeys(SIGNALS, 1.0)] * 6, [1, 2, 3, 4, 5, 6], "the same signals"),
    ],
)
def test_networks_that_cannot_be_fitted_are_refused(signals, accuracy, message):
    with pytest.raises(FitError, match=message):
        fit_ensemble(signals, accuracy, BUILT_IN)


def test_a_fit_file_round_trips(tmp_path):
    fit = fit_ensemble(_signals(30), list(range(30)), BUILT_IN, provenance={"trained": "x.csv"})
    fit.save(tmp_path / "fit.yaml")
    assert load_fit(tmp_path / "fit.yaml") == fit
    assert not list(tmp_path.glob(".*tmp"))  # written whole, nothing left beside


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"schema": "attend-search/ensemble-fit/9"}, "schema", "unsupported schema"),
        ({"weights": {"expressivity": 1, "naswot": 1}}, "weights.complexity", "missing"),
        (
            {"weights": {"expressivity": 1, "naswot": "x", "complexity": 1}},
            "weights.naswot",
            "number",
        ),
        ({"weights": dict.fromkeys(SIGNALS, 0)}, "weights", "every weight is 0"),
        ({"weights": {**BUILT_IN, "synflow": 1}}, "weights.synflow", "unknown"),
        ({"networks": 0}, "networks", "below the minimum 1"),
        ({"extra": 1}, "extra", "unknown"),
    ],
)
def test_a_bad_fit_file_is_refused_naming_the_file_and_field(tmp_path, change, field, message):
    good = fit_ensemble(_signals(10), list(range(10)), BUILT_IN).to_dict()
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump({**good, **change}))
    with pytest.raises(FitError, match=message) as err:
        load_fit(path)
    assert err.value.source == str(path) and err.value.path == field


def test_a_study_metric_names_a_fit_file_that_must_exist(tmp_path):
    with pytest.raises(FitError, match="no such ensemble fit file"):
        check_metric(f"ensemble@{tmp_path / 'missing.yaml'}")
    with pytest.raises(AttendSearchError, match="known: .*ensemble@<fit file>"):
        check_metric("ensemble@")


def test_a_study_naming_a_bad_fit_file_says_which_file_and_field(tmp_path):
    from attend_search.studies import read_study
    from attend_search.studies.config import StudyError

    fit = fit_ensemble(_signals(10), list(range(10)), BUILT_IN).to_dict()
    fit["weights"]["naswot"] = "x"
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(fit))
    study = {
        "name": "fitted",
        "space": "nas-bench-macro",
        "objectives": [{"metric": f"ensemble@{tmp_path / 'fit.yaml'}"}],
    }
    with pytest.raises(StudyError) as err:
        read_study(study)
    assert err.value.path == "objectives[0].metric"
    assert f"{tmp_path / 'fit.yaml'}: weights.naswot: expected a number" in str(err.value)


def _trained_csv(folder, rows):
    (folder / "trained.csv").write_text(
        "spec,accuracy\n" + "".join(f"{spec},{acc}\n" for spec, acc in rows)
    )


@needs(MACRO_DEV)
def test_proxy_fit_then_a_study_maximises_the_fitted_estimate(workdir, monkeypatch):
    import csv

    with MACRO_DEV.open() as f:
        rows = [(f"macro:{r['arch']}", r["cifar10_test_accuracy"]) for r in csv.DictReader(f)][:8]
    _trained_csv(workdir, rows)
    out = cli("proxy", "fit", "trained.csv", "--out", "fit.yaml", cwd=workdir)
    assert "fitted on 8 networks" in out.stdout and "ensemble@fit.yaml" in out.stdout
    fit = load_fit(workdir / "fit.yaml")
    assert fit.networks == 8 and fit.provenance["trained"] == "trained.csv"

    study = yaml.safe_load((workdir / "tiny_study.yaml").read_text())
    study["objectives"][0] = {"metric": "ensemble@fit.yaml", "direction": "maximize"}
    (workdir / "tiny_study.yaml").write_text(yaml.safe_dump(study))
    cli("run", "tiny_study.yaml", "--budget", "4", cwd=workdir)
    done = [record_of(t) for t in storage_trials(workdir) if t.values]
    assert done
    from attend_search import Spec

    for r in done:  # the study's value is the ensemble's signals under the fitted weights
        signals = zero_cost_all(Spec.from_dict(r.spec), proxies=["ensemble"], signals=True)
        expected = sum(
            fit.weights[k] * signals[f"ensemble.{k}"] / ENSEMBLE_SCALES[k] for k in SIGNALS
        )
        assert r.metrics["ensemble@fit.yaml"] == pytest.approx(expected, rel=1e-6)
    monkeypatch.chdir(workdir)  # a relative fit path is read from where the study runs
    label = Objective("ensemble@fit.yaml", "maximize").label
    assert "fitted to 8 trained networks" in label
    cli("report", "tiny", "--out", "report.html", cwd=workdir)
    assert "fitted to 8 trained networks" in (workdir / "report.html").read_text()


@pytest.mark.parametrize(
    ("csv_text", "where", "message"),
    [
        ("spec,acc\nmobilenet_v2,1\n", ":1", "header lacks column 'accuracy'"),
        ("spec,accuracy\nmobilenet_v2,high\n", ":2: accuracy", "expected a number"),
        ("spec,accuracy\nmacro:a9,1\n", ":2: spec", "not a NAS-Bench-Macro arch string"),
        ("spec,accuracy\nmobilenet_v2,1,2\n", ":2", "more fields than the header"),
        ("spec,accuracy\nmobilenet_v2,1\nattendnets,2\n", "", "at least 5 trained networks"),
    ],
)
def test_proxy_fit_refuses_a_bad_table_naming_the_line_and_writes_nothing(
    tmp_path, csv_text, where, message
):
    (tmp_path / "trained.csv").write_text(csv_text)
    out = cli("proxy", "fit", "trained.csv", "--out", "fit.yaml", cwd=tmp_path, check=False)
    assert out.returncode == 2, out.stderr
    assert f"trained.csv{where}" in out.stderr and message in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "fit.yaml").exists()


@pytest.mark.parametrize(
    ("out", "message"), [(".", "is a directory"), ("missing/fit.yaml", "does not exist")]
)
def test_proxy_fit_refuses_an_output_it_cannot_write_before_scoring(tmp_path, out, message):
    _trained_csv(tmp_path, [("mobilenet_v2", 1)] * 5)
    done = cli("proxy", "fit", "trained.csv", "--out", out, cwd=tmp_path, check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
