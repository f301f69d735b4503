import pytest
import torch

from attend_search import AttendSearchError, build_model, get_preset, input_shape, list_presets


def n_params(spec):
    return sum(p.numel() for p in build_model(spec).parameters())


def test_mobilenets_match_torchvision_parameter_counts():
    # torchvision.models.mobilenet_v2() / mobilenet_v3_large(), 1000 classes (published counts)
    assert n_params(get_preset("mobilenet_v2")) == 3_504_872
    assert n_params(get_preset("mobilenet_v3_large")) == 5_483_032


def test_attendnext_is_under_4m_and_1_37x_smaller_than_mobilenet_v3_large():
    params = n_params(get_preset("attendnext"))
    assert params < 4_000_000
    assert 5_483_032 / params > 1.37


def test_attendnext_uses_dc_ac_and_aads_everywhere():
    spec = get_preset("attendnext")
    blocks = [layout.block for layout in spec.blocks()]
    assert all(b.type == "condenser" and b.attention.stages == 2 for b in blocks)
    assert all(b.downsample == "aads" for b in blocks if b.stride == 2)


@pytest.mark.parametrize("name", list_presets())
def test_presets_run_at_other_sizes_and_class_counts(name):
    spec = get_preset(name, num_classes=10, input_size=64)
    with torch.no_grad():
        out = build_model(spec).eval()(torch.randn(input_shape(spec)))
    assert out.shape == (1, 10)


def test_unknown_preset_is_refused_with_the_known_names():
    with pytest.raises(AttendSearchError, match="unknown preset 'resnet50'.*mobilenet_v2"):
        get_preset("resnet50")
