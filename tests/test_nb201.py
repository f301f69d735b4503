"""The NAS-Bench-201 space: the benchmark's networks, its notation and its isomorphism classes."""

import itertools
import random

import pytest
import torch
from helpers import assert_synflow_fast_path_is_the_reference, assert_walk_is_the_trace

from attend_search import Spec, SpecError, build_model, input_shape, load_space, nb201_spec
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.search_space.nb201_cell import OPS, arch_string, cell_form, parse_arch

ALL_CONV3 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
# node 2 sums two skips of the input (one value read twice); every op between the two
MIXED = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|"
POOLS = "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|"


def n_params(spec: Spec) -> int:
    return sum(p.numel() for p in build_model(spec).parameters())


def test_cell_networks_have_the_benchmarks_published_parameter_counts():
    assert n_params(nb201_spec(ALL_CONV3)) == 1_531_546
    assert n_params(nb201_spec(ALL_NONE)) == 73_306


def test_arch_strings_parse_and_print_back():
    edges = parse_arch(MIXED)
    assert edges == (
        "skip_connect",
        "skip_connect",
        "skip_connect",
        "none",
        "nor_conv_1x1",
        "nor_conv_3x3",
    )
    assert arch_string(edges) == MIXED
    assert nb201_spec(MIXED).name == MIXED


@pytest.mark.parametrize(
    "arch",
    [
        "|nor_conv_3x3~0|+|none~0|",
        MIXED.replace("none", "conv_5x5"),
        ("none",) * 5,
        ("none",) * 5 + ("sep_conv_3x3",),
    ],
)
def test_bad_arch_strings_are_refused(arch):
    with pytest.raises(SpecError):
        nb201_spec(arch)


def test_bad_cells_in_spec_files_are_refused_with_the_field_path():
    data = nb201_spec(MIXED).to_dict()
    data["stages"][1]["blocks"][2]["edges"][4] = "sep_conv_3x3"
    with pytest.raises(
        SpecError,
        match=r"stages\[1\]\.blocks\[2\]\.edges\[4\]: sep_conv_3x3 is "
        r"not one of none",
    ):
        Spec.from_dict(data)
    data["stages"][1]["blocks"][2]["edges"] = ["none"] * 5
    with pytest.raises(SpecError, match=r"stages\[1\]\.blocks\[2\]\.edges: a cell has 6 edges"):
        Spec.from_dict(data)
    data = nb201_spec(MIXED).to_dict()
    data["stages"][0]["blocks"][0]["out"] = 24
    with pytest.raises(SpecError, match=r"stages\[0\]\.blocks\[0\]\.out: a cell keeps"):
        Spec.from_dict(data)


def test_the_space_samples_cells_that_round_trip_and_replay():
    space = load_space("nas-bench-201")
    assert space.size == 5**6
    specs = [space.sample(seed) for seed in range(20)]
    assert len({s.digest for s in specs}) > 15
    for spec in specs:
        again = Spec.from_json(spec.to_json())
        assert again == spec.canonical() and again.digest == spec.digest
        edges = spec.stages[0].blocks[0].edges
        assert spec.digest == nb201_spec(arch_string(edges)).digest
        assert space.params_for(spec) is not None
        out = build_model(spec)(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10)


def test_isomorphic_cells_share_a_digest_and_others_do_not():
    def digest(arch: str) -> str:
        return nb201_spec(arch).digest

    # a convolution into node 1, which reaches the output only through none edges
    dead = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert digest(dead) == digest(dead.replace("nor_conv_3x3~0", "avg_pool_3x3~0"))
    assert n_params(nb201_spec(dead)) != n_params(
        nb201_spec(dead.replace("nor_conv_3x3~0", "avg_pool_3x3~0"))
    )
    # the same sum in another order: node 3 = conv(0) + skip(avg(0)) = avg(0) + skip(conv(0))
    a = "|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"
    b = "|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|skip_connect~1|none~2|"
    assert digest(a) == digest(b)
    # skip_connect passes node 1's form: skip(0)->1->skip->3 equals 0->skip->3
    c = "|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|"
    d = "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"
    assert digest(c) == digest(d)
    # not isomorphic: another op on a live edge, or the op on another path
    assert digest(d) != digest(d.replace("nor_conv_3x3", "nor_conv_1x1"))
    assert digest(a) != digest(a.replace("skip_connect~1", "nor_conv_1x1~1"))


def test_the_15625_cells_form_the_benchmarks_6466_classes():
    forms = {cell_form(edges) for edges in itertools.product(OPS, repeat=6)}
    assert len(forms) == 6466


@pytest.mark.parametrize("arch", [ALL_CONV3, ALL_NONE, MIXED, POOLS])
def test_walked_cost_and_kernels_equal_the_traced_cell_network(arch):
    assert_walk_is_the_trace(nb201_spec(arch))


def test_walked_kernels_equal_traced_on_sampled_cells_at_an_odd_size():
    space = load_space("nas-bench-201")
    rng = random.Random(0)
    for seed in rng.sample(range(10_000), 4):
        spec = space.sample(seed).renamed("")
        odd = Spec.from_dict({**spec.to_dict(), "input_size": 45})
        for s in (spec, odd):
            assert extract_kernels(s) == extract_kernels(build_model(s), input_shape(s))


@pytest.mark.parametrize("arch", [ALL_CONV3, MIXED, POOLS])
def test_synflow_takes_its_fast_path_on_cells_to_the_float64_value(arch):
    assert_synflow_fast_path_is_the_reference(nb201_spec(arch))


@pytest.mark.parametrize("arch", [ALL_CONV3, MIXED, POOLS])
def test_every_proxy_is_finite_on_cell_networks(arch):
    from attend_search.evaluators.proxies import PROXIES, zero_cost_all

    scores = zero_cost_all(nb201_spec(arch), batch_size=8)
    assert set(scores) == set(PROXIES)
    assert all(torch.isfinite(torch.tensor(v)) for v in scores.values()), scores


def test_layer_table_of_a_cell_network():
    from attend_search.search_space.summary import layer_table

    rows = {row.name: row for row in layer_table(nb201_spec(ALL_CONV3))}
    assert rows["stages[1].blocks[0]"].kind == "resnet_basic"
    assert rows["stages[1].blocks[0]"].output_shape == (1, 32, 16, 16)
    assert rows["stages[2].blocks[5]"].kind == "cell"
    assert rows["head.conv"].kind == "bn+act" and rows["head.conv"].params == 128
    assert sum(row.params for row in rows.values()) == 1_531_546
