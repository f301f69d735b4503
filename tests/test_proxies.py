import copy
import math
from dataclasses import replace

import pytest
import torch

from attend_search import (
    AttendSearchError,
    build_model,
    get_preset,
    input_shape,
    list_presets,
    nb201_spec,
)
from attend_search.evaluators import proxies
from attend_search.evaluators.proxies import (
    PROXIES,
    check_proxy,
    expressivity,
    synaptic_flow,
    zero_cost,
    zero_cost_all,
)
from attend_search.evaluators.proxies import (
    probe as proxy_probe,
)
from attend_search.evaluators.proxies.ensemble import ENSEMBLE_FLOOR
from attend_search.search_space.blocks import Columns


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


def test_synflow_beyond_float32_range_stays_finite_and_exact():
    mobilenet = get_preset("mobilenet_v2")
    deeper = replace(mobilenet, stages=mobilenet.stages + mobilenet.stages[5:6] * 2)
    score = zero_cost(deeper, proxy="synflow")
    assert math.log(torch.finfo(torch.float32).max) < score < math.inf
    fast, reference = synflow_fast_and_reference(build_model(deeper))
    assert fast == pytest.approx(reference, rel=1e-6)


def synflow_fast_and_reference(model):
    """Synflow of the same weights by the float32 rescaled path and by the float64 reference."""
    shape = input_shape(model.spec)
    fast = copy.deepcopy(model).eval()
    return (
        synaptic_flow._synflow_scaled(fast, list(fast.modules()), shape),
        synaptic_flow._synflow_float64(copy.deepcopy(model).eval(), shape),
    )


@pytest.mark.parametrize("name", list_presets())
def test_fast_synflow_equals_the_float64_reference_on_every_preset(name):
    fast, reference = synflow_fast_and_reference(build_model(get_preset(name)))
    assert fast == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("seed", range(50))
def test_fast_synflow_equals_the_float64_reference_on_sampled_specs(space, seed):
    torch.manual_seed(seed)
    fast, reference = synflow_fast_and_reference(build_model(space.sample(seed)))
    assert fast == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 6])  # spec 5 has no parallel columns
def test_fast_synflow_exact_with_columns_at_other_scales(monkeypatch, space, seed):
    """The first column of each stage made 1000x weaker, and rescaling before every unit:
    columns reach their merge at different scales, which must be aligned."""
    monkeypatch.setattr(synaptic_flow, "RESCALE", 0)
    torch.manual_seed(seed)
    model = build_model(space.sample(seed))
    stages = [stage for stage in model.stages if isinstance(stage, Columns)]
    with torch.no_grad():
        for stage in stages:
            next(stage.columns[0].parameters()).mul_(1e-3)
    fast, reference = synflow_fast_and_reference(model)
    assert stages and fast == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("rescale", [0, synaptic_flow.RESCALE])
@pytest.mark.parametrize(
    "name, weight_scale, bias_std, curved",
    [
        ("attendnets", 0.2, 1.0, True),
        ("mobilenet_v3_large", 0.2, 1.0, True),
        ("mobilenet_v3_large", 1.0, 1e18, False),
    ],
)
def test_fast_synflow_exact_with_biases_and_gates_curved_or_saturated(
    monkeypatch, name, weight_scale, bias_std, curved, rescale
):
    """At 32 pixels, weights scaled by 0.2 keep the gates (condenser sigmoids, SE hard-sigmoids)
    in their curved range, which reverse mode must take; unscaled, they saturate and forward
    mode runs, with activations so large that only huge biases count. The random biases must
    count; ``rescale`` 0 rescales before every unit, so each gate and bias sees a scale other
    than 1."""
    monkeypatch.setattr(synaptic_flow, "RESCALE", rescale)
    torch.manual_seed(0)
    model = build_model(get_preset(name, num_classes=10, input_size=32))
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                layer.weight.mul_(weight_scale)
                if layer.bias is not None:
                    layer.bias.normal_(std=bias_std)
    gated = []
    for gate in model.modules():
        if isinstance(gate, synaptic_flow.GATES):
            gate.register_forward_hook(
                lambda m, args, y: gated.append(((y > 0.05) & (y < 0.95)).any())
            )
    backward = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: backward.append(1) or grad(*a, **k))
    fast, reference = synflow_fast_and_reference(model)
    assert gated and all(gated) == curved and any(gated) == curved
    assert bool(backward) == curved
    assert fast == pytest.approx(reference, abs=1e-6)  # 1e-6 relative on the raw flow
    unbiased = copy.deepcopy(model)
    for layer in unbiased.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)) and layer.bias is not None:
            torch.nn.init.zeros_(layer.bias)
    assert abs(synflow_fast_and_reference(unbiased)[1] - reference) > 1e-3


def test_synflow_takes_the_fast_path_only_for_modules_it_knows(monkeypatch):
    spec = get_preset("attendnets", num_classes=10, input_size=32)
    model = build_model(spec).eval()
    foreign = copy.deepcopy(model)
    foreign.stem.act = torch.nn.GELU()  # not homogeneous: rescaling would change it
    shape = input_shape(spec)
    assert synaptic_flow.synflow(copy.deepcopy(foreign), shape) == synaptic_flow._synflow_float64(
        copy.deepcopy(foreign), shape
    )
    monkeypatch.setattr(synaptic_flow, "_synflow_float64", None)  # a call would fail
    assert math.isfinite(synaptic_flow.synflow(model, shape))


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
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    scores = zero_cost_all(net, (1, 1, 12, 12), batch_size=8)
    assert all(math.isfinite(v) for v in scores.values())


def test_unknown_proxy_refused_with_the_known_names():
    with pytest.raises(AttendSearchError, match="unknown proxy 'jacov'; known: synflow, naswot"):
        zero_cost(get_preset("attendnets"), proxy="jacov")
    assert check_proxy("zico") == "zico"


@pytest.mark.parametrize(
    "batch, message",
    [
        ((torch.zeros(3, 3, 32, 32),), "pair"),
        ((torch.zeros(3, 3, 32, 32), torch.zeros(2, dtype=torch.long)), "one target per input"),
        ((torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long)), "zico needs a batch of at"),
    ],
)
def test_bad_batches_refused(batch, message):
    with pytest.raises(AttendSearchError, match=message):
        zero_cost(get_preset("attendnets", input_size=32), proxy="zico", batch=batch)


def test_naswot_needs_activation_modules():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    with pytest.raises(AttendSearchError, match="naswot and ensemble need ReLU"):
        zero_cost(net, (1, 12), proxy="naswot", batch_size=4)


def test_proxies_share_one_copy_and_one_pass_each_with_the_values_of_separate_runs(monkeypatch):
    spec = get_preset("attendnets", num_classes=10, input_size=32)
    model = build_model(spec)
    batches = []
    model.register_forward_pre_hook(lambda m, args: batches.append(len(args[0])))
    copies = []
    monkeypatch.setattr(proxy_probe, "deepcopy", lambda m: copies.append(m) or copy.deepcopy(m))
    together = zero_cost_all(model, input_shape(spec), batch_size=8, num_classes=10)
    assert len(copies) == 1
    # zico's halves; the ensemble's 4 examples; naswot, grad_norm and snip share one
    assert sorted(batches) == [4, 4, 4, 8]
    for proxy, score in together.items():  # (synflow runs its units, not forward)
        assert zero_cost(model, input_shape(spec), proxy=proxy, batch_size=8) == score, proxy


def test_a_spec_is_scored_on_the_network_built_from_it_without_a_copy(monkeypatch):
    spec = get_preset("attendnets", num_classes=10, input_size=32)
    expected = zero_cost_all(spec, batch_size=8)
    monkeypatch.setattr(proxy_probe, "deepcopy", None)
    assert zero_cost_all(spec, batch_size=8) == expected


def test_ensemble_is_deterministic_for_a_seed_and_independent_of_what_else_is_asked():
    spec = get_preset("attendnets", num_classes=10, input_size=64)
    alone = zero_cost(spec, proxy="ensemble", seed=3)
    assert zero_cost(spec, proxy="ensemble", seed=3) == alone
    assert zero_cost(spec, proxy="ensemble", seed=4) != alone
    # its examples are its own, whatever batch the other proxies draw
    together = zero_cost_all(spec, seed=3, batch_size=16, signals=True)
    assert together["ensemble"] == alone
    signals = {k.partition(".")[2]: v for k, v in together.items() if k.startswith("ensemble.")}
    assert set(signals) == set(proxies.ENSEMBLE_SCALES)
    assert alone == pytest.approx(
        sum(
            proxies.ENSEMBLE_WEIGHTS[k] * v / proxies.ENSEMBLE_SCALES[k] for k, v in signals.items()
        )
    )


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(8, 8, 1), torch.nn.BatchNorm2d(8)
        self.act = torch.nn.SiLU()  # negative outputs: codes are not the output's sign alone

    def forward(self, x):
        return self.act(self.bn(self.conv(x))) + x


def test_ensemble_signals_of_a_module_written_outside_the_toolkit():
    """Blocks are found inside plain containers; complexity counts the convolutions' and
    linear layers' multiply-accumulates of one example."""
    body = torch.nn.ModuleList([_Block(), _Block()])
    stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    head = torch.nn.Linear(8 * 8 * 8, 10)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.body, self.head = stem, body, head

        def forward(self, x):
            x = self.stem(x)
            for block in self.body:
                x = block(x)
            return self.head(x.flatten(1))

    assert expressivity.blocks(Net()) == list(body)  # single layers are not blocks
    assert expressivity.blocks(stem) == list(stem)  # unless there is nothing else
    scores = zero_cost_all(Net(), (1, 3, 8, 8), proxies=["ensemble"], signals=True)
    assert math.exp(scores["ensemble.complexity"]) == pytest.approx(
        8 * 8 * 8 * 3 * 9 + 2 * 8 * 8 * 8 * 8 + 8 * 8 * 8 * 10
    )
    # the mean entropy of the blocks' outputs, each at most log 8 (8 channels)
    assert 0 < scores["ensemble.expressivity"] <= math.log(8)
    assert scores["ensemble.naswot"] > ENSEMBLE_FLOOR  # not floored: a kernel of full rank


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "2d"])
@pytest.mark.parametrize("act", [torch.nn.ReLU, torch.nn.SiLU, torch.nn.Hardswish])
def test_naswot_kernel_is_the_papers_definition(act, layout):
    """K = c c' + (1 - c)(1 - c)' summed over activations, c = output > 0 (Mellor et al.)."""
    from attend_search.evaluators.proxies.activation_codes import code_kernel

    x = torch.randn(5, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    if layout == "2d":
        net, x = torch.nn.Sequential(torch.nn.Linear(7, 40), act()), x.flatten(1)[:, :7]
    else:
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), act())
        if layout == "channels_last":
            net, x = (
                net.to(memory_format=torch.channels_last),
                x.contiguous(memory_format=torch.channels_last),
            )
    kernel, hooks = code_kernel(net, len(x))
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    c = (y > 0).flatten(1).double()
    assert torch.equal(kernel, c @ c.T + (1 - c) @ (1 - c).T)


def test_a_module_without_activations_is_refused_by_the_ensemble_with_a_clear_error():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net(torch.zeros(1, 3, 8, 8))
    with pytest.raises(AttendSearchError, match="ensemble need ReLU"):
        zero_cost(net, (1, 3, 8, 8), proxy="ensemble")


def test_ensemble_is_finite_on_sampled_specs_and_a_network_without_flow(space):
    from attend_search import load_space

    specs = [space.sample(seed) for seed in range(3)] + [
        load_space("nas-bench-201").sample(s) for s in range(3)
    ]
    dead = nb201_spec("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert zero_cost(dead, proxy="synflow") == -math.inf
    for spec in specs:  # every signal a value of its own, none at the floor
        values = zero_cost_all(spec, proxies=["ensemble"], signals=True)
        assert all(ENSEMBLE_FLOOR < v < math.inf for v in values.values()), spec.digest
    # a dead network: finite, below every live one
    assert math.isfinite(zero_cost(dead, proxy="ensemble"))
    assert zero_cost(dead, proxy="ensemble") < min(zero_cost(s, proxy="ensemble") for s in specs)


def test_feature_entropies_are_high_for_isotropic_features_and_zero_for_one_direction():
    iso = torch.nn.Sequential(torch.nn.Identity())

    def entropies(x):
        found, hooks = expressivity.entropy_hooks(iso)
        iso(x)
        for h in hooks:
            h.remove()
        return found

    x = torch.randn(64, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    (spread,) = entropies(x)
    assert math.log(8) - 0.1 < spread <= math.log(8)
    flat = x[:, :1].expand(-1, 8, -1, -1)  # every channel the same: one direction
    assert entropies(flat) == [pytest.approx(0.0, abs=1e-9)]
