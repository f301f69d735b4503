"""300 seeds of the built-in space: each validates, builds, runs and round-trips."""

import pytest
import torch

from attend_search import Spec, build_model, input_shape

SEEDS = range(300)


@pytest.mark.parametrize("chunk", range(10))
def test_sampled_specs_build_run_and_round_trip(space, chunk):
    for seed in SEEDS[chunk::10]:
        spec = space.sample(seed)
        again = Spec.from_json(spec.to_json())
        assert again.digest == spec.digest
        assert again == spec.canonical()
        model = build_model(spec).eval()
        with torch.no_grad():
            out = model(torch.randn(input_shape(spec)))
        assert out.shape == (1, spec.num_classes), seed
        assert torch.isfinite(out).all(), seed
        params = sum(p.numel() for p in model.parameters())
        assert params > 0


def test_train_mode_forward_and_backward(space):
    for seed in range(0, 300, 30):
        spec = space.sample(seed)
        model = build_model(spec).train()
        out = model(torch.randn(input_shape(spec, batch=2)))
        out.sum().backward()
        assert out.shape == (2, spec.num_classes)
        assert all(p.grad is not None for p in model.parameters())


def test_units_applied_in_turn_compute_forward(space):
    for seed in range(0, 300, 30):
        spec = space.sample(seed)
        model = build_model(spec).eval()
        x = torch.randn(input_shape(spec))
        with torch.no_grad():
            y = x
            for unit in model.units():
                y = unit(y)
            assert torch.equal(y, model(x)), seed


def test_sampling_is_deterministic_and_varied(space):
    digests = [space.sample(seed).digest for seed in range(50)]
    assert digests == [space.sample(seed).digest for seed in range(50)]
    assert len(set(digests)) == 50


def test_samples_use_every_block_type_and_micro_option(space):
    specs = [space.sample(seed) for seed in range(300)]
    blocks = [b.block for s in specs for b in s.blocks()]
    assert {b.type for b in blocks} == {"condenser", "depthwise_separable", "inverted_residual"}
    atts = [b.attention for b in blocks if b.attention]
    assert {a.stages for a in atts} == {1, 2}
    assert {a.condense for a in atts} == {"max", "avg"}
    assert {a.expand for a in atts} == {"nearest", "bilinear"}
    assert {b.downsample for b in blocks if b.stride == 2} == {"conv", "aads"}
    assert {st.merge for s in specs for st in s.stages if st.columns > 1} == {"add", "concat"}
    assert {s.input_size for s in specs} == {160, 192, 224}
