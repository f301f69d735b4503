"""Reference networks of the AttendNeXt paper's comparison: timm's parameter counts, MobileOne's
reparameterization, and that every evaluator prices them (predicted and measured latency)."""

import math
import warnings

import pytest
import torch
from torch import nn

from attend_search import get_reference_model, list_reference_models
from attend_search.errors import AttendSearchError
from attend_search.evaluators import builtin_devices, measure_latency, predict_latency
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.search_space.reference_models import mobileone_s1

# timm's published parameter counts (timm.create_model(name).num_params, 1000 classes)
TIMM_PARAMS = {
    "fbnetc_100": 5_572_200,
    "mobileone_s1": 4_825_192,
    "mobileone_s1_reparam": 4_764_840,
    "mobilevit_xs": 2_317_848,
}


def test_the_registry_holds_the_papers_comparisons():
    assert list_reference_models() == sorted(TIMM_PARAMS)
    with pytest.raises(AttendSearchError, match="unknown reference model 'resnet50'"):
        get_reference_model("resnet50")


@pytest.mark.parametrize("name", sorted(TIMM_PARAMS))
def test_parameter_counts_match_timm(name):
    model, shape = get_reference_model(name)
    assert sum(p.numel() for p in model.parameters()) == TIMM_PARAMS[name]
    side = 256 if name == "mobilevit_xs" else 224  # where timm evaluates them
    assert shape == (1, 3, side, side)
    model, _ = get_reference_model(name, num_classes=10)
    assert model(torch.zeros(shape)).shape == (1, 10)


def test_mobileone_reparameterized_computes_what_it_was_trained_to():
    torch.manual_seed(0)
    model = mobileone_s1()
    for m in model.modules():  # BN statistics away from the identity, so folding matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        trained = model(x)
        fused = model.reparameterize()(x)
    assert sum(p.numel() for p in model.parameters()) == TIMM_PARAMS["mobileone_s1_reparam"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(fused, trained, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(TIMM_PARAMS))
def test_predicted_latency_is_finite_on_every_device_with_every_op_known(name):
    model, shape = get_reference_model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an UnknownOpsWarning fails the test
        times = {device: predict_latency(model, device, shape) for device in builtin_devices()}
    assert all(math.isfinite(t) and t > 0 for t in times.values())
    # slower devices are slower, on one runtime
    onnx = [times[device] for device in ("cortex-a53", "cortex-a72", "cortex-a76")]
    assert onnx == sorted(onnx, reverse=True)


def test_mobilevit_attention_is_priced_as_transformer_kernels():
    model, shape = get_reference_model("mobilevit_xs")
    classes = [k.op_class for k in extract_kernels(model, shape)]
    layers = 2 + 4 + 3
    assert classes.count("matmul") == 2 * layers and classes.count("softmax") == layers
    assert classes.count("layer_norm") == 2 * layers + 3  # two per layer, one per block


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TIMM_PARAMS))
def test_measured_latency_on_onnxruntime(name):
    model, shape = get_reference_model(name)
    ms = measure_latency(model, shape, warmup=1, repeats=1)
    assert math.isfinite(ms) and ms > 0
