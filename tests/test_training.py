from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from attend_search import AttendSearchError, build_model, get_preset
from attend_search.evaluators.training.datasets import DatasetError, adapt_images, load_dataset
from attend_search.evaluators.training.short import train_eval
from attend_search.search_space import Block, Spec, Stage, Stem

TINY = Spec(
    input_size=32,
    num_classes=1000,
    stem=Stem(out=8),
    stages=(Stage((Block("depthwise_separable", out=16, stride=2),)),),
)


class Pruned(Exception):
    pass


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_learned_well_above_chance_with_one_report_per_epoch(digits):
    reports = []
    spec = get_preset("attendnets", num_classes=1000, input_size=32)  # rebuilt for 10 classes
    accuracy = train_eval(spec, digits, 2, callback=lambda e, a: reports.append((e, a)))
    assert accuracy > 0.6  # chance is 0.1
    assert [e for e, _ in reports] == [0, 1] and reports[-1][1] == accuracy


def test_exception_in_callback_stops_training_and_propagates(digits):
    epochs = []

    def prune(epoch, accuracy):
        epochs.append(epoch)
        raise Pruned

    with pytest.raises(Pruned):
        train_eval(TINY, digits, 3, callback=prune)
    assert epochs == [0]


def test_same_seed_same_accuracy_and_caller_rng_untouched(digits):
    torch.manual_seed(1)
    expected = torch.rand(2)
    torch.manual_seed(1)
    first = train_eval(TINY, digits, 1, seed=5)
    assert torch.equal(torch.rand(2), expected)
    assert train_eval(TINY, digits, 1, seed=5) == first


def test_module_trained_on_a_copy(digits):
    model = build_model(replace(TINY, num_classes=10, in_channels=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert 0 <= train_eval(model, digits, 1, input_size=16) <= 1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_progress_bar_only_when_asked_or_on_a_terminal(digits, capsys):
    train_eval(TINY, digits, 1)  # stderr is captured, so not a terminal
    assert capsys.readouterr().err == ""
    train_eval(TINY, digits, 1, progress=True)
    assert "training digits" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs and batch_size must be 1 or more"),
        ({"epochs": 1, "device": "gpu7"}, "unknown device 'gpu7'"),
    ],
)
def test_bad_arguments_refused(digits, kwargs, message):
    with pytest.raises(AttendSearchError, match=message):
        train_eval(TINY, digits, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_asked_for_without_cuda(digits):
    with pytest.raises(AttendSearchError, match="CUDA is not available"):
        train_eval(TINY, digits, 1, device="cuda")


# ----------------------------------------------------------------------------- datasets
def test_digits_as_three_channel_images_of_a_chosen_size():
    data = load_dataset("digits", channels=3, image_size=16, val_fraction=0.25)
    assert data.num_classes == 10 and data.channels == 3 and data.image_size == (16, 16)
    assert len(data.y_train) + len(data.y_val) == 1797 and len(data.y_val) == 449
    assert 0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1


def test_split_is_reproducible_for_a_seed():
    a, b, c = (load_dataset("digits", image_size=8, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.y_val, b.y_val) and not torch.equal(a.y_val, c.y_val)


def test_hard_digits_distort_the_split_digits_and_noise_only_training_labels():
    from attend_search.evaluators.training.datasets import HARD_LABEL_NOISE

    plain, hard = load_dataset("digits"), load_dataset("digits-hard")
    again, other = load_dataset("digits-hard"), load_dataset("digits-hard", seed=1)
    assert torch.equal(hard.x_train, again.x_train) and not torch.equal(hard.x_val, other.x_val)
    assert hard.x_train.shape == plain.x_train.shape and hard.x_val.shape == plain.x_val.shape
    assert torch.equal(hard.y_val, plain.y_val)  # validation labels are true
    changed = float((hard.y_train != plain.y_train).float().mean())
    assert 0.5 * HARD_LABEL_NOISE < changed < HARD_LABEL_NOISE  # a random class may be the same
    assert float((hard.x_val - plain.x_val).abs().mean()) > 0.1  # every image distorted


def test_npz_with_splits_channels_last_uint8(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8),
        y_train=np.arange(12) % 3,
        x_val=rng.integers(0, 256, (6, 10, 10, 3), dtype=np.uint8),
        y_val=np.arange(6) % 3,
    )
    data = load_dataset(path)
    assert data.x_train.shape == (12, 3, 10, 10) and data.x_val.shape == (6, 3, 10, 10)
    assert data.num_classes == 3 and float(data.x_train.max()) <= 1


def test_npz_grayscale_without_split_trains(tmp_path):
    x = np.random.default_rng(0).random((40, 12, 12), dtype=np.float32)
    np.savez(tmp_path / "gray.npz", x=x, y=np.arange(40) % 2)
    data = load_dataset(tmp_path / "gray.npz", val_fraction=0.25)
    assert data.x_train.shape == (30, 1, 12, 12) and data.num_classes == 2
    assert 0 <= train_eval(TINY, data, 1, batch_size=8) <= 1  # gray repeated to 3 channels


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"images": np.zeros((2, 4, 4))},
            "expected arrays x_train, y_train, x_val, y_val .or x, y., found images",
        ),
        ({"x": np.zeros((2, 4)), "y": np.zeros(2, int)}, "x: images must be"),
        ({"x": np.zeros((2, 4, 4)), "y": np.zeros(3, int)}, "y: labels must be 2 integers"),
        ({"x": np.zeros((2, 4, 4)), "y": np.zeros(2)}, "y: labels must be 2 integers"),
    ],
)
def test_bad_npz_named(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(path)
    assert str(path) in str(info.value)


def test_image_folder(tmp_path):
    for label, colour in (("cat", 40), ("dog", 200)):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (20 + i, 20), (colour, i, 0)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    data = load_dataset(tmp_path, image_size=8, val_fraction=0.34)
    assert data.num_classes == 2 and data.x_train.shape == (4, 3, 8, 8) and len(data.y_val) == 2
    gray = load_dataset(tmp_path, channels=1)
    assert gray.channels == 1 and gray.image_size == (20, 20)  # the first image's width


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "no images found: expected one sub-folder of images per class"),
        (lambda p: p / "missing.npz", "no such file"),
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: (p / "a.csv").write_text("1,2") and p / "a.csv", "not a dataset"),
        (lambda p: (p / "a.npz").write_text("junk") and p / "a.npz", "not a readable .npz file"),
    ],
)
def test_bad_sources_named(tmp_path, make, message):
    source = make(tmp_path)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(source)
    assert str(source) in str(info.value)


def test_adapt_images_channels_and_size():
    x = torch.rand(2, 1, 8, 8)
    assert adapt_images(x, 3, 16).shape == (2, 3, 16, 16)
    assert adapt_images(torch.rand(2, 3, 8, 8), 1).shape == (2, 1, 8, 8)
    with pytest.raises(DatasetError, match="cannot turn 3-channel images into 4 channels"):
        adapt_images(torch.rand(2, 3, 8, 8), 4)
