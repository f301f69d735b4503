"""The full training recipe (evaluators.trainer, .augment) and ``attend-search train``."""

import io
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import cli, environment, storage_trials
from PIL import Image
from safetensors.torch import load_model
from torch import nn

from attend_search import AttendSearchError, Spec, build_model
from attend_search.evaluators.training.augment import augment
from attend_search.evaluators.training.datasets import DatasetError, load_dataset
from attend_search.evaluators.training.loop import evaluate
from attend_search.evaluators.training.recipe import (
    MIN_LR,
    CheckpointError,
    Recipe,
    WarmupCosine,
    _optimizer,
    train,
)
from attend_search.explorer import record_of
from attend_search.search_space import Attention, Block, Head, Stage, Stem
from attend_search.studies.training_run import run_training

# small enough to train two epochs of digits in seconds; head dropout uses torch's global RNG
SMALL = Spec(
    name="small",
    input_size=32,
    num_classes=1000,
    stem=Stem(out=16),
    stages=(
        Stage(
            (Block("condenser", out=24, stride=2, downsample="aads", attention=Attention(embed=8)),)
        ),
        Stage((Block("depthwise_separable", out=32, stride=2),)),
    ),
    head=Head(channels=64, dropout=0.2),
)
QUICK = Recipe(epochs=2, batch_size=64, hflip=0.5, augment="crop")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# ----------------------------------------------------------------------------- the trainer
def keep_in(saved):
    """An ``on_epoch`` that keeps each state as bytes, as the checkpoint file does."""

    def keep(state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        saved.append(buffer.getvalue())

    return keep


def test_resumed_run_is_bit_for_bit_the_uninterrupted_one(digits):
    whole = train(SMALL, digits, QUICK)
    saved = []
    first = train(SMALL, digits, QUICK, on_epoch=keep_in(saved), stop_after=1)
    assert not first.finished and len(first.log) == 1 and len(saved) == 1
    state = torch.load(io.BytesIO(saved[0]), weights_only=True)
    resumed = train(SMALL, digits, QUICK, state=state)
    assert resumed.finished and whole.finished
    timeless = [{k: v for k, v in e.items() if k != "seconds"} for e in whole.log]
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in resumed.log] == timeless
    after = resumed.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in whole.model.state_dict().items())
    assert whole.log[-1]["val_top1"] > 0.3  # chance is 0.1; flipped digits learn slower
    assert whole.log[-1]["val_top5"] >= whole.log[-1]["val_top1"]

    with pytest.raises(CheckpointError, match="another recipe: lr 0.1 there, 0.05 here"):
        train(SMALL, digits, replace(QUICK, lr=0.05), state=state)
    with pytest.raises(CheckpointError, match="another architecture"):
        train(replace(SMALL, stem=Stem(out=8)), digits, QUICK, state=state)
    with pytest.raises(CheckpointError, match="another data: train 1438 there, 1348 here"):
        train(SMALL, load_dataset("digits", val_fraction=0.25), QUICK, state=state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_channels_last_learns_and_resumes(digits):
    recipe, saved = replace(QUICK, hflip=0, batch_size=32), []
    train(SMALL, digits, recipe, device="cuda", on_epoch=keep_in(saved), stop_after=1)
    state = torch.load(io.BytesIO(saved[0]), weights_only=True)
    assert state["scaler"]["scale"] > 0 and state["cuda_rng"]  # AMP's scaler, CUDA RNG
    resumed = train(SMALL, digits, recipe, device="cuda", state=state)
    assert resumed.finished and resumed.log[-1]["val_top1"] > 0.6  # chance is 0.1
    assert next(resumed.model.parameters()).device.type == "cpu"
    on_cpu = train(SMALL, digits, recipe, state=state)  # CUDA -> CPU goes on too
    assert on_cpu.finished and on_cpu.log[-1]["val_top1"] > 0.6


def test_warmup_then_cosine_to_the_floor():
    schedule = WarmupCosine(warmup=4, total=14)
    assert [schedule(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule(4) == 1.0 and schedule(9) == pytest.approx((1 + MIN_LR) / 2)
    assert schedule(14) == pytest.approx(MIN_LR)
    assert WarmupCosine(0, 10)(0) == 1.0


def test_weight_decay_on_kernels_and_matrices_not_on_biases_and_norms():
    model = build_model(replace(SMALL, num_classes=10))
    for name in ("sgd", "adamw"):
        decayed, plain = _optimizer(model, replace(QUICK, optimizer=name).resolved()).param_groups
        assert decayed["weight_decay"] > 0 and plain["weight_decay"] == 0
        assert {p.ndim for p in decayed["params"]} == {2, 4}
        assert {p.ndim for p in plain["params"]} == {1}
        assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_adamw_learns_too(digits):
    trained = train(SMALL, digits, replace(QUICK, optimizer="adamw", hflip=0, batch_size=32))
    assert trained.log[-1]["val_top1"] > 0.3  # chance is 0.1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"optimizer": "lion"}, "--optimizer: unknown optimizer 'lion'; known: sgd, adamw"),
        ({"lr": 0}, "--lr: must be above 0, got 0"),
        (
            {"warmup_epochs": 2},
            r"--warmup-epochs: must lie in 0..2 \(the epochs, excluded\), got 2",
        ),
        ({"augment": "mixup"}, "--augment: unknown augmentation 'mixup'"),
        ({"hflip": 2}, "--hflip: a probability lies in 0..1, got 2"),
        ({"epochs": 0}, "--epochs: must be 1 or more, got 0"),
        ({"label_smoothing": 1}, "--label-smoothing: must lie in 0..1, got 1"),
    ],
)
def test_bad_recipe_refused_naming_the_option(change, message):
    with pytest.raises(AttendSearchError, match=message):
        replace(QUICK, **change).resolved()


def test_defaults_follow_the_optimizer_and_the_length():
    sgd, adamw = Recipe(epochs=100).resolved(), Recipe(epochs=10, optimizer="adamw").resolved()
    assert (sgd.lr, sgd.weight_decay, sgd.warmup_epochs) == (0.1, 5e-5, 3.0)
    assert (adamw.lr, adamw.weight_decay, adamw.warmup_epochs) == (2e-3, 0.05, 1.0)


def test_top1_and_top5_counted_on_given_logits():
    logits = torch.tensor(
        [
            [9.0, 8, 7, 6, 5, 4, 0],  # label 0: top-1
            [9.0, 8, 7, 6, 5, 4, 0],  # label 4: top-5 only
            [9.0, 8, 7, 6, 5, 4, 0],  # label 6: neither
            [0.0, 0, 0, 0, 0, 0, 1],
        ]
    )  # label 6: top-1
    scores = evaluate(nn.Identity(), logits, torch.tensor([0, 4, 6, 6]), lambda x: x, 3)
    assert (scores["top1"], scores["top5"]) == (0.5, 0.75)
    two = evaluate(nn.Identity(), logits[:, :2], torch.tensor([1, 1, 0, 0]), lambda x: x, 4)
    assert two["top5"] == 1.0  # top-k of two classes: all of them


def test_a_broken_checkpoint_is_refused_naming_it(tmp_path, digits):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AttendSearchError, match="checkpoint.pt: not a readable checkpoint"):
        run_training(SMALL, digits, QUICK, tmp_path, source="small", resume=True)
    torch.save({"epoch": 1}, tmp_path / "checkpoint.pt")
    with pytest.raises(AttendSearchError, match="checkpoint.pt: not an attend-search checkpoint"):
        run_training(SMALL, digits, QUICK, tmp_path, source="small", resume=True)


class Payload:
    """A pickle that creates ``marker`` when it is loaded: code, not weights."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_checkpoint_holding_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    (tmp_path / "run").mkdir()
    torch.save(Payload(marker), tmp_path / "run" / "checkpoint.pt")
    out = cli(
        "train",
        "attendnets",
        "--data",
        "digits",
        "--out",
        "run",
        "--resume",
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "run/checkpoint.pt: not a readable checkpoint: not a pickle of tensors" in out.stderr
    assert not marker.exists()
    torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)  # the payload is live
    assert marker.exists()


# ----------------------------------------------------------------------------- augmentation
def test_shift_moves_whole_pixels_and_flip_mirrors_exactly():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    out = augment(x, 16, "shift", 0.0, torch.Generator().manual_seed(0))
    for image, moved in zip(x, out):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(moved[:, 2:-2, 2:-2], image[:, 2 + dy : 14 + dy, 2 + dx : 14 + dx])
        ]
        assert len(matches) == 1  # a move of whole pixels, at most 2
    assert torch.equal(augment(x, 16, "none", 1.0, torch.Generator()), x.flip(-1))
    assert torch.equal(augment(x, 16, "none", 0.0, torch.Generator()), x)


def test_crop_is_a_zoom_reproducible_for_the_generator_state():
    x = torch.rand(64, 1, 32, 32)
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    a = augment(x, 24, "crop", 0.5, generator)
    b = augment(x, 24, "crop", 0.5, torch.Generator().set_state(state))
    assert a.shape == (64, 1, 24, 24) and torch.equal(a, b)
    smooth = lambda t: float((t[..., 1:] - t[..., :-1]).abs().mean())  # noqa: E731
    assert smooth(a) < 0.8 * smooth(x)  # a zoom into noise interpolates: neighbours closer


# ----------------------------------------------------------------------------- data
def test_a_given_validation_set_is_used_whole(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "train.npz", x=rng.random((30, 8, 8), dtype=np.float32), y=np.arange(30) % 3
    )
    np.savez(tmp_path / "val.npz", x=rng.random((9, 8, 8), dtype=np.float32), y=np.arange(9) % 3)
    data = load_dataset(tmp_path / "train.npz", validation=tmp_path / "val.npz")
    assert (len(data.y_train), len(data.y_val), data.num_classes) == (30, 9, 3)


def test_validation_folder_of_other_classes_refused(tmp_path):
    for split, names in (("train", ("cat", "dog")), ("val", ("cat", "eel"))):
        for name in names:
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / split / name / f"{i}.png")
    with pytest.raises(
        DatasetError,
        match=r"the validation folder's classes \(cat, eel\) are "
        r"not the training folder's \(cat, dog\)",
    ):
        load_dataset(tmp_path / "train", validation=tmp_path / "val")


# ----------------------------------------------------------------------------- the command
TRAIN = [
    "--data",
    "digits",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--hflip",
    "0",
    "--format",
    "onnx",
    "--out",
    "run",
]


def test_train_stop_resume_export_end_to_end(tmp_path):
    (tmp_path / "small.json").write_text(SMALL.to_json())
    one_thread = {"OMP_NUM_THREADS": "1"}  # as this process: same threads, same float sums
    stopped = cli("train", "small.json", *TRAIN, "--stop-after", "1", cwd=tmp_path, env=one_thread)
    assert "run: stopped after epoch 1 of 2" in stopped.stdout
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "metrics.json"]
    again = cli("train", "small.json", *TRAIN, cwd=tmp_path, check=False)
    assert again.returncode == 2 and "already holds a training run" in again.stderr
    other = cli(
        "train", "small.json", *TRAIN, "--lr", "0.05", "--resume", cwd=tmp_path, check=False
    )
    assert other.returncode == 2
    assert (
        "run/checkpoint.pt: the checkpoint is of another recipe: lr 0.1 there, 0.05 here"
        in other.stderr
    )

    cli("train", "small.json", *TRAIN, "--resume", cwd=tmp_path, env=one_thread)
    log = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2] and log["recipe"]["lr"] == 0.1
    top1 = log["epochs"][-1]["val_top1"]
    assert top1 > 0.6  # chance is 0.1
    export = tmp_path / "run" / "export"
    assert sorted(p.name for p in export.iterdir()) == [
        "MODEL_CARD.md",
        "model.onnx",
        "spec.json",
        "weights.safetensors",
    ]
    card = (export / "MODEL_CARD.md").read_text()
    assert (
        f"Trained 2 epochs on `digits` by `attend-search train`: validation top-1 **{top1:.4f}**"
        in card
        and "| optimizer | sgd |" in card
    )

    # the exported ONNX model scores what the log says, on the same validation split
    spec = Spec.from_json((export / "spec.json").read_text())
    assert spec.num_classes == 10 and spec.name == "small"
    model = build_model(spec)
    load_model(model, export / "weights.safetensors")
    data = load_dataset("digits")
    x = data.x_val.expand(-1, 3, -1, -1)  # pixels in 0..1, nothing subtracted
    session = ort.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [
            session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
            for image in x.split(1)
        ]
    )
    assert (logits.argmax(1) == data.y_val.numpy()).mean() == pytest.approx(top1, abs=1e-9)
    with torch.no_grad():
        torch_logits = model.eval()(x).numpy()
    assert np.allclose(torch_logits, logits, atol=1e-4)

    # stopped and resumed from the command line = trained in one go, bit for bit
    straight = train(SMALL, data, Recipe(epochs=2, batch_size=32, hflip=0)).model.state_dict()
    assert all(torch.equal(v, straight[k]) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_sigterm_keeps_the_last_epoch_and_resume_goes_on(tmp_path):
    (tmp_path / "small.json").write_text(SMALL.to_json())
    args = [
        sys.executable,
        "-m",
        "attend_search.cli",
        "train",
        "small.json",
        "--data",
        "digits",
        "--epochs",
        "40",
        "--batch-size",
        "32",
        "--out",
        "run",
    ]
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        env=environment(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 600
    while not (tmp_path / "run" / "metrics.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # as a job's time limit does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert (
        "run: the last complete epoch is kept; to go on, run the same command with --resume" in err
    )
    done = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"][-1]["epoch"]
    assert 1 <= done < 40 and not (tmp_path / "run" / "export").exists()
    resumed = cli(*args[3:], "--resume", "--stop-after", "1", cwd=tmp_path)
    assert f"epoch {done + 1:>3}/40" in resumed.stdout and "stopped after epoch" in resumed.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give a spec (a spec JSON, an export folder or a preset) or --study with --trial"),
        (["attendnets", "--study", "tiny"], "not both"),
        (["--study", "tiny"], "--study needs --trial N"),
        (["attendnets", "--format", "csv"], "--format: csv is a study's trials table"),
        (["attendnets", "--format", "onxx"], "--format: unknown format 'onxx'"),
        (["attendnets", "--quantize", "int4"], "--quantize: 'int4' is not one of int8"),
        (
            ["attendnets", "--format", "", "--quantize", "int8"],
            "--quantize int8: quantizes the onnx and tflite formats",
        ),
        (["attendnets", "--resume"], "run/checkpoint.pt: no checkpoint to resume in run"),
        (["attendnets", "--amp"], "--amp: mixed precision is for --device cuda"),
        (["attendnets", "--warmup-epochs", "5", "--epochs", "3"], "--warmup-epochs: must lie in"),
        (["attendnets", "--data", "nowhere.npz"], "nowhere.npz: no such file"),
        (["missing.json"], "missing.json: no such spec file"),
    ],
)
def test_mistakes_exit_2_and_write_nothing(tmp_path, args, message):
    out = cli("train", "--data", "digits", "--out", "run", *args, cwd=tmp_path, check=False)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["../../escaped", "/ABSOLUTE/escaped"])
def test_a_spec_name_cannot_put_the_run_folder_outside_runs(tmp_path, name):
    name = name.replace("/ABSOLUTE", str(tmp_path))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "spec.json").write_text(SMALL.renamed(name).to_json())
    out = cli(
        "train",
        "spec.json",
        "--data",
        "digits",
        "--epochs",
        "1",
        cwd=tmp_path / "work",
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert f"spec.json: the spec's name {name!r} is not a folder name under runs/" in out.stderr
    assert "give --out" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["spec.json", "work"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_asked_for_without_cuda(tmp_path):
    out = cli(
        "train", "attendnets", "--data", "digits", "--device", "cuda", cwd=tmp_path, check=False
    )
    assert out.returncode == 2 and "CUDA is not available" in out.stderr


def test_train_a_study_trial_and_its_export_folder_alike(workdir):
    cli("run", "tiny_study.yaml", "--budget", "4", cwd=workdir)
    trial = next(
        t for t in storage_trials(workdir) if t.state.name == "COMPLETE" and record_of(t).feasible
    )
    cli(
        "export",
        "tiny",
        "--trial",
        trial.number,
        "--format",
        "json",
        "--out",
        "exports",
        cwd=workdir,
    )
    folder = next(p for p in (workdir / "exports").iterdir() if p.is_dir())
    one = ["--data", "digits", "--epochs", "1", "--format", ""]  # spec and weights only
    by_trial = cli("train", "--study", "tiny", "--trial", trial.number, *one, cwd=workdir)
    by_folder = cli("train", folder, *one, "--out", "from-folder", cwd=workdir)
    name = f"tiny-trial{trial.number}"
    assert f"runs/{name}/export: trained {name}" in by_trial.stdout
    digest = Spec.from_dict(record_of(trial).spec).digest
    spec = Spec.from_json((workdir / "runs" / name / "export" / "spec.json").read_text())
    assert spec.digest == replace(Spec.from_dict(record_of(trial).spec), num_classes=10).digest
    logs = [
        json.loads((workdir / run / "metrics.json").read_text())["epochs"][0]
        for run in (f"runs/{name}", "from-folder")
    ]
    assert logs[0]["val_top1"] == logs[1]["val_top1"] and logs[0]["epoch"] == 1  # same training
    assert "epoch   1/1" in by_folder.stdout
    assert digest in folder.name
    missing = cli("train", "--study", "tiny", "--trial", "999", *one, cwd=workdir, check=False)
    assert missing.returncode == 2 and "--trial 999: no feasible, complete trial" in missing.stderr
