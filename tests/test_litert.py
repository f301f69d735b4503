"""LiteRT: conversion of a search-space network to ``.tflite`` (float and int8), the
interpreter's outputs against PyTorch's, and ``latency measure --runtime litert``."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from helpers import NONE_CELLS, cli, learned_scales

from attend_search import get_preset, list_presets, nb201_spec
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.evaluators.latency.measure import (
    lowest_median,
    measure_latency,
    measure_passes,
    timed_rounds,
)
from attend_search.evaluators.model_input import as_measured
from attend_search.evaluators.runtimes.litert import (
    TFLiteModel,
    convert_tflite,
    litert_available,
    quantize_tflite,
    run_tflite,
    tflite_ops,
)
from attend_search.search_space import Attention, Block, Head, Spec, Stage, Stem, build_model

pytestmark = pytest.mark.skipif(
    not litert_available(),
    reason="the optional extra 'litert' (litert-torch, ai-edge-litert) is not installed",
)

SPEC = Spec(
    name="small",
    input_size=32,
    num_classes=10,
    stem=Stem(out=8),
    stages=(
        Stage(
            (
                Block(
                    "condenser",
                    out=16,
                    stride=2,
                    downsample="aads",
                    attention=Attention(embed=8, stages=2),
                ),
            )
        ),
        Stage((Block("inverted_residual", out=24, stride=2, mid=48, se=8),)),
    ),
    head=Head(channels=32),
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The network, a batch of images, and its float and int8 files (calibrated on 32 images)."""
    torch.manual_seed(0)
    model = build_model(SPEC).eval()
    with torch.no_grad():  # logits of order 1 (not the initialisation's 1e-7)
        model.classifier.fc.weight.normal_(0, 5.0)
    images = torch.rand(48, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    folder = tmp_path_factory.mktemp("litert")
    float_path = convert_tflite(model, (1, 3, 32, 32), folder / "float.tflite")
    int8_path = quantize_tflite(float_path, folder / "int8.tflite", images[:32])
    return model, images, float_path, int8_path


def test_float_file_matches_pytorch(converted):
    model, images, float_path, _ = converted
    with torch.no_grad():
        want = model(images).numpy()
    got = run_tflite(float_path, images.numpy())
    assert got.shape == (48, 10) and np.abs(want).max() > 0.1
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert not TFLiteModel(float_path).int8


def test_int8_file_is_int8_smaller_and_close(converted):
    model, images, float_path, int8_path = converted
    with torch.no_grad():
        want = model(images).numpy()
    got = run_tflite(int8_path, images.numpy())
    assert TFLiteModel(int8_path).int8
    assert int8_path.stat().st_size < float_path.stat().st_size
    error = np.abs(got - want).max() / np.abs(want).max()
    assert 0 < error < 0.2  # quantized: not exact, but near
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.8


# the .tflite op each LiteRT kernel runs as: by class, else by its first op
TFLITE_OP = {
    "conv": "CONV_2D",
    "pointwise": "CONV_2D",
    "grouped": "CONV_2D",
    "depthwise": "DEPTHWISE_CONV_2D",
    "max_pool": "MAX_POOL_2D",
    "avg_pool": "AVERAGE_POOL_2D",
    "global_pool": "MEAN",
    "linear": "FULLY_CONNECTED",
    "concat": "CONCATENATION",
    "permute": "TRANSPOSE",
    "constant_pad_nd": "PAD",
    "hardswish_": "HARD_SWISH",
    "relu_": "RELU",
    "relu": "RELU",
    "sub": "SUB",  # a batch norm following no convolution: SUB, MUL, MUL, ADD
    "sigmoid": "LOGISTIC",
    "mul": "MUL",
    "add": "ADD",
    "hardsigmoid": "ADD",
    "upsample_nearest2d": "RESIZE_NEAREST_NEIGHBOR",
    "upsample_bilinear2d": "RESIZE_BILINEAR",
}


def tflite_names(kernels) -> list[str]:
    return [TFLITE_OP.get(k.op_class) or TFLITE_OP[k.ops[0]] for k in kernels]


def test_litert_kernels_are_the_ops_of_the_tflite_file(converted):
    """One kernel per op the converter wrote, but for the attention's learned scale: a
    multiply by one in a network not trained, which the converter drops."""
    kernels = extract_kernels(SPEC, runtime="litert")
    ops = Counter(tflite_names(kernels))
    assert learned_scales(kernels) == 1
    assert ops - Counter({"MUL": 1}) == Counter(tflite_ops(converted[2]))
    assert ops["PAD"] == 3 and ops["TRANSPOSE"] == 1  # stem, blur, strided depthwise


def converted_ops(spec: Spec, folder) -> list[str]:
    """The ops of the network as timed (:func:`as_measured`)."""
    model, shape = as_measured(spec)
    return tflite_ops(convert_tflite(model.eval(), shape, folder / "model.tflite"))


@pytest.mark.parametrize(
    "cell",
    [
        NONE_CELLS[0],
        NONE_CELLS[2],
        *(pytest.param(c, marks=pytest.mark.slow) for c in (NONE_CELLS[1], NONE_CELLS[3])),
    ],
)
def test_litert_kernels_are_the_tflite_ops_of_nb201_cells_with_none_edges(cell, tmp_path):
    """Op for op, in order: what the converter folds (none edges, adds of zero), removes
    (branches only they read) and fuses (a ReLU into a pooling or a lone batch norm)."""
    spec = nb201_spec(cell)
    assert tflite_names(extract_kernels(spec, runtime="litert")) == converted_ops(spec, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_presets())
def test_litert_kernels_are_the_tflite_ops_of_the_presets(name, tmp_path):
    spec = get_preset(name)
    kernels = extract_kernels(spec, runtime="litert")
    assert Counter(tflite_names(kernels)) == Counter(converted_ops(spec, tmp_path))


class Scaled(torch.nn.Module):
    """One multiply over its input: a memory-bound kernel's probe."""

    def forward(self, x):
        return x * 1.5


def test_litert_is_timed_by_the_interpreter_alone_not_the_copies_in_and_out(tmp_path):
    x = torch.rand(1, 128, 56, 56)  # 1.5 MiB in, 1.5 MiB out
    path = convert_tflite(Scaled(), tuple(x.shape), tmp_path / "scaled.tflite")
    model = TFLiteModel(path)
    invoke = model.bound_invoke(x.numpy())
    invoke()
    output = model._interpreter.get_tensor(model._out["index"])
    assert np.allclose(output, x.numpy() * 1.5)

    def timed(run):  # as measure times it: the lowest round median of thread CPU time
        return lowest_median(timed_rounds(run, 1, warmup=5, repeats=50, rounds=5))

    feed = x.numpy()
    # 35 against 185 us here: setting the input and copying the output out cost 4x the
    # kernel, so a probe timed with them learned its class 5x too slow
    assert timed(invoke) < 0.5 * timed(lambda: model(feed))


@pytest.mark.slow
def test_measure_latency_on_litert():
    ms = measure_latency(SPEC, runtime="litert", warmup=1, repeats=3)
    assert math.isfinite(ms) and ms > 0


def test_measure_passes_on_litert_reopens_the_converted_file():
    lows = measure_passes([(SPEC, None)], runtime="litert", warmup=0, repeats=2, passes=2)
    assert len(lows) == 1 and len(lows[0]) == 2 and all(ms > 0 for ms in lows[0])


def test_cli_latency_measure_runtime_litert(tmp_path):
    (tmp_path / "small.json").write_text(SPEC.to_json())
    out = cli(
        "latency",
        "measure",
        "small.json",
        "--runtime",
        "litert",
        "--repeats",
        3,
        "--warmup",
        1,
        cwd=tmp_path,
    )
    assert "the lowest median of 10 rounds of 3 runs" in out.stdout
    assert "; litert, 1 thread(s)" in out.stdout
    assert (tmp_path / f"latency-{SPEC.digest[:12]}-litert" / "model.tflite").is_file()
    # the converter's progress and C++ logs are silenced; only a loaded machine is warned of
    assert [line for line in out.stderr.splitlines() if "machine is busy" not in line] == []
