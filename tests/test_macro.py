"""The NAS-Bench-Macro space: the benchmark's networks, its arch strings and their classes."""

import copy

import pandas as pd
import pytest
import torch
from helpers import (
    MACRO_DEV,
    assert_synflow_fast_path_is_the_reference,
    assert_walk_is_the_trace,
    needs,
)

from attend_search import Spec, SpecError, build_model, input_shape, load_space, macro_spec
from attend_search.evaluators.cost.analytic import analytic_cost
from attend_search.evaluators.graph.walk import walk_spec
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.evaluators.latency.predict import predict_latency
from attend_search.search_space.macro import LAYERS, all_archs, canonical_arch, parse_arch

DEV = MACRO_DEV  # the development half of the benchmark, beside the repository
needs_dev = needs(MACRO_DEV)
# every layer kind at every position kind: all identities (projections only), all of each
# block, and mixes with identities at stride 2 and at stride 1
ARCHS = ["a00000000", "a11111111", "a22222222", "a01202011", "a20010210", "a12021200"]


def n_params(spec: Spec) -> int:
    return sum(p.numel() for p in build_model(spec).parameters())


@needs_dev
def test_parameter_counts_and_flops_equal_the_benchmarks_on_every_dev_arch():
    """All 1,961 rows from the spec walk (exact, as the traced model: tested below), and the
    built model's own count on a sample of 30. The benchmark's FLOPs are the MACs of the
    convolutions and the classifier."""
    rows = pd.read_csv(DEV)
    assert len(rows) == 1961
    for arch, params, flops in zip(rows.arch, rows.params, rows.flops):
        walk = walk_spec(macro_spec(arch))
        assert walk.params == params, arch
        assert sum(op.macs for op in walk.ops if op.name in ("convolution", "addmm")) == flops
    for arch, params in rows.sample(30, random_state=0)[["arch", "params"]].itertuples(index=False):
        assert n_params(macro_spec(arch)) == params, arch


@needs_dev
def test_dev_archs_are_their_classes_names():
    rows = pd.read_csv(DEV)
    assert all(canonical_arch(a) == a and macro_spec(a).name == a for a in rows.arch)


def test_every_arch_builds_a_spec_and_isomorphic_archs_share_a_digest():
    archs = all_archs()
    assert len(archs) == 3**8 == len(set(archs))
    digests: dict[str, set[str]] = {}
    for arch in archs:
        digests.setdefault(macro_spec(arch).digest, set()).add(canonical_arch(arch))
    # one digest per class of the benchmark (archs equal up to where stride-1 identities sit)
    assert len(digests) == 3969
    assert all(len(names) == 1 for names in digests.values())


def test_identities_move_within_their_stage_only():
    def digest(arch: str) -> str:
        return macro_spec(arch).digest

    assert digest("a00000020") == digest("a00000002") == digest("00000020")
    assert digest("a10201011") == digest("a10210011")
    assert digest("a20020202") == digest("a20002220") == digest("a20020220")
    assert canonical_arch("a20020202") == canonical_arch("a20002220") == "a20020220"
    # a stage's first identity strides and widens: a projection, not a movable identity
    assert digest("a01000000") != digest("a10000000")
    assert digest("a00000020") != digest("a00000200")
    # nor across stages
    assert digest("a10100000") != digest("a11000000")
    assert digest("a11111111") != digest("a22222222") != digest("a12121212")


@pytest.mark.parametrize("arch", ["a0000000", "a000000003", "b00000000", "0101010x", "", "a 01"])
def test_bad_arch_strings_are_refused(arch):
    with pytest.raises(SpecError, match="NAS-Bench-Macro arch string"):
        macro_spec(arch)
    with pytest.raises(SpecError):
        parse_arch(arch)


def test_the_network_is_the_benchmarks_skeleton():
    spec = macro_spec("a01202011")
    assert (spec.stem.out, spec.stem.stride, spec.stem.act) == (32, 1, "relu")
    assert (spec.head.channels, spec.head.act, spec.num_classes) == (1280, "relu", 10)
    kinds = [[(b.type, b.out, b.stride, b.kernel, b.mid) for b in s.blocks] for s in spec.stages]
    assert kinds == [
        [("projection", 64, 2, 1, 0), ("inverted_residual", 64, 1, 3, 192)],
        [("inverted_residual", 128, 2, 5, 384), ("inverted_residual", 128, 1, 5, 768)],
        [
            ("projection", 256, 2, 1, 0),
            ("inverted_residual", 256, 1, 3, 768),
            ("inverted_residual", 256, 1, 3, 768),
        ],
    ]  # the stride-1 identity of stage 1 is no block
    model = build_model(spec)
    proj = model.stages[0][0]
    assert [type(m).__name__ for m in proj] == ["Conv2d", "BatchNorm2d"]
    assert (proj.conv.kernel_size, proj.conv.stride, proj.conv.bias) == ((1, 1), (2, 2), None)
    assert model.stages[0][1].use_residual and not model.stages[1][0].use_residual
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_projection_blocks_round_trip_and_refuse_fields_they_do_not_have():
    spec = macro_spec("a00000000")
    data = spec.to_dict()
    assert data["stages"][0]["blocks"] == [{"type": "projection", "out": 64, "stride": 2}]
    again = Spec.from_dict(data)
    assert again == spec.canonical() and again.digest == spec.digest
    data["stages"][0]["blocks"][0]["act"] = "relu"
    with pytest.raises(SpecError, match=r"stages\[0\]\.blocks\[0\]"):
        Spec.from_dict(data)
    data = spec.to_dict()
    data["stages"][1]["blocks"][0]["stride"] = 3
    with pytest.raises(SpecError, match=r"stages\[1\]\.blocks\[0\]\.stride"):
        Spec.from_dict(data)


@pytest.mark.parametrize("arch", ARCHS)
def test_walked_cost_and_kernels_equal_the_traced_network(arch):
    assert_walk_is_the_trace(macro_spec(arch))


def test_walked_kernels_equal_traced_at_an_odd_size_and_latency_is_predicted():
    spec = macro_spec("a20010210")
    odd = Spec.from_dict({**spec.to_dict(), "input_size": 45})
    for s in (spec, odd):
        assert extract_kernels(s) == extract_kernels(build_model(s), input_shape(s))
    for device in ("cortex-a72", "cortex-a76"):
        small, large = (predict_latency(macro_spec(a), device) for a in ("a00000000", "a22222222"))
        assert 0 < small < large < float("inf")
        assert predict_latency(spec, device) == pytest.approx(
            predict_latency(build_model(spec), device, input_shape(spec)), rel=1e-9
        )


@pytest.mark.parametrize("arch", ["a00000000", "a01202011", "a22222222"])
def test_synflow_takes_its_fast_path_to_the_float64_value(arch):
    assert_synflow_fast_path_is_the_reference(macro_spec(arch))


@pytest.mark.parametrize("arch", ["a00000000", "a01202011"])
def test_every_proxy_is_finite_on_macro_networks(arch):
    from attend_search.evaluators.proxies import PROXIES, zero_cost_all

    scores = zero_cost_all(macro_spec(arch), batch_size=16, signals=True)
    assert set(PROXIES) <= set(scores)
    assert all(torch.isfinite(torch.tensor(v)) for v in scores.values()), scores


def test_the_space_samples_macro_specs_that_round_trip_and_replay():
    space = load_space("nas-bench-macro")
    assert space.size == 3**8
    layers = [p for p in space.parameters() if ".layer" in p.name]
    assert [p.name for p in layers] == [
        "s0.layer0",
        "s0.layer1",
        "s1.layer0",
        "s1.layer1",
        "s1.layer2",
        "s2.layer0",
        "s2.layer1",
        "s2.layer2",
    ]
    specs = [space.sample(seed) for seed in range(20)]
    assert len({s.digest for s in specs}) > 15
    for spec in specs:
        again = Spec.from_json(spec.to_json())
        assert again == spec.canonical() and again.digest == spec.digest
        params = space.params_for(again)
        assert params is not None and list(params) == [p.name for p in layers]
        arch = "a" + "".join(str(LAYERS.index(params[p.name])) for p in layers)
        assert macro_spec(arch).digest == spec.digest
        assert analytic_cost(spec)["params"] == analytic_cost(macro_spec(arch))["params"]


def test_a_macro_stage_must_stride():
    from attend_search.errors import SpaceError
    from attend_search.search_space.space import read_space

    data = copy.deepcopy(load_space("nas-bench-macro").raw)
    data["stages"]["slots"][1]["stride"] = [1, 2]
    with pytest.raises(SpaceError, match=r"stages\.slots\[1\]\.stride: a macro stage opens"):
        read_space(data)


def test_layer_table_names_the_projection():
    from attend_search.search_space.summary import layer_table

    rows = {row.name: row for row in layer_table(macro_spec("a00000000"))}
    assert rows["stages[1].blocks[0]"].kind == "projection"
    assert rows["stages[1].blocks[0]"].output_shape == (1, 128, 8, 8)
    assert rows["stages[1].blocks[0]"].params == 64 * 128 + 2 * 128
