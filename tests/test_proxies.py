import math
from dataclasses import replace

import pytest
import torch

from attend_search import AttendSearchError, build_model, get_preset, input_shape, list_presets
from attend_search.evaluators.proxies import PROXIES, check_proxy, zero_cost, zero_cost_all


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before, training=True):
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert model.training is training
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", list_presets())
def test_every_proxy_finite_on_every_preset_and_model_unchanged(name):
    spec = get_preset(name, num_classes=10, input_size=64)
    model = build_model(spec)
    before = snapshot(model)
    scores = zero_cost_all(model, input_shape(spec), batch_size=16)
    assert set(scores) == set(PROXIES)
    assert all(math.isfinite(v) for v in scores.values()), scores
    assert_unchanged(model, before)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_presets())
def test_every_proxy_finite_at_full_size(name):
    scores = zero_cost_all(get_preset(name), batch_size=8)
    assert all(math.isfinite(v) for v in scores.values()), scores


def test_synflow_is_a_finite_log_at_full_size_on_the_deepest_preset():
    deepest = max(list_presets(), key=lambda n: sum(len(s.blocks) for s in get_preset(n).stages))
    assert math.isfinite(zero_cost(get_preset(deepest), proxy="synflow"))


def test_synflow_beyond_float32_range_stays_finite():
    mobilenet = get_preset("mobilenet_v2")
    deeper = replace(mobilenet, stages=mobilenet.stages + mobilenet.stages[5:6] * 2)
    score = zero_cost(deeper, proxy="synflow")
    assert math.log(torch.finfo(torch.float32).max) < score < math.inf


def test_same_seed_same_score_other_seed_other_score():
    spec = get_preset("attendnets", num_classes=10, input_size=32)
    for proxy in PROXIES:
        first = zero_cost(spec, proxy=proxy, seed=3, batch_size=8)
        assert zero_cost(spec, proxy=proxy, seed=3, batch_size=8) == first, proxy
        assert zero_cost(spec, proxy=proxy, seed=4, batch_size=8) != first, proxy


def test_real_batch_and_eval_mode_model():
    spec = get_preset("attendnets", num_classes=4, input_size=32)
    model = build_model(spec).eval()
    before = snapshot(model)
    batch = (torch.rand(8, 3, 32, 32), torch.arange(8) % 4)
    for proxy in PROXIES:
        assert math.isfinite(zero_cost(model, proxy=proxy, batch=batch))
    assert_unchanged(model, before, training=False)


def test_caller_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    zero_cost(get_preset("attendnets", num_classes=10, input_size=32), proxy="snip", batch_size=4)
    assert torch.equal(torch.rand(3), expected)


def test_module_input_for_classes_taken_from_output():
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 5))
    scores = zero_cost_all(net, (1, 1, 12, 12), batch_size=8)
    assert all(math.isfinite(v) for v in scores.values())


def test_unknown_proxy_refused_with_the_known_names():
    with pytest.raises(AttendSearchError, match="unknown proxy 'jacov'; known: synflow, naswot"):
        zero_cost(get_preset("attendnets"), proxy="jacov")
    assert check_proxy("zico") == "zico"


@pytest.mark.parametrize("batch, message", [
    ((torch.zeros(3, 3, 32, 32),), "pair"),
    ((torch.zeros(3, 3, 32, 32), torch.zeros(2, dtype=torch.long)), "one target per input"),
    ((torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long)), "zico needs a batch of at"),
])
def test_bad_batches_refused(batch, message):
    with pytest.raises(AttendSearchError, match=message):
        zero_cost(get_preset("attendnets", input_size=32), proxy="zico", batch=batch)


def test_naswot_needs_activation_modules():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    with pytest.raises(AttendSearchError, match="naswot needs ReLU"):
        zero_cost(net, (1, 12), proxy="naswot", batch_size=4)
