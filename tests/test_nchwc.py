"""onnxruntime's blocked layout on x86 (latency.nchwc): the kernel model against the graphs
this machine's onnxruntime runs."""

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import NONE_CELLS, ORT_NODE
from torch import nn

from attend_search import build_model, get_preset, input_shape, list_presets, load_space, nb201_spec
from attend_search.evaluators.latency.calibrate import calibrate_latency
from attend_search.evaluators.latency.devices import DeviceError, load_device
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.evaluators.latency.nchwc import REORDERS, conv_blocked
from attend_search.evaluators.latency.predict import predict_latency
from attend_search.evaluators.latency.profiling import candidates, collect_probes
from attend_search.evaluators.model_input import as_measured
from attend_search.evaluators.runtimes.onnx import (
    _optimised,
    detect_nchwc_block,
    export_onnx,
    onnxruntime_ops,
)

BLOCK = detect_nchwc_block()
needs_blocks = pytest.mark.skipif(not BLOCK, reason="onnxruntime has no blocked layout here")


def test_the_block_is_this_cpus():
    assert BLOCK in (0, 8, 16)
    cpuinfo = Path("/proc/cpuinfo")
    if BLOCK and cpuinfo.exists():  # MLAS blocks 16 channels with AVX-512, 8 with AVX2
        assert BLOCK == (16 if "avx512f" in cpuinfo.read_text().split() else 8)


@needs_blocks
@pytest.mark.parametrize(
    "cin, cout, groups",
    [
        (3, 16, 1),  # few input channels: read as they are
        (15, 16, 1),
        (17, 32, 1),  # no
        (16, 24, 1),  # the output padded to whole blocks
        (3, 3, 3),  # depthwise on 3 channels: no
        (4, 4, 4),
        (24, 24, 24),
        (2 * BLOCK, 2 * BLOCK, 2),  # grouped: a group's channels fill blocks
        (2 * BLOCK, 2 * BLOCK, 4),  # no
        (6 * BLOCK, 6 * BLOCK, 4),  # no
    ],
)
def test_which_convolutions_run_blocked(cin, cout, groups, tmp_path):
    conv = nn.Conv2d(cin, cout, 3, padding=1, groups=groups)
    export_onnx(conv, (1, cin, 12, 12), tmp_path / "conv.onnx")
    runs = "ReorderOutput" in onnxruntime_ops(tmp_path / "conv.onnx", this_cpu=True)
    assert conv_blocked(cin, cout, groups, BLOCK) == runs


@needs_blocks
@pytest.mark.parametrize(
    "cin, cout, groups, kernel",
    [(24, 24, 1, 1), (8, 24, 1, 1), (24, 40, 1, 3), (24, 24, 24, 3), (2 * BLOCK, 2 * BLOCK, 2, 3)],
)
def test_a_blocked_convolution_computes_over_padded_channels(cin, cout, groups, kernel, tmp_path):
    """onnxruntime pads a blocked convolution's weights to whole blocks (not a plain input's
    channels) and computes over them: the kernel's MACs are those of its weights as run."""
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups)
    export_onnx(conv, (1, cin, 8, 8), tmp_path / "conv.onnx")
    graph = _optimised(str(tmp_path / "conv.onnx"), "ALL")
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    (node,) = [n for n in graph.node if n.op_type == "Conv"]
    weights = shapes[node.input[1]]
    assert weights[0] % BLOCK == 0
    (k,) = [k for k in extract_kernels(conv, (1, cin, 8, 8), nchwc_block=BLOCK) if k.macs]
    assert k.macs == 8 * 8 * math.prod(weights)


def test_a_blocked_tensor_is_held_padded():
    class Product(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(24, 24, 1), nn.Conv2d(24, 24, 1)

        def forward(self, x):
            return self.a(x) * self.b(x)

    kernels = extract_kernels(Product(), (1, 24, 8, 8), nchwc_block=16)
    (product,) = [k for k in kernels if k.op_class == "elementwise"]
    assert product.bytes == 3 * 32 * 8 * 8 * 4  # two inputs and the output, 32 channels each
    out = [k for k in kernels if k.ops == ("reorder_output",)]
    assert [k.bytes for k in out] == [(32 + 24) * 8 * 8 * 4]  # read padded, written plain
    # the network's input, whose channels its first convolution tells, is padded too
    into = [k for k in kernels if k.ops == ("reorder_input",)]
    assert [k.bytes for k in into] == [(24 + 32) * 8 * 8 * 4]


SAMPLES = [load_space("attendnext").sample(seed) for seed in range(6)]


@needs_blocks
@pytest.mark.parametrize(
    "spec",
    [
        *(nb201_spec(cell) for cell in NONE_CELLS[:3:2]),
        *(get_preset(name) for name in list_presets()),
        *(pytest.param(s, marks=pytest.mark.slow) for s in SAMPLES),
    ],
    ids=lambda spec: spec.name or spec.digest[:12],
)
def test_onnxruntime_kernels_are_the_nodes_it_runs_on_this_cpu(spec, tmp_path):
    """Node for node: convolutions blocked or not, what they fuse (hard-swish, a residual
    add and the activation after it), the reorders between layouts; of the network as timed
    (:func:`as_measured`: its gates' scales off one, which onnxruntime would drop)."""
    kernels = extract_kernels(spec, runtime="onnxruntime", nchwc_block=BLOCK)
    export_onnx(*as_measured(spec), tmp_path / "model.onnx")
    nodes = onnxruntime_ops(tmp_path / "model.onnx", this_cpu=True)
    theirs = Counter("Resize" if n == "Upsample" else n for n in nodes if n != "Reshape")
    ours = Counter(ORT_NODE.get(k.op_class) or ORT_NODE[k.ops[0]] for k in kernels)
    assert ours == theirs


def test_a_blocked_convolution_fuses_hardswish_and_the_residual_add():
    spec = get_preset("mobilenet_v3_large")
    plain = extract_kernels(spec)
    blocked = extract_kernels(spec, nchwc_block=16)
    ops = [k.ops for k in blocked if k.op_class in ("conv", "pointwise", "depthwise")]
    assert any(o[-1] == "hardswish_" for o in ops) and any(o[-1] == "add" for o in ops)
    assert not any(k.ops[-1] == "hardswish_" for k in plain)
    # the residual add is read in the convolution's pass: its other input's bytes join it
    fused = next(k for k in blocked if k.ops[-1] == "add")
    add = next(k for k in plain if k.name == fused.name and k.ops == ("add",))
    conv = next(k for k in plain if k.macs == fused.macs and k.name.startswith(fused.name))
    assert fused.bytes == conv.bytes + add.bytes // 3
    assert any(k.op_class == "copy" for k in blocked)  # reorders
    assert not any(k.op_class == "copy" for k in plain)
    # the classifier's hard-swish follows a matrix product: still HardSigmoid and Mul
    assert [k.ops for k in blocked if k.name.startswith("classifier.act")] == [
        ("hardsigmoid",),
        ("mul",),
    ]


def test_a_profile_with_a_block_predicts_the_blocked_graph(tmp_path):
    profile = replace(load_device("cortex-a76"), nchwc_block=16)
    profile.save(tmp_path / "x86.yaml")
    assert load_device(tmp_path / "x86.yaml") == profile
    spec = get_preset("mobilenet_v3_large")
    _, times = predict_latency(spec, tmp_path / "x86.yaml", breakdown=True)
    assert [t.ops for t in times] == [k.ops for k in extract_kernels(spec, nchwc_block=16)]
    assert predict_latency(spec, profile) != predict_latency(spec, "cortex-a76")


@needs_blocks
def test_a_probes_reorders_stay_in_its_own_time():
    network = replace(get_preset("attendnext"), input_size=32)
    found = candidates(collect_probes([network]), "onnxruntime", BLOCK)

    def reorders(kernels) -> int:
        return sum(k.ops[0] in REORDERS for k in kernels)

    assert any(
        reorders(extract_kernels(c.probe.module(c.links), c.probe.input_shape, nchwc_block=BLOCK))
        for c in found
    )
    assert not any(reorders(c.extra) for c in found)


@pytest.mark.parametrize(
    "spec",
    [SAMPLES[1], nb201_spec(NONE_CELLS[0]), *(get_preset(name) for name in list_presets())],
    ids=lambda spec: spec.name or spec.digest[:12],
)
def test_a_spec_walked_and_its_model_traced_give_one_blocked_graph(spec):
    traced = extract_kernels(build_model(spec), input_shape(spec), nchwc_block=16)
    assert extract_kernels(spec, nchwc_block=16) == traced


def test_only_onnxruntime_has_a_blocked_layout():
    spec = get_preset("attendnext")
    for runtime in ("litert", "torch"):
        assert extract_kernels(spec, runtime=runtime, nchwc_block=16) == extract_kernels(
            spec, runtime=runtime
        )


def test_calibrating_sets_and_checks_the_block():
    samples = [(get_preset(name), None, 4.0 + i) for i, name in enumerate(list_presets())]
    assert calibrate_latency(samples, "cortex-a76", nchwc_block=16).nchwc_block == 16
    with pytest.raises(DeviceError, match="nchwc_block: 12"):
        calibrate_latency(samples, "cortex-a76", nchwc_block=12)
