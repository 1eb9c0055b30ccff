"""Darkroom degradations (spec/bakenet.md section 5): monotone curve, identity at strength 0,
seeded reproducibility, and batching that changes nothing per sample."""
import torch

from bake_node.palette import srgb_to_oklabp
from bake_seq.train import darkroom


def targets(n=4, size=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return srgb_to_oklabp(torch.rand(n, 3, size, size, generator=gen))


def test_tone_curve_is_monotone_and_inside_the_range():
    for strength in (0.12, 1.0):
        p = darkroom.draw(64, torch.Generator().manual_seed(1), strength)
        curve = p["curve"]
        assert curve.shape == (64, darkroom.CURVE_POINTS)
        assert (curve.diff(dim=1) > 0).all()
        # ends at [-1 + b0, 1 - w0] with b0, w0 in [0, d/2] and d <= s
        assert (curve[:, 0] >= -1).all() and (curve[:, 0] <= -1 + strength / 2 + 1e-6).all()
        assert (curve[:, -1] <= 1 + 1e-6).all() and (curve[:, -1] >= 1 - strength / 2 - 1e-6).all()


def test_parameter_ranges_follow_the_spec():
    s = darkroom.STRENGTH
    p = darkroom.draw(256, torch.Generator().manual_seed(2))
    assert p["shift"].abs().max() <= s / 2
    assert p["warp"].abs().max() <= s / 2 + 0.02  # bicubic overshoot between control points
    assert (p["wheels"].abs().amax(-1) <= s / 2 + 1e-6).all()
    assert sorted(p["order"][0].tolist()) == [0, 1, 2]
    assert len({tuple(o) for o in p["order"].tolist()}) == 6  # every order occurs


def test_zero_strength_is_the_identity():
    t = targets()
    out = darkroom.degrade(t, torch.Generator().manual_seed(3), strength=0.0)
    # only the spec's sqrt(a^2 + b^2 + 1e-8) moves near-neutral colours, by at most 1e-4
    assert torch.allclose(out, t, atol=1.01e-4, rtol=0)


def test_seeded_reproducibility():
    t = targets()
    one = darkroom.degrade(t, torch.Generator().manual_seed(42))
    two = darkroom.degrade(t, torch.Generator().manual_seed(42))
    other = darkroom.degrade(t, torch.Generator().manual_seed(43))
    assert torch.equal(one, two)
    assert not torch.allclose(one, other)
    assert (one - t).abs().max() > 0.01  # it does degrade


def test_batch_equals_each_sample_alone():
    t = targets(n=6)
    p = darkroom.draw(6, torch.Generator().manual_seed(5))
    batched = darkroom.apply(t, p)
    for i in range(6):
        alone = darkroom.apply(t[i:i + 1], darkroom.subset(p, torch.tensor([i])))
        assert torch.allclose(batched[i:i + 1], alone, atol=1e-6)


def test_operations_run_in_the_drawn_order():
    t = targets(n=1)
    p = darkroom.draw(1, torch.Generator().manual_seed(6))
    p["order"] = torch.tensor([[2, 1, 0]])
    expected = darkroom.tone(darkroom.warp(darkroom.wheels(t, t, p), t, p), t, p)
    assert torch.allclose(darkroom.apply(t, p), expected, atol=1e-7)


def test_no_clamping():
    t = targets(n=8)
    out = darkroom.degrade(t, torch.Generator().manual_seed(7), strength=2.0)
    assert out[:, 0].max() > 1.0 or out[:, 0].min() < -1.0
