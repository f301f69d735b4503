import logging
from collections import Counter

import pytest
from torch import nn

from attend_search import build_model, get_preset, input_shape, list_presets
from attend_search.evaluators.cost.analytic import analytic_cost
from attend_search.evaluators.cost.traced import flop_analysis, fvcore_cost, peak_activation_bytes
from attend_search.search_space import Attention, Block, Head, Spec, Stage, Stem

SPECS, CHUNK = 300, 25  # seeds 0..299, in chunks that pytest -n can share out


def measured(spec: Spec) -> dict[str, int]:
    """What the built model gives, built once for all three figures."""
    model, shape = build_model(spec), input_shape(spec)
    return {
        **fvcore_cost(model, shape),
        "peak_activation_bytes": peak_activation_bytes(model, shape),
    }


@pytest.fixture
def no_warnings(recwarn, caplog):
    """Fails a test during which anything warns or logs a warning (fvcore logs them)."""
    caplog.set_level(logging.WARNING)
    yield
    assert not [str(w.message) for w in recwarn]
    logged = caplog.get_records("call")  # caplog.records would be the teardown's
    assert not [r.getMessage() for r in logged if r.levelno >= logging.WARNING]


@pytest.mark.slow
@pytest.mark.parametrize("start", range(0, SPECS, CHUNK))
def test_analytic_cost_equals_fvcore_and_the_built_model_on_sampled_specs(
    space, start, no_warnings
):
    for seed in range(start, min(start + CHUNK, SPECS)):
        spec = space.sample(seed)
        assert analytic_cost(spec) == measured(spec), f"seed {seed}"


@pytest.mark.parametrize("name", list_presets())
def test_analytic_cost_equals_fvcore_and_the_built_model_on_presets(name, no_warnings):
    spec = get_preset(name)
    assert analytic_cost(spec) == measured(spec)


def test_every_op_of_the_blocks_has_a_rule(space):
    """fvcore finds no op without a handle; the specs checked use every kind of op."""
    seen = Counter()
    specs = [get_preset(name) for name in list_presets()] + [space.sample(s) for s in range(12)]
    for spec in specs:
        analysis = flop_analysis(spec)
        assert not analysis.unsupported_ops(), spec.name
        seen.update(analysis.by_operator())
    assert set(seen) >= {
        "conv",
        "batch_norm",
        "linear",
        "adaptive_avg_pool2d",
        "max_pool2d",
        "avg_pool2d",
        "upsample_nearest2d",
        "upsample_bilinear2d",
        "sigmoid",
        "hardsigmoid",
        "hardswish_",
        "mul",
        "add",
    }


def test_analytic_cost_on_settings_the_space_never_samples(unsampled_spec):
    assert analytic_cost(unsampled_spec) == measured(unsampled_spec)


def _spec(block: Block, input_size: int) -> Spec:
    return Spec(
        input_size=input_size,
        num_classes=10,
        stem=Stem(out=8, kernel=3, stride=2),
        stages=(Stage((block,)),),
        head=Head(),
    )


def test_hand_counted_depthwise_separable_block_with_se_and_residual():
    # 3x32x32 -> stem conv 3x3/2 -> 8x16x16 -> depthwise 3x3, SE(4), pointwise, + input -> 10
    spec = _spec(Block("depthwise_separable", out=8, act="hswish", se=4), input_size=32)
    n = 8 * 16 * 16
    macs = (
        8 * 3 * 9 * 256
        + 2 * n  # stem conv, BN (relu free)
        + 8 * 9 * 256
        + 2 * n
        + n  # depthwise conv, BN, hswish
        + n
        + 8 * 4
        + 4 * 8
        + 8
        + n  # SE: squeeze, fc1, fc2, hardsigmoid, scale
        + 8 * 8 * 256
        + 2 * n
        + n  # pointwise conv, BN, hswish
        + n  # residual add
        + n
        + 8 * 10
    )  # global pool, classifier
    params = 8 * 3 * 9 + 16 + 8 * 9 + 16 + (8 * 4 + 4) + (4 * 8 + 8) + 8 * 8 + 16 + 8 * 10 + 10
    # the block input (kept for the residual), the depthwise output, the pointwise output
    peak = 3 * n * 4
    assert analytic_cost(spec) == {"params": params, "macs": macs, "peak_activation_bytes": peak}
    assert measured(spec) == analytic_cost(spec)


def test_hand_counted_condenser_block_with_ceil_mode_condensation():
    # 3x36x36 -> stem -> 8x18x18 -> DC-AC (18 -> 9 -> 5: ceil mode) -> dw, pw, + input -> 10
    att = Attention(embed=4, stages=2, condense="max", groups=2, expand="nearest", gate="sigmoid")
    spec = _spec(Block("condenser", out=8, attention=att), input_size=36)
    n = 8 * 18 * 18
    macs = (
        8 * 3 * 9 * 324
        + 2 * n  # stem conv, BN
        + 4 * 8 * 81  # max pool 2x2 to 9x9
        + 4 * 4 * 9 * 81
        + 2 * 4 * 81  # grouped 3x3 embedding, BN
        + 4 * 4 * 81
        + 2 * 4 * 81  # pointwise embedding, BN
        + 4 * 4 * 25  # max pool 2x2 to 5x5
        + 4 * 2 * 9 * 25
        + 2 * 4 * 25  # grouped 3x3 embedding, BN
        + 4 * 4 * 25
        + 2 * 4 * 25  # pointwise embedding, BN
        + 4 * 8 * 25  # expansion to 8 channels
        + n
        + n
        + n
        + n  # upsample, sigmoid, x * gate, * scale
        + 8 * 9 * 324
        + 2 * n
        + 8 * 8 * 324
        + 2 * n  # depthwise, pointwise (+ BN)
        + n
        + n
        + 8 * 10
    )  # residual, global pool, classifier
    params = (
        8 * 27
        + 16
        + (4 * 4 * 9 + 8)
        + (16 + 8)
        + (4 * 2 * 9 + 8)
        + (16 + 8)
        + (4 * 8 + 8)
        + 1
        + (8 * 9 + 16)
        + (8 * 8 + 16)
        + 8 * 10
        + 10
    )
    peak = 3 * n * 4  # block input (residual), attention output, depthwise output
    assert analytic_cost(spec) == {"params": params, "macs": macs, "peak_activation_bytes": peak}
    assert measured(spec) == analytic_cost(spec)


def plain_net(inplace: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )


def test_a_plain_sequential_is_counted_and_keeps_its_mode(no_warnings):
    net = plain_net(inplace=True)
    cost = fvcore_cost(net, (1, 3, 8, 8))
    # conv (bias free), BN 2 per element, relu 0, 2x2 max pool 4 per output, linear
    assert cost == {
        "params": 8 * 27 + 8 + 16 + 128 * 10 + 10,
        "macs": 8 * 27 * 64 + 2 * 8 * 64 + 4 * 128 + 128 * 10,
    }
    # the input and the conv output; the pool's indices are never read
    assert peak_activation_bytes(net, (1, 3, 8, 8)) == (3 * 64 + 8 * 64) * 4
    assert net.training and all(m.training for m in net.modules())


def test_in_place_and_out_of_place_activations_give_one_peak():
    assert peak_activation_bytes(plain_net(True), (1, 3, 8, 8)) == peak_activation_bytes(
        plain_net(False), (1, 3, 8, 8)
    )


def test_analytic_cost_builds_no_module(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a module was built")

    monkeypatch.setattr(nn.Module, "__init__", refuse)
    assert analytic_cost(get_preset("attendnext"))["params"] > 0
