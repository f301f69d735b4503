"""Exports end to end from the command line: weights and seed, files checked against them,
a dynamic ONNX batch, LiteRT and int8, the manifest and stale folders, the card's snippet."""

import json
import os
import re
import shutil
import signal
import stat

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import DATA, cli, fault_env, start
from onnx import numpy_helper
from safetensors.torch import load_file

from attend_search.evaluators.cost.analytic import analytic_cost
from attend_search.evaluators.runtimes.litert import litert_available
from attend_search.search_space import build_model
from attend_search.studies.export.folders import folder_pattern, partial_folder, remove_abandoned
from attend_search.studies.export.model_card import Provenance
from attend_search.studies.export.network import export_network, file_sha256
from attend_search.studies.export.verify import ExportError, load_exported, verify_export

needs_litert = pytest.mark.skipif(
    not litert_available(),
    reason="the optional extra 'litert' (litert-torch, ai-edge-litert) is not installed",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study, run once for the module; exports only read it."""
    root = tmp_path_factory.mktemp("study")
    for name in ("tiny_space.yaml", "tiny_study.yaml"):
        shutil.copy(DATA / name, root / name)
    cli("run", "tiny_study.yaml", "--budget", 10, cwd=root)
    return root / "studies" / "tiny"


def folders(out):
    return sorted(p for p in out.iterdir() if p.is_dir())


def test_export_writes_weights_seed_and_checks_that_mean_something(study, tmp_path):
    cli(
        "export",
        study,
        "--top",
        1,
        "--sort",
        "synflow",
        "--format",
        "onnx,pt2",
        "--seed",
        3,
        "--out",
        "out",
        cwd=tmp_path,
    )
    (folder,) = folders(tmp_path / "out")
    card = (folder / "MODEL_CARD.md").read_text()
    assert "`torch.manual_seed(3)`" in card
    assert f"SHA-256 `{file_sha256(folder / 'weights.safetensors')}`" in card
    errors = dict(re.findall(r"\| `(model\.\w+)` \| ([0-9.e+-]+) \|", card))
    assert set(errors) == {"model.onnx", "model.pt2"}
    assert all(float(e) < 1e-4 for e in errors.values())

    # the weights are those of the seeded builder, and the folder has normal permissions
    spec, model = load_exported(folder)
    torch.manual_seed(3)
    seeded = build_model(spec).state_dict()
    stored = load_file(folder / "weights.safetensors")
    assert all(torch.equal(stored[k], seeded[k]) for k in stored)
    assert stat.S_IMODE(folder.stat().st_mode) & 0o055 == 0o055  # not mkdtemp's 0700
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044 for p in folder.iterdir())

    # the card's snippet rebuilds exactly this network; ONNX takes any batch
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    namespace = {}
    with pytest.MonkeyPatch.context() as m:
        m.chdir(folder)
        exec(snippet, namespace)
    x = torch.rand(3, 3, spec.input_size, spec.input_size)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = namespace["model"](x).numpy()
    assert got.shape == (3, spec.num_classes)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_the_cards_metrics_and_budgets_are_the_exact_costs_in_their_units(study, tmp_path):
    cli(
        "export",
        study,
        "--top",
        1,
        "--sort",
        "synflow",
        "--format",
        "json",
        "--out",
        "out",
        cwd=tmp_path,
    )
    (folder,) = folders(tmp_path / "out")
    text = (folder / "MODEL_CARD.md").read_text()
    rows = re.findall(r"^\| ([\w ]+) \| ([0-9.,e+-]+) \| (.+) \|$", text, re.M)
    card = {metric: (float(value.replace(",", "")), unit) for metric, value, unit in rows}
    cost = analytic_cost(load_exported(folder)[0])
    for title, metric, unit in [
        ("params", "params", "M"),
        ("macs", "macs", "M"),
        ("peak activation", "peak_activation_bytes", "MB"),
    ]:
        assert card[title][1] == unit
        assert card[title][0] == pytest.approx(cost[metric] / 1e6, rel=1e-3)
    # the study's budget (params max 40000) as value and bound, not a relative amount
    (value,) = re.findall(r"^\| params <= 0\.04 M \| ([0-9.]+) M \| yes \|$", text, re.M)
    assert float(value) == pytest.approx(cost["params"] / 1e6, rel=1e-3)
    assert "| simd_channels | kept | yes |" in text


@pytest.mark.parametrize("factor", [1.01, 0.0], ids=["1%-off", "all-zero"])
def test_a_broken_file_fails_the_check(study, tmp_path, factor):
    """Both pass the old check (atol 1e-4 on logits of about 1e-4) and fail this one."""
    cli(
        "export",
        study,
        "--top",
        1,
        "--sort",
        "synflow",
        "--format",
        "onnx",
        "--out",
        "out",
        cwd=tmp_path,
    )
    (folder,) = folders(tmp_path / "out")
    assert verify_export(folder)[0].relative_error < 1e-4
    model = onnx.load(folder / "model.onnx")
    (weight,) = [t for t in model.graph.initializer if t.name == "classifier.fc.weight"]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * factor, weight.name))
    onnx.save(model, folder / "model.onnx")
    with pytest.raises(ExportError, match="model.onnx: output differs from PyTorch"):
        verify_export(folder)


def test_export_network_writes_the_given_weights(tmp_path):
    from attend_search import Spec, get_preset

    spec = Spec.from_dict(
        {**get_preset("attendnets").to_dict(), "input_size": 32, "num_classes": 4}
    )
    model = build_model(spec)
    with torch.no_grad():  # "trained": weights no builder would make
        for p in model.parameters():
            p.add_(0.1)
    folder = export_network(
        spec,
        model,
        tmp_path / "trained",
        Provenance(weights="Trained 2 epochs on digits"),
        formats=["onnx"],
    )
    _, rebuilt = load_exported(folder)
    assert all(
        torch.equal(a, b)
        for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values())
    )
    card = (folder / "MODEL_CARD.md").read_text()
    assert "Trained 2 epochs on digits." in card and "manual_seed" not in card
    assert verify_export(folder)[0].largest_logit > 1e-3


def test_stale_folders_are_refused_then_removed_with_force(study, tmp_path):
    cli(
        "export",
        study,
        "--top",
        3,
        "--sort",
        "synflow",
        "--format",
        "json",
        "--out",
        "out",
        cwd=tmp_path,
    )
    manifest = json.loads((tmp_path / "out" / "tiny.manifest.json").read_text())
    assert manifest["options"]["selection"] == "top 3" and manifest["study_state"]["trials"] == 10
    exported = {e["folder"] for e in manifest["exports"]}
    assert exported == {p.name for p in folders(tmp_path / "out")}
    assert manifest["options"]["seed"] == 0 and manifest["written_at"].endswith("+00:00")
    top = manifest["exports"][0]["trial"]

    again = cli(
        "export",
        study,
        "--trial",
        top,
        "--format",
        "json",
        "--out",
        "out",
        cwd=tmp_path,
        check=False,
    )
    assert again.returncode == 2 and "is from an earlier export" in again.stderr
    assert len(folders(tmp_path / "out")) == 3  # nothing written or removed
    cli(
        "export", study, "--trial", top, "--format", "json", "--out", "out", "--force", cwd=tmp_path
    )
    manifest = json.loads((tmp_path / "out" / "tiny.manifest.json").read_text())
    assert [p.name for p in folders(tmp_path / "out")] == [manifest["exports"][0]["folder"]]
    assert len(manifest["removed_stale"]) == 2
    assert manifest["options"]["selection"] == f"trial {top}"


def export_interrupted(study, cwd, sig):
    """``export`` sent ``sig`` while its folder is half-written (held there by an injected
    fault); returns the process, ended."""
    out, mark = cwd / "out", cwd / "mark"
    proc = start(
        "export",
        study,
        "--top",
        1,
        "--sort",
        "synflow",
        "--format",
        "onnx",
        "--out",
        out,
        cwd=cwd,
        env=fault_env("export-hang", mark),
        until=mark.exists,
    )
    assert any(out.glob(".*.partial"))
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    return proc


def test_an_export_killed_mid_write_leaves_a_partial_folder_the_next_one_removes(study, tmp_path):
    export_interrupted(study, tmp_path, signal.SIGKILL)
    (partial,) = (tmp_path / "out").glob(".*.partial")  # what SIGKILL cannot clean up
    again = cli(
        "export",
        study,
        "--top",
        1,
        "--sort",
        "synflow",
        "--format",
        "onnx",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert f"{partial.name}: removed (half-written by an export that was killed)" in again.stdout
    (folder,) = folders(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        folder.name,
        "tiny.manifest.json",
    ]


def test_an_export_interrupted_with_ctrl_c_is_exit_130_and_leaves_nothing(study, tmp_path):
    proc = export_interrupted(study, tmp_path, signal.SIGINT)
    assert proc.returncode == 130
    assert list((tmp_path / "out").iterdir()) == []


def test_a_live_exports_partial_folder_is_left_alone(tmp_path):
    """Only a dead writer's folder is ours to remove: this process's, and another export's
    name, stay."""
    mine = partial_folder(tmp_path / "tiny-trial1-ab12", os.getpid())
    other = partial_folder(tmp_path / "other-trial1-ab12", 2**22 + 1)  # above pid_max
    for path in (mine, other):
        path.mkdir()
    assert remove_abandoned(tmp_path, folder_pattern("tiny")) == []
    assert mine.is_dir() and other.is_dir()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "onnx", "--quantize", "int8"], "--quantize int8 needs --calibration"),
        (
            ["--format", "pt2", "--quantize", "int8", "--calibration", "digits"],
            "--quantize int8: quantizes the onnx and tflite formats",
        ),
        (["--format", "onnx", "--quantize", "int8", "--calibration", "missing.npz"], "missing.npz"),
    ],
)
def test_int8_options_are_checked_before_writing(study, tmp_path, args, message):
    out = cli(
        "export",
        study,
        "--top",
        1,
        "--sort",
        "synflow",
        *args,
        "--out",
        "out",
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@needs_litert
def test_litert_and_int8_export_from_the_command_line(study, tmp_path):
    cli(
        "export",
        study,
        "--top",
        1,
        "--sort",
        "synflow",
        "--format",
        "onnx,tflite",
        "--quantize",
        "int8",
        "--calibration",
        "digits",
        "--calibration-images",
        16,
        "--out",
        "out",
        cwd=tmp_path,
    )
    (folder,) = folders(tmp_path / "out")
    names = {p.name for p in folder.iterdir()}
    assert {
        "model.onnx",
        "model.int8.onnx",
        "model.tflite",
        "model.int8.tflite",
        "weights.safetensors",
        "spec.json",
        "MODEL_CARD.md",
    } <= names
    card = (folder / "MODEL_CARD.md").read_text()
    assert "calibrated on 16 images of `digits`" in card
    for name in ("model.int8.onnx", "model.int8.tflite"):
        row = re.search(
            rf"\| `{re.escape(name)}` \| ([\d.]+)% \| ([\d.]+)% \| (-?[\d.]+) \| "
            rf"([\d.]+)% \|",
            card,
        )
        int8, fp32, drop, same = map(float, row.groups())
        assert drop == pytest.approx(fp32 - int8, abs=0.11) and 0 <= same <= 100
    latency = dict(re.findall(r"\| `(model[\w.]+)` \| (?:onnxruntime|LiteRT) \| ([\d.]+) \|", card))
    assert set(latency) == {"model.onnx", "model.int8.onnx", "model.tflite", "model.int8.tflite"}
    assert all(float(ms) > 0 for ms in latency.values())
    assert float(re.search(r"\| `model.tflite` \| ([0-9.e+-]+) \|", card).group(1)) < 1e-4


def test_without_the_litert_extra_tflite_says_what_to_install(monkeypatch):
    import importlib.util

    from attend_search.evaluators.runtimes import litert
    from attend_search.studies.export.network import parse_formats

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in litert.PACKAGES else real(name, *a),
    )
    assert not litert.litert_available()
    with pytest.raises(litert.LiteRTError, match=r"pip install 'attend-search\[litert\]'"):
        parse_formats("onnx,tflite")
    assert parse_formats("onnx,pt2") == ["onnx", "pt2"]
