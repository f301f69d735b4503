import json

import pytest

from attend_search import Spec, SpecError, get_preset
from attend_search.search_space.spec import SCHEMA


def minimal(**block):
    return {
        "schema": SCHEMA,
        "input_size": 64,
        "num_classes": 10,
        "stem": {"out": 16},
        "stages": [{"blocks": [{"type": "depthwise_separable", "out": 16, **block}]}],
    }


def test_digest_ignores_key_order_defaults_and_name():
    data = minimal()
    reordered = json.loads(json.dumps(data, sort_keys=True))
    explicit = minimal(kernel=3, stride=1, act="relu", residual=True, se=0)
    explicit["name"] = "something"
    digests = {Spec.from_dict(d).digest for d in (data, reordered, explicit)}
    assert len(digests) == 1


def test_settings_that_cannot_change_the_network_do_not_change_the_digest():
    # residual cannot apply to a strided block; downsample means nothing at stride 1
    a = Spec.from_dict(minimal(stride=2, residual=True))
    b = Spec.from_dict(minimal(stride=2, residual=False))
    c = Spec.from_dict(minimal(stride=1, downsample="aads"))
    d = Spec.from_dict(minimal(stride=1))
    assert a.digest == b.digest and c.digest == d.digest


def test_different_networks_have_different_digests():
    base = Spec.from_dict(minimal())
    for change in ({"kernel": 5}, {"out": 24}, {"act": "hswish"}, {"se": 8}, {"residual": False}):
        assert Spec.from_dict(minimal(**change)).digest != base.digest, change


def test_json_round_trip_of_presets_is_exact():
    spec = get_preset("mobilenet_v3_large")
    text = spec.to_json()
    assert json.loads(text)["schema"] == "attend-search/spec/v1"
    assert Spec.from_json(text) == spec.canonical()
    assert Spec.from_json(text).to_json() == text


def bad(mutate):
    data = json.loads(get_preset("attendnext").to_json())
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["stages"][2]["blocks"][0].update(type="resnet"),
            "stages[2].blocks[0].type: resnet is not one of condenser, depthwise_separable, "
            "inverted_residual, cell, resnet_basic, projection",
        ),
        (
            lambda d: d["stages"][2]["blocks"][0].update(kernel=4),
            "stages[2].blocks[0].kernel: 4 is not one of 3, 5, 7",
        ),
        (
            lambda d: d["stages"][1]["blocks"][1]["attention"].update(groups=3),
            "stages[1].blocks[1].attention.groups: groups=3 does not divide the 128 input channels",
        ),
        (lambda d: d["stem"].pop("out"), "stem.out: missing required field"),
        (
            lambda d: d.update(schema="attend-search/spec/v0"),
            "schema: unsupported schema 'attend-search/spec/v0', expected 'attend-search/spec/v1'",
        ),
        (lambda d: d["head"].update(chanels=10), "head.chanels: unknown field"),
        (
            lambda d: d["stages"][0]["blocks"][0].update(mid=64),
            "stages[0].blocks[0].mid: unknown field",
        ),
        (
            lambda d: d["stages"][3]["blocks"][0].update(out=-4),
            "stages[3].blocks[0].out: -4 is below the minimum 1",
        ),
        (lambda d: d.update(stages=[]), "stages: needs at least 1 item(s), got 0"),
        (
            lambda d: d["stages"][0]["blocks"][0].update(residual="yes"),
            "stages[0].blocks[0].residual: expected true or false, got yes",
        ),
    ],
)
def test_bad_specs_are_refused_with_the_field_path(mutate, message):
    with pytest.raises(SpecError) as info:
        Spec.from_dict(bad(mutate), source="net.json")
    assert str(info.value) == f"net.json: {message}"


def test_se_wider_than_expansion_is_refused():
    data = json.loads(get_preset("mobilenet_v2").to_json())
    data["stages"][1]["blocks"][0]["se"] = 1_000
    with pytest.raises(SpecError, match=r"stages\[1\].blocks\[0\].se: 1000 squeeze channels"):
        Spec.from_dict(data)


def test_malformed_json_names_the_position():
    with pytest.raises(SpecError, match=r"net.json: malformed JSON: .*line 1, column"):
        Spec.from_json('{"schema": ', source="net.json")


def test_non_mapping_root_is_refused():
    with pytest.raises(SpecError, match="expected a mapping, got list"):
        Spec.from_json("[1, 2]")


def test_squeeze_excitation_on_a_condenser_is_refused():
    data = json.loads(get_preset("attendnext").to_json())
    data["stages"][0]["blocks"][0]["se"] = 8
    with pytest.raises(SpecError, match=r"stages\[0\].blocks\[0\].se: unknown field"):
        Spec.from_dict(data)
