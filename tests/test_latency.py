"""Latency: kernels read from traced networks, the roofline prediction, device profiles,
calibration, measurement and ONNX export, and the ``latency`` command."""

import csv
import json
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import NONE_CELLS, ORT_NODE, learned_scales
from torch import nn

from attend_search import get_preset, input_shape, list_presets, load_space, nb201_spec
from attend_search.evaluators import UnknownOpsWarning
from attend_search.evaluators.latency.calibrate import calibrate_latency
from attend_search.evaluators.latency.devices import (
    DeviceError,
    builtin_devices,
    load_device,
    read_device,
)
from attend_search.evaluators.latency.kernels import OP_CLASSES, extract_kernels
from attend_search.evaluators.latency.measure import measure, measure_latency, measure_passes
from attend_search.evaluators.latency.predict import predict_latency, total_ms
from attend_search.evaluators.model_input import as_measured
from attend_search.evaluators.runtimes import MeasurementError
from attend_search.evaluators.runtimes import onnx as onnx_runtime
from attend_search.evaluators.runtimes.onnx import export_onnx, onnxruntime_ops
from attend_search.search_space import (
    Attention,
    Block,
    Head,
    Spec,
    Stage,
    Stem,
    build_model,
    load_spec,
)


def tiny_spec(width: int = 16, expand: str = "bilinear") -> Spec:
    """A small spec with every block type, a DC-AC condenser and anti-aliased downsampling."""
    attention = Attention(embed=8, stages=2, groups=2, expand=expand, gate="hardsigmoid")
    return Spec(
        name="tiny",
        input_size=64,
        num_classes=10,
        stem=Stem(out=width),
        stages=(
            Stage(
                (
                    Block(
                        "condenser", out=2 * width, stride=2, downsample="aads", attention=attention
                    ),
                ),
                columns=2,
                merge="concat",
            ),
            Stage(
                (
                    Block("inverted_residual", out=2 * width, mid=4 * width, se=8, act="hswish"),
                    Block("depthwise_separable", out=4 * width, stride=2),
                )
            ),
        ),
        head=Head(channels=64),
    )


def plain_net(width: int) -> nn.Sequential:
    """Standard layers, not a spec: every op class the model knows."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, 2, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, 1, 1, groups=width),
        nn.ReLU6(),
        nn.Conv2d(width, 2 * width, 3, 1, 1, groups=2),
        nn.Hardswish(),
        nn.Conv2d(2 * width, width, 1),
        nn.MaxPool2d(2),
        nn.Upsample(scale_factor=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    )


def only_fixed_costs(device="cortex-a72"):
    """A profile under which compute and memory are free: the latency counts kernels."""
    p = load_device(device)
    return replace(
        p,
        efficiency={c: 1e12 for c in OP_CLASSES},
        memory=tuple(replace(m, bandwidth_gbs=1e12) for m in p.memory),
    )


# --------------------------------------------------------------------------- prediction
@pytest.mark.parametrize("device", builtin_devices())
def test_prediction_is_positive_finite_and_monotone_in_width(device):
    for make, shape in ((plain_net, (1, 3, 64, 64)), (tiny_spec, None)):
        times = [predict_latency(make(w), device, shape) for w in (8, 16, 32, 64)]
        assert all(math.isfinite(t) and t > 0 for t in times)
        assert times == sorted(times) and len(set(times)) == len(times)


def test_plain_sequential_kernels_and_classes():
    kernels = extract_kernels(plain_net(16), (1, 3, 64, 64))
    assert [k.op_class for k in kernels] == [
        "conv",
        "depthwise",
        "grouped",
        "elementwise",  # hard-swish: HardSigmoid, then the multiply
        "elementwise",
        "pointwise",
        "max_pool",
        "upsample",
        "global_pool",
        "linear",
    ]
    assert kernels[0].ops == ("convolution", "native_batch_norm", "relu")
    assert kernels[0].macs == 32 * 32 * 16 * 3 * 9
    assert kernels[0].bytes == 4 * (3 * 64 * 64 + 16 * 32 * 32 + 16 * 3 * 9 + 4 * 16)


@pytest.mark.parametrize(
    "net, shape, ops",
    [
        (
            nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()),
            (1, 3, 16, 16),
            [("convolution", "native_batch_norm", "relu")],
        ),
        (
            nn.Sequential(nn.Conv2d(3, 8, 1, bias=True), nn.Sigmoid()),
            (1, 3, 16, 16),
            [("convolution", "sigmoid")],
        ),
        (nn.Sequential(nn.Linear(8, 8), nn.ReLU()), (1, 8), [("addmm", "relu")]),
        # onnxruntime runs hard-swish as x * HardSigmoid(x): two kernels, neither fused
        (
            nn.Sequential(nn.Conv2d(3, 8, 1), nn.Hardswish()),
            (1, 3, 16, 16),
            [("convolution",), ("hardsigmoid",), ("mul",)],
        ),
    ],
    ids=["conv-bn-relu", "conv-bias-sigmoid", "linear-relu", "conv-hswish"],
)
def test_runtime_fusion_rules(net, shape, ops):
    assert [k.ops for k in extract_kernels(net, shape)] == ops
    fixed = load_device("cortex-a72").fixed_cost_us
    expected = sum(fixed[k.op_class] for k in extract_kernels(net, shape)) / 1e3
    assert predict_latency(net, only_fixed_costs(), shape) == pytest.approx(expected, rel=1e-6)


class TwoPools(nn.Module):
    def forward(self, x):
        return F.avg_pool2d(x, 2, ceil_mode=True) + F.avg_pool2d(x, 2, ceil_mode=True)


@pytest.mark.parametrize(
    "net, shape, ops",
    [
        # the input's NCHW -> NHWC transpose; a PAD before a stride-2 3x3 convolution on an even
        # side (TensorFlow's SAME pads 0 before, 1 after); ReLU fused, sigmoid alone
        (
            nn.Sequential(
                nn.Conv2d(3, 8, 3, 2, 1),
                nn.BatchNorm2d(8),
                nn.ReLU(),
                nn.Conv2d(8, 8, 1),
                nn.Sigmoid(),
            ),
            (1, 3, 16, 16),
            [
                ("permute",),
                ("constant_pad_nd",),
                ("convolution", "native_batch_norm", "relu"),
                ("convolution",),
                ("sigmoid",),
            ],
        ),
        # on an odd side SAME pads 1 and 1 as PyTorch does: no PAD; hard-sigmoid's ReLU6 rides
        # on the convolution, its / 6 is a multiply, and after an add it is an op of its own
        (
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.Hardsigmoid(), nn.Hardsigmoid()),
            (1, 3, 15, 15),
            [("permute",), ("convolution", "hardsigmoid"), ("mul",), ("hardsigmoid",), ("mul",)],
        ),
        # a ceil-mode average pooling of an odd side: PAD, pool, multiply by the window's share;
        # the same pooling twice on one input is one
        (
            TwoPools(),
            (1, 8, 7, 7),
            [("permute",), ("constant_pad_nd",), ("avg_pool2d",), ("mul",), ("add",)],
        ),
        (nn.Sequential(nn.Linear(8, 8), nn.Hardswish()), (1, 8), [("addmm",), ("hardswish",)]),
    ],
    ids=["pad-relu-sigmoid", "odd-side-hardsigmoid", "ceil-avg-pool-once", "linear-hswish"],
)
def test_litert_fusion_rules(net, shape, ops):
    assert [k.ops for k in extract_kernels(net, shape, runtime="litert")] == ops


def test_a_litert_profile_predicts_from_litert_kernels():
    spec = tiny_spec()
    onnx, litert = load_device("cortex-a76"), replace(load_device("cortex-a76"), runtime="litert")
    for profile in (onnx, litert):
        assert predict_latency(spec, profile) == pytest.approx(
            total_ms(extract_kernels(spec, runtime=profile.runtime), profile), rel=1e-12
        )
    assert predict_latency(spec, litert) != predict_latency(spec, onnx)


class ResidualAddRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)  # read twice: cannot be fused with the ReLU
        return F.relu(y + F.relu(y))


def test_add_relu_fuses_on_litert_only_and_a_shared_output_never():
    """onnxruntime fuses activations into a Conv or Gemm only; LiteRT's ADD takes a ReLU."""
    net, shape = ResidualAddRelu(), (1, 8, 8, 8)
    onnx = [k.ops for k in extract_kernels(net, shape)]
    assert onnx == [("convolution",), ("relu",), ("add",), ("relu",)]
    litert = [k.ops for k in extract_kernels(net, shape, runtime="litert")]
    assert litert == [("permute",), ("convolution",), ("relu",), ("add", "relu")]


def test_transformer_encoder_layer_kernels():
    """Attention's matmuls, softmax, layer norm and GELU get their own classes, as exported."""
    d, heads, tokens, hidden = 32, 4, 10, 64
    layer = nn.TransformerEncoderLayer(d, heads, hidden, batch_first=True, activation="gelu")
    kernels = extract_kernels(layer, (1, tokens, d))
    by_class = {c: [k for k in kernels if k.op_class == c] for c in OP_CLASSES}
    # q @ k^T and attn @ v: heads x tokens x tokens x head width each
    assert [k.macs for k in by_class["matmul"]] == [heads * tokens * tokens * (d // heads)] * 2
    # in-projection (q, k, v), out-projection, feed-forward in and out
    assert [k.macs for k in by_class["linear"]] == [
        tokens * d * 3 * d,
        tokens * d * d,
        tokens * d * hidden,
        tokens * hidden * d,
    ]
    assert [k.macs for k in by_class["softmax"]] == [heads * tokens * tokens]
    assert [k.macs for k in by_class["layer_norm"]] == [tokens * d] * 2
    assert [k.ops for k in by_class["gelu"]] == [("gelu",)]
    assert not by_class["unknown"]
    assert all(
        k.ops[0] not in {"_softmax", "_safe_softmax", "native_layer_norm", "gelu"}
        for k in by_class["elementwise"]
    )
    # each kernel pays its own class's dispatch
    fixed = load_device("cortex-a72").fixed_cost_us
    assert predict_latency(layer, only_fixed_costs(), (1, tokens, d)) == pytest.approx(
        sum(fixed[k.op_class] for k in kernels) / 1e3, rel=1e-6
    )
    assert torch.backends.mha.get_fastpath_enabled()  # the trace restores PyTorch's setting


class SelfProduct(nn.Module):
    def forward(self, x):
        return x @ x.transpose(-1, -2)


@pytest.mark.parametrize("device", sorted(builtin_devices()))
def test_a_transformers_gemms_cost_what_the_1x1_convolution_of_the_same_gemm_costs(device):
    """Linear layers over tokens and attention's matmuls run the GEMM kernels of a 1x1
    convolution (benchmarks/bench_gemm_classes.py times them), not a classifier's rate."""
    conv = predict_latency(nn.Conv2d(144, 288, 1), device, (1, 144, 16, 16))
    assert predict_latency(nn.Linear(144, 288), device, (1, 256, 144)) == pytest.approx(
        conv, rel=0.1
    )
    conv = predict_latency(nn.Conv2d(36, 256, 1), device, (1, 36, 32, 32))
    assert predict_latency(SelfProduct(), device, (1, 4, 256, 36)) == pytest.approx(conv, rel=0.25)


class DotProductAttention(nn.Module):
    def forward(self, x):
        return F.scaled_dot_product_attention(x, x, x)


def test_scaled_dot_product_attention_is_two_matmuls_and_a_softmax():
    classes = [k.op_class for k in extract_kernels(DotProductAttention(), (1, 2, 16, 8))]
    assert [c for c in classes if c != "elementwise"] == ["matmul", "softmax", "matmul"]


class CumulativeSum(nn.Module):
    def forward(self, x):
        return torch.relu(torch.cumsum(x, 1))


def test_an_unknown_op_is_reported_by_name_and_costed():
    with pytest.warns(UnknownOpsWarning, match="cumsum"):
        total, times = predict_latency(CumulativeSum(), "cortex-a72", (1, 1000), breakdown=True)
    unknown = [t for t in times if t.op_class == "unknown"]
    assert [t.ops for t in unknown] == [("cumsum",)]
    assert unknown[0].ms > 0 and unknown[0].bytes == 2 * 4 * 1000
    assert total == pytest.approx(sum(t.ms for t in times))


def test_conv_bn_relu_costs_exactly_one_fixed_cost():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    assert predict_latency(net, only_fixed_costs(), (1, 3, 16, 16)) == pytest.approx(
        load_device("cortex-a72").fixed_cost_us["conv"] / 1e3, rel=1e-6
    )


def test_breakdown_sums_to_the_total_and_names_layers(space):
    spec = space.sample(3)
    total, times = predict_latency(spec, "cortex-a72", breakdown=True)
    assert total == pytest.approx(sum(t.ms for t in times))
    assert total == pytest.approx(predict_latency(spec, "cortex-a72"))
    assert {t.op_class for t in times} <= set(OP_CLASSES)
    assert times[0].name.startswith("stem") and all(t.name and t.ms > 0 for t in times)
    assert {t.bound for t in times} <= {"compute", "L2", "DRAM"}


def test_tracing_leaves_the_model_as_it_was():
    model = build_model(tiny_spec())
    model.train()
    model.stages[0].eval()
    flags = [m.training for m in model.modules()]
    predict_latency(model, "cortex-a72", (1, 3, 64, 64))
    assert [m.training for m in model.modules()] == flags
    assert not model._forward_hooks and not model._forward_pre_hooks


# --------------------------------------------------------------------------- spec walk
WALKED, SLOW_WALKED, CHUNK = 40, 300, 26  # seeds traced by default, with the slow cases


def assert_walk_equals_trace(spec: Spec) -> None:
    """The kernels walked from the spec are the traced model's, for each runtime's grouping,
    and so are the latencies."""
    model = build_model(spec)
    assert extract_kernels(spec, runtime="litert") == extract_kernels(
        model, input_shape(spec), runtime="litert"
    )
    assert extract_kernels(spec) == extract_kernels(model, input_shape(spec))
    for device in map(load_device, builtin_devices()):
        traced = extract_kernels(model, input_shape(spec), device.runtime)
        total, times = predict_latency(spec, device, breakdown=True)
        assert total == pytest.approx(total_ms(traced, device), rel=1e-9, abs=0)
        assert [t.name for t in times] == [k.name for k in traced]


@pytest.mark.parametrize("name", list_presets())
def test_walked_kernels_equal_traced_on_presets(name):
    assert_walk_equals_trace(get_preset(name))


@pytest.mark.parametrize(
    "seeds",
    [range(WALKED)]
    + [
        pytest.param(range(start, min(start + CHUNK, SLOW_WALKED)), marks=pytest.mark.slow)
        for start in range(WALKED, SLOW_WALKED, CHUNK)
    ],
    ids=lambda r: f"seeds{r.start}-{r.stop - 1}",
)
def test_walked_kernels_equal_traced_on_sampled_specs(space, seeds):
    for seed in seeds:
        assert_walk_equals_trace(space.sample(seed))


def test_walked_kernels_equal_traced_on_the_tiny_space():
    tiny = load_space(Path(__file__).parent / "data" / "tiny_space.yaml")
    for seed in range(10):
        assert_walk_equals_trace(tiny.sample(seed))


def test_walked_kernels_equal_traced_on_settings_the_space_never_samples(unsampled_spec):
    assert_walk_equals_trace(unsampled_spec)
    # a one-channel input blurred before the stem: the blur is a plain convolution then
    assert_walk_equals_trace(
        replace(unsampled_spec, stem=replace(unsampled_spec.stem, stride=2, downsample="aads"))
    )


@pytest.mark.parametrize("cell", NONE_CELLS)
def test_walked_kernels_equal_traced_on_nb201_cells_with_none_edges(cell):
    assert_walk_equals_trace(nb201_spec(cell))


def test_litert_folds_none_edges_and_the_branches_only_they_read():
    """The issue's cell: node 2 (two 3x3 convolutions) reaches the output only through a
    ``none`` edge, so LiteRT's converter removes it; onnxruntime runs it and the multiply."""
    spec = nb201_spec(NONE_CELLS[0])
    onnx, litert = extract_kernels(spec), extract_kernels(spec, runtime="litert")
    cell_convs = [k for k in onnx if k.op_class == "conv" and ".edges." in k.name]
    assert len(cell_convs) == 2 * 15  # node 2's two 3x3 convolutions, in 15 cells
    assert not [k for k in litert if k.op_class == "conv" and ".edges." in k.name]
    assert sum(k.ops == ("mul",) for k in onnx) == 15
    assert not any(k.ops == ("mul",) and k.name.startswith("stages") for k in litert)
    pi5 = load_device("cortex-a76")
    assert total_ms(litert, pi5) < 0.5 * total_ms(onnx, pi5)
    assert extract_kernels(nb201_spec(NONE_CELLS[3]), runtime="litert") == []  # a constant


@pytest.mark.parametrize("skip, folded", [(False, True), (True, False)])
def test_litert_folds_the_learned_scale_into_the_convolution_that_alone_reads_it(skip, folded):
    """Without a skip the scaled map feeds only the block's depthwise convolution, whose
    weights take the factor; with one it feeds the add. onnxruntime keeps it either way."""
    block = Block("condenser", out=16, attention=Attention(embed=8, skip=skip))
    stages = (Stage((block,)),)
    spec = Spec(input_size=32, num_classes=10, stem=Stem(out=16), stages=stages, head=Head(32))
    assert learned_scales(extract_kernels(spec)) == 1
    assert learned_scales(extract_kernels(spec, runtime="litert")) == (0 if folded else 1)


def test_litert_runs_a_batch_norm_of_its_own_as_sub_mul_mul_add():
    """NAS-Bench-201's last batch norm follows no convolution: as trained, LiteRT writes it
    out in four ops, the ReLU after it fused into the last; onnxruntime runs one."""
    spec = nb201_spec(NONE_CELLS[0])  # whose cells end in an add, not a convolution
    litert = [k for k in extract_kernels(spec, runtime="litert") if k.name.startswith("head")]
    assert [k.ops for k in litert] == [("sub",), ("mul",), ("mul",), ("add", "relu_")]
    assert len({k.bytes for k in litert}) == 1  # each reads the map and writes it
    onnx = [k.ops for k in extract_kernels(spec) if k.name.startswith("head")]
    assert onnx == [("native_batch_norm",), ("relu_",)]


def test_both_runtimes_run_one_relu_for_two_edges_from_one_node():
    spec = nb201_spec(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
        "nor_conv_1x1~1|nor_conv_3x3~2|"
    )
    for runtime in ("onnxruntime", "litert"):
        first_cell = [
            k for k in extract_kernels(spec, runtime=runtime) if k.name.startswith("stages.0.0")
        ]
        # nodes 0 and 1 feed two convolutions each, node 2 one: a ReLU per node, not five
        assert sum("relu" in k.ops for k in first_cell) == 3


@pytest.mark.parametrize(
    "name", [f"nb201:{NONE_CELLS[0]}", f"nb201:{NONE_CELLS[2]}", *list_presets()]
)
def test_onnxruntime_kernels_are_the_nodes_of_its_optimised_graph(name, tmp_path):
    """One kernel per node (the classifier's flatten aside) of the network as timed (its
    attention's learned scale off one: onnxruntime drops a multiply by one, which a trained
    network runs); ReLUs after an add run alone, hard-swish is HardSigmoid and Mul."""
    spec = load_spec(name)
    kernels = extract_kernels(spec)
    export_onnx(*as_measured(spec), tmp_path / "model.onnx")
    nodes = [n for n in onnxruntime_ops(tmp_path / "model.onnx") if n != "Reshape"]
    want = Counter(ORT_NODE.get(k.op_class) or ORT_NODE[k.ops[0]] for k in kernels)
    assert want == Counter(nodes)
    export_onnx(build_model(spec), input_shape(spec), tmp_path / "untrained.onnx")
    untrained = [n for n in onnxruntime_ops(tmp_path / "untrained.onnx") if n != "Reshape"]
    assert want - Counter({"Mul": learned_scales(kernels)}) == Counter(untrained)


def test_a_spec_at_another_input_shape_is_walked_or_traced():
    spec = get_preset("attendnets")
    model = build_model(spec)
    assert extract_kernels(spec, (1, 3, 160, 160)) == extract_kernels(model, (1, 3, 160, 160))
    # no spec walks a batch of two: traced, the activations are twice as large
    batch = extract_kernels(spec, (2, 3, 160, 160))
    assert batch == extract_kernels(model, (2, 3, 160, 160))
    assert batch[0].bytes > extract_kernels(spec, (1, 3, 160, 160))[0].bytes


def test_predicting_a_spec_builds_no_module(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a module was built")

    monkeypatch.setattr(nn.Module, "__init__", refuse)
    total, times = predict_latency(get_preset("attendnext"), "cortex-a53", breakdown=True)
    assert total > 0 and any(t.name == "stages.1.1.body.pw" for t in times)


# --------------------------------------------------------------------------- profiles
def test_profiles_round_trip_through_yaml(tmp_path):
    for name in builtin_devices():
        profile = load_device(name)
        profile.save(tmp_path / f"{name}.yaml")
        assert load_device(tmp_path / f"{name}.yaml") == profile
        assert load_device(str(tmp_path / f"{name}.yaml")) == profile


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d["memory"][2].update(bandwidth_gbs=99.0),
            r"bad.yaml: memory\[2\].bandwidth_gbs: 99.0 exceeds the bandwidth of the level before it",
        ),
        (lambda d: d.update(runtime=" "), "bad.yaml: runtime: empty"),
        (
            lambda d: d["efficiency"].pop("depthwise"),
            "efficiency.depthwise: missing required field",
        ),
        (
            lambda d: d["fixed_cost_us"].update(conv=-1),
            "fixed_cost_us.conv: -1.0 is not a non-negative",
        ),
        (lambda d: d["compute"].update(clock=2), "compute.clock: unknown field"),
        (lambda d: d.update(nchwc_block=12), r"nchwc_block: .*12"),
    ],
)
def test_bad_profiles_name_the_field(tmp_path, edit, message):
    data = load_device("cortex-a76").to_dict()
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DeviceError, match=message):
        load_device(path)


TRANSFORMER_CLASSES = ("matmul", "softmax", "layer_norm", "gelu", "copy", "unknown")


def test_a_profile_saved_before_the_transformer_classes_loads_them_from_its_base(tmp_path):
    fitted = calibrate_latency(
        [(plain_net(w), (1, 3, 32, 32), 2.0 + w / 8) for w in (8, 16, 32)],
        "cortex-a53",
        name="old-board",
    )
    data = fitted.to_dict()
    for group in ("efficiency", "fixed_cost_us"):
        for c in TRANSFORMER_CLASSES:
            data[group].pop(c)
    del data["runtime"]  # nor did it name its runtime
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(data))
    loaded = load_device(tmp_path / "old.yaml")
    base = load_device("cortex-a53")
    assert loaded.runtime == "onnxruntime"
    for c in OP_CLASSES:
        source = base if c in TRANSFORMER_CLASSES else fitted
        assert loaded.efficiency[c] == source.efficiency[c], c
        assert loaded.fixed_cost_us[c] == source.fixed_cost_us[c], c


def test_a_profile_without_a_built_in_base_still_needs_every_class(tmp_path):
    data = load_device("cortex-a72").to_dict()
    data["provenance"] = {"base": "my-own-board"}
    data["efficiency"].pop("softmax")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DeviceError, match=r"p.yaml: efficiency.softmax: missing required field"):
        load_device(tmp_path / "p.yaml")


def test_a_profile_names_its_runtime():
    runtimes = {name: load_device(name).runtime for name in builtin_devices()}
    assert runtimes == {
        "cortex-a53": "onnxruntime",
        "cortex-a72": "onnxruntime",
        "cortex-a76": "onnxruntime",
        "cortex-a76-litert": "litert",
    }
    litert = replace(load_device("cortex-a76"), runtime="litert")
    assert read_device(litert.to_dict()) == litert


def test_unknown_device_lists_the_built_ins():
    with pytest.raises(DeviceError, match="neither a built-in device"):
        load_device("cortex-a99")


# --------------------------------------------------------------------------- calibration
class SqueezeExcite(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))


class Concat(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return torch.cat([self.conv(x), x], 1)


class TokenAttention(nn.Module):
    """Softmax attention between the positions of a map pooled to at most 16 x 16: two
    batched matmuls of activations and a softmax large enough to be compute bound."""

    def forward(self, x):
        x = F.adaptive_avg_pool2d(x, min(16, x.shape[-1]))
        t = x.flatten(2)
        return (t @ torch.softmax(t.transpose(1, 2) @ t, -1)).view_as(x)


class ChannelLayerNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.transpose(1, 3)).transpose(1, 3)


class Transpose(nn.Module):
    def forward(self, x):
        return x.transpose(2, 3).contiguous()


def random_net(rng: random.Random) -> tuple[nn.Module, tuple[int, ...]]:
    """Networks whose numbers of kernels per class vary independently, so that every
    coefficient of the model can be told apart."""
    w = rng.choice([8, 16, 32, 64])
    layers = [nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
    for _ in range(rng.randint(2, 7)):
        kind = rng.choice(
            [
                "conv",
                "dw",
                "pw",
                "grouped",
                "max",
                "avg",
                "up",
                "hswish",
                "se",
                "cat",
                "attn",
                "ln",
                "gelu",
                "transpose",
            ]
        )
        if kind == "conv":
            layers += [nn.Conv2d(w, w, 3, 1, 1), nn.ReLU()]
        elif kind == "dw":
            layers += [nn.Conv2d(w, w, 3, 1, 1, groups=w), nn.ReLU6()]
        elif kind == "pw":
            out = rng.choice([16, 32, 64, 128])
            layers += [nn.Conv2d(w, out, 1), nn.BatchNorm2d(out), nn.ReLU()]
            w = out
        elif kind == "grouped":
            layers += [nn.Conv2d(w, w, 3, 1, 1, groups=4)]
        elif kind == "max":
            layers += [nn.MaxPool2d(2)]
        elif kind == "avg":
            layers += [nn.AvgPool2d(2)]
        elif kind == "up":
            layers += [nn.Upsample(scale_factor=2)]
        elif kind == "hswish":
            layers += [nn.Hardswish()]
        elif kind == "se":
            layers += [SqueezeExcite(w)]
        elif kind == "attn":
            layers += [TokenAttention()]
        elif kind == "ln":
            layers += [ChannelLayerNorm(w)]
        elif kind == "gelu":
            layers += [nn.GELU()]
        elif kind == "transpose":
            layers += [Transpose()]
        else:
            layers += [Concat(w)]
            w *= 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    layers += [nn.Linear(w, w) for _ in range(rng.randint(0, 2))] + [nn.Linear(w, 10)]
    size = rng.choice([16, 32, 64, 96])
    return nn.Sequential(*layers), (1, 3, size, size)


def test_calibration_recovers_a_profile_from_its_own_predictions():
    base = load_device("cortex-a72")
    true = replace(
        base,
        name="truth",
        efficiency={c: e * (0.5 + 0.1 * i) for i, (c, e) in enumerate(base.efficiency.items())},
        fixed_cost_us={c: f * 1.4 for c, f in base.fixed_cost_us.items()},  # one scale fitted
        memory=tuple(
            replace(m, bandwidth_gbs=m.bandwidth_gbs * s) for m, s in zip(base.memory, (0.7, 1.3))
        ),
    )
    rng = random.Random(0)
    nets = [random_net(rng) for _ in range(60)]
    samples = [(net, shape, predict_latency(net, true, shape)) for net, shape in nets]
    fitted = calibrate_latency(samples, base, name="fitted")
    unconstrained = set(fitted.provenance["unconstrained"])
    # classes without work, or memory bound in these networks (element-wise alike)
    assert unconstrained <= {
        "efficiency.linear",
        "efficiency.elementwise",
        "efficiency.concat",
        "efficiency.global_pool",
        "efficiency.upsample",
        "efficiency.max_pool",
        "efficiency.avg_pool",
        "efficiency.copy",
        "efficiency.unknown",
        "efficiency.gelu",
        "efficiency.layer_norm",
    }
    for group in ("efficiency", "fixed_cost_us"):
        for c in OP_CLASSES:
            if f"{group}.{c}" not in unconstrained:
                assert getattr(fitted, group)[c] == pytest.approx(
                    getattr(true, group)[c], rel=1e-3
                ), (group, c)
    for got, want in zip(fitted.memory, true.memory):
        assert got.bandwidth_gbs == pytest.approx(want.bandwidth_gbs, rel=1e-3)
    assert fitted.provenance["mape_pct"] < 0.01 and fitted.provenance["samples"] == 60


def test_fitting_three_scales_recovers_a_uniformly_faster_device():
    base = load_device("cortex-a72")
    true = replace(
        base,
        name="truth",
        runtime="litert",
        efficiency={c: e * 1.7 for c, e in base.efficiency.items()},
        fixed_cost_us={c: f * 0.3 for c, f in base.fixed_cost_us.items()},
        memory=tuple(replace(m, bandwidth_gbs=m.bandwidth_gbs * 2.5) for m in base.memory),
    )
    rng = random.Random(1)
    nets = [random_net(rng) for _ in range(12)]
    samples = [(net, shape, predict_latency(net, true, shape)) for net, shape in nets]
    fitted = calibrate_latency(samples, base, fit="scales", runtime="litert")
    assert fitted.provenance["fit"] == "scales" and fitted.runtime == "litert"
    for c in OP_CLASSES:
        assert fitted.efficiency[c] == pytest.approx(true.efficiency[c], rel=1e-3)
        assert fitted.fixed_cost_us[c] == pytest.approx(true.fixed_cost_us[c], rel=1e-3)
    for got, want in zip(fitted.memory, true.memory):
        assert got.bandwidth_gbs == pytest.approx(want.bandwidth_gbs, rel=1e-3)


@pytest.mark.parametrize("fit", ["full", "scales", "auto"])
def test_held_fixed_costs_stay_the_bases_and_the_rest_still_fits(fit):
    """Held, the base's dispatch costs stay exactly, though the device's are half of them;
    the compute efficiencies still move toward the device's."""
    base = load_device("cortex-a72")
    true = replace(
        base,
        efficiency={c: e * 1.5 for c, e in base.efficiency.items()},
        memory=tuple(replace(m, bandwidth_gbs=m.bandwidth_gbs * 2) for m in base.memory),
        fixed_cost_us={c: us * 0.5 for c, us in base.fixed_cost_us.items()},
    )
    rng = random.Random(3)
    nets = [random_net(rng) for _ in range(20)]
    samples = [(net, shape, predict_latency(net, true, shape)) for net, shape in nets]
    fitted = calibrate_latency(samples, base, fit=fit, hold_fixed_costs=True)
    assert fitted.fixed_cost_us == pytest.approx(dict(base.fixed_cost_us), rel=1e-6)
    assert fitted.provenance["fit"].endswith(", fixed costs held")
    free = calibrate_latency(samples, base, fit=fit)
    assert free.fixed_cost_us["conv"] < 0.75 * base.fixed_cost_us["conv"]  # a free fit moves
    assert fitted.efficiency["conv"] > base.efficiency["conv"]


def test_a_prior_fit_stays_nearer_the_base_than_a_full_one():
    base = load_device("cortex-a72")
    rng = random.Random(2)
    nets = [random_net(rng) for _ in range(6)]
    samples = [
        (net, shape, 0.6 * predict_latency(net, base, shape) * (1 + 0.3 * rng.random()))
        for net, shape in nets
    ]
    moved = {
        fit: sum(
            abs(
                math.log(
                    calibrate_latency(samples, base, fit=fit).efficiency[c] / base.efficiency[c]
                )
            )
            for c in OP_CLASSES
        )
        for fit in ("prior", "full")
    }
    assert moved["prior"] < moved["full"]


@pytest.mark.parametrize("per_class, chosen", [(False, "scales"), (True, "full")])
def test_auto_chooses_the_fit_that_predicts_left_out_networks_best(per_class, chosen):
    """A device uniformly faster than the base needs three scales; one whose classes moved
    apart needs every efficiency fitted."""
    base = load_device("cortex-a72")
    factor = {c: (0.5 + 0.1 * i if per_class else 1.7) for i, c in enumerate(OP_CLASSES)}
    true = replace(
        base,
        efficiency={c: e * factor[c] for c, e in base.efficiency.items()},
        fixed_cost_us={c: f * 0.3 for c, f in base.fixed_cost_us.items()},
    )
    rng = random.Random(3)
    samples = [
        (net, shape, predict_latency(net, true, shape))
        for net, shape in (random_net(rng) for _ in range(30))
    ]
    assert calibrate_latency(samples, base, fit="auto").provenance["fit"] == f"auto: {chosen}"


def test_an_unknown_fit_is_refused():
    with pytest.raises(DeviceError, match="unknown fit 'some'"):
        calibrate_latency([(plain_net(8), (1, 3, 32, 32), 1.0)] * 2, fit="some")


# --------------------------------------------------------------------------- measurement
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_measure_latency_of_a_small_model(runtime):
    ms = measure_latency(plain_net(8), (1, 3, 32, 32), runtime=runtime, warmup=1, repeats=3)
    assert math.isfinite(ms) and ms > 0


def test_a_measurement_reports_rounds_pins_threads_and_keeps_the_file_it_ran(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(ort, "InferenceSession", _spy(ort.InferenceSession, seen))
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 1.0, 1.0))
    net = plain_net(8)
    m = measure(net, (1, 3, 32, 32), warmup=1, repeats=4, rounds=3, keep=tmp_path, threads=2)
    assert 0 < m.low_ms <= m.median_ms <= m.high_ms and (m.rounds, m.repeats) == (3, 4)
    assert m.busy and m.load_average == 3.5 and m.threads == 2
    assert seen[0].intra_op_num_threads == 2
    assert m.model_file == tmp_path / "model.onnx" and sorted(os.listdir(tmp_path)) == [
        "model.onnx"
    ]
    monkeypatch.undo()
    session = ort.InferenceSession(str(m.model_file), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert np.allclose(
            session.run(None, {session.get_inputs()[0].name: x.numpy()})[0],
            net.eval()(x).numpy(),
            atol=1e-4,
        )


def test_measure_passes_converts_each_network_once_then_times_all_of_them_each_pass(
    monkeypatch,
):
    exports, lines = [], []
    export = onnx_runtime.export_onnx
    monkeypatch.setattr(
        onnx_runtime, "export_onnx", lambda *a, **k: exports.append(a[1]) or export(*a, **k)
    )
    networks = [(plain_net(8), (1, 3, 32, 32)), (plain_net(32), (1, 3, 64, 64))]
    lows = measure_passes(networks, warmup=1, repeats=3, rounds=2, passes=3, log=lines.append)
    assert exports == [(1, 3, 32, 32), (1, 3, 64, 64)]  # each converted once, then reopened
    assert lines == ["converted 1/2", "converted 2/2", *(f"pass {p}/3 timed" for p in (1, 2, 3))]
    assert [len(low) for low in lows] == [3, 3] and all(ms > 0 for low in lows for ms in low)
    # 25 times the MACs: slower in every pass, whatever the noise
    assert all(big > small for small, big in zip(*lows))
    with pytest.raises(MeasurementError, match="need passes >= 1, got 0"):
        measure_passes(networks, passes=0)


def test_measure_passes_on_torch_keeps_the_module_no_file():
    lows = measure_passes([(plain_net(8), (1, 3, 32, 32))], runtime="torch", repeats=2, passes=2)
    assert len(lows[0]) == 2 and all(ms > 0 for ms in lows[0])


class ThreadCount(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = set()

    def forward(self, x):
        self.seen.add(torch.get_num_threads())
        return x + 1


def test_torch_runs_on_the_threads_asked_for_and_gets_its_own_back():
    before, net = torch.get_num_threads(), ThreadCount()
    asked = 1 if before > 1 else 2
    measure(net, (1, 3, 8, 8), runtime="torch", threads=asked, warmup=1, repeats=2, rounds=2)
    assert net.seen == {asked} and torch.get_num_threads() == before


def _spy(cls, seen):
    def make(path, options, **kwargs):
        seen.append(options)
        return cls(path, options, **kwargs)

    return make


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(tiny_spec(expand="bilinear"), id="condenser-bilinear-aads"),
        pytest.param(get_preset("attendnets"), id="attendnets", marks=pytest.mark.slow),
    ],
)
def test_onnx_export_matches_pytorch(spec, tmp_path):
    model = build_model(spec).eval()
    x = torch.rand(1, 3, spec.input_size, spec.input_size)
    opset = export_onnx(model, tuple(x.shape), tmp_path / "model.onnx")
    assert opset >= 17
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert np.allclose(got, want, atol=1e-4)


def test_the_timed_onnxruntime_run_writes_each_output_into_its_own_buffer(tmp_path):
    class Three(nn.Module):
        def forward(self, x):
            return x * 1.5, x.mean(dim=(2, 3)), x.argmax(dim=1)

    x = torch.rand(1, 8, 6, 6)
    with onnx_runtime.onnx_session(Three(), x, 1, tmp_path) as (timed, path):
        buffers = timed()
        where = [b.data_ptr() for b in buffers]
        for b in buffers:  # spoiled: the next run must write every one of them again
            b.update_inplace(np.zeros(b.shape(), dtype=b.numpy().dtype))
        again = timed()
    want = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})
    assert len(again) == len(want) == 3 and want[2].dtype == np.int64
    for buffer, value in zip(again, want, strict=True):
        assert np.allclose(buffer.numpy(), value, atol=1e-6)
    # the same memory each run: nothing allocated or copied out per inference
    assert [b.data_ptr() for b in again] == where


# --------------------------------------------------------------------------- command line
def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "attend_search.cli", "latency", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def write_measurements(tmp_path, rows):
    path = tmp_path / "measured.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["spec", "latency_ms", "input_size"], *rows])
    return path


def test_cli_calibrate_writes_a_profile_that_loads(tmp_path):
    truth = load_device("cortex-a53")
    (tmp_path / "nets").mkdir()
    rows = []
    for w in (8, 16, 24, 32, 48):
        spec = tiny_spec(w)
        (tmp_path / "nets" / f"w{w}.json").write_text(spec.to_json())
        rows.append([f"nets/w{w}.json", f"{predict_latency(spec, truth):.4f}", ""])
    rows.append(
        [
            "attendnets",
            f"{predict_latency(get_preset('attendnets'), truth, (1, 3, 160, 160)):.4f}",
            "160",
        ]
    )
    out = run(
        "calibrate",
        str(write_measurements(tmp_path, rows)),
        "--base",
        "cortex-a72",
        "--out",
        str(tmp_path / "fitted.yaml"),
        "--machine",
        "test board",
        "--fit",
        "prior",
        "--runtime",
        "litert",
    )
    assert out.returncode == 0, out.stderr
    assert "on 6 networks" in out.stdout and "MAPE" in out.stdout
    profile = load_device(tmp_path / "fitted.yaml")
    assert profile.name == "fitted" and profile.provenance["machine"] == "test board"
    assert profile.runtime == "litert" and profile.provenance["fit"] == "prior"
    assert profile.provenance["samples"] == 6 and profile.provenance["base"] == "cortex-a72"


@pytest.mark.parametrize(
    "row, message",
    [
        (
            ["attendnets", "abc", ""],
            "measured.csv:3: latency_ms: expected a positive number, got 'abc'",
        ),
        (["nets/none.json", "3.0", ""], "measured.csv:3: spec: nets/none.json: no such spec file"),
        (["attendnets", "3.0", "1.5"], "measured.csv:3: input_size: expected a positive integer"),
    ],
)
def test_cli_calibrate_bad_rows_exit_2_and_write_nothing(tmp_path, row, message):
    path = write_measurements(tmp_path, [["attendnext", "80.0", ""], row])
    out = run("calibrate", str(path), "--out", str(tmp_path / "fitted.yaml"))
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["measured.csv"]


def test_cli_measure_writes_the_measurement_the_spec_and_the_onnx_it_ran(tmp_path):
    (tmp_path / "tiny.json").write_text(tiny_spec(8).to_json())
    out = run(
        "measure",
        "tiny.json",
        "--out",
        "m",
        "--repeats",
        "3",
        "--rounds",
        "3",
        "--warmup",
        "1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(
        r"^[\d.]+ ms  \(the lowest median of 3 rounds of 3 runs, the highest [\d.]+ ms, "
        r"all runs' [\d.]+ ms; onnxruntime, 1 thread",
        out.stdout,
        re.M,
    )
    record = json.loads((tmp_path / "m" / "measurement.json").read_text())
    assert record["interval_ms"][0] <= record["median_ms"] <= record["interval_ms"][1]
    assert record["ms"] == record["interval_ms"][0]  # the latency: the lowest round median
    assert record["digest"] == tiny_spec(8).digest and record["model_file"] == "model.onnx"
    assert record["constants_set_to"] == 0.75  # the file measured is the trained-like one
    assert record["busy"] == (record["load_average"] >= 1) == ("busy" in out.stderr)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "measurement.json",
        "model.onnx",
        "spec.json",
    ]
    ort.InferenceSession(str(tmp_path / "m" / "model.onnx"), providers=["CPUExecutionProvider"])


def test_cli_bench_times_the_networks_in_passes_and_fits_to_their_least(tmp_path):
    out = run(
        *("bench", "--samples", "2", "--input-sizes", "32", "48", "--passes", "2"),
        *("--warmup", "0", "--repeats", "2", "--rounds", "2"),
        *("--base", "cortex-a76", "--out", "b.yaml"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "converted 4/4" in out.stdout and "pass 2/2 timed" in out.stdout
    least = re.findall(r": ([\d.]+) ms \(the least of ([\d.]+), ([\d.]+)\)", out.stdout)
    assert len(least) == 4  # two networks at two sizes each
    assert all(float(ms) == min(float(a), float(b)) for ms, a, b in least)
    profile = load_device(tmp_path / "b.yaml")
    assert profile.provenance["samples"] == 4 and profile.runtime == "onnxruntime"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kernels", "--passes", "2"], "--passes: kernel profiling times each probe once"),
        (["--input-sizes", "64", "16"], "--input-sizes: each between 32 and 2048 pixels"),
    ],
)
def test_cli_bench_refuses_bad_options_before_timing(tmp_path, args, message):
    out = run("bench", *args, "--out", "k.yaml", cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr
    assert not (tmp_path / "k.yaml").exists()


def test_cli_measure_into_a_missing_folder_exits_2_before_measuring(tmp_path):
    out = run("measure", "attendnets", "--out", str(tmp_path / "no" / "m"))
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_cli_predict_prints_the_total_and_top_kernels():
    out = run("predict", "attendnets", "--device", "cortex-a53", "--top", "3")
    assert out.returncode == 0, out.stderr
    assert "ms predicted" in out.stdout and "top 3 kernels" in out.stdout
    assert "pointwise" in out.stdout
