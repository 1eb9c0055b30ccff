"""Grain synthesis: levels, determinism per frame, mean preservation, and the physical model's
statistics against the Boolean model's closed forms."""
import math

import numpy as np
import pytest

from bake_node.grain.linear import to_linear, to_working
from bake_node.grain.profile import preset_profile
from bake_node.grain.synth import (GrainSettings, add_grain, boolean_grain, fast_lag1, frame_rng,
                                   lag1_correlation)
from bake_node.node import get_operator
from tests.grain.conftest import flat_patches

MODES = ["fast", "physical"]


def grain_of(mode, frame=1, seed=0, image=None, **knobs):
    image = flat_patches()[0] if image is None else image
    return add_grain(image, preset_profile("medium"), frame, GrainSettings(mode=mode, seed=seed, **knobs)) - image


@pytest.mark.parametrize("mode", MODES)
def test_same_frame_same_grain_other_frame_other_grain(mode):
    first = grain_of(mode, frame=1001)
    assert np.array_equal(first, grain_of(mode, frame=1001))
    for other in (grain_of(mode, frame=1002), grain_of(mode, frame=1001, seed=1)):
        assert abs(np.corrcoef(first.ravel(), other.ravel())[0, 1]) < 0.05


def test_negative_and_huge_frame_numbers_work():
    for frame in (-5, 0, 2**40):
        assert frame_rng(0, frame).standard_normal() == frame_rng(0, frame).standard_normal()


@pytest.mark.parametrize("mode", MODES)
def test_grain_keeps_the_mean_of_flat_patches(mode):
    image, patches = flat_patches()
    out = add_grain(image, preset_profile("coarse"), 7, GrainSettings(mode=mode))
    for cols in patches:
        before, after = image[:, cols].mean(axis=(0, 1)), out[:, cols].mean(axis=(0, 1))
        spread = (out - image)[:, cols].std(axis=(0, 1))
        # a few standard errors of a mean of ~1000 independent grain clumps
        assert np.all(np.abs(after - before) < 4 * spread / math.sqrt(128 * 128 / 12)), (before, after)


def test_fast_grain_matches_the_profile_level_size_and_correlation():
    profile = preset_profile("medium")
    image, patches = flat_patches()
    grain = grain_of("fast")
    for cols, level in zip(patches, (0.02, 0.18, 0.5, 0.9)):
        for c, channel in enumerate(profile.ordered()):
            assert grain[:, cols, c].std() == pytest.approx(channel.sigma_at(level), rel=0.03)
    normalised = grain / grain.std(axis=(0, 1))
    assert lag1_correlation(normalised[..., 1]) == pytest.approx(fast_lag1(0.7), abs=0.02)
    assert np.corrcoef(normalised.reshape(-1, 3).T)[0, 1] == pytest.approx(0.2, abs=0.03)


def test_knobs_amount_per_channel_size_and_response():
    image, patches = flat_patches()
    base = grain_of("fast")
    muted = grain_of("fast", amount=(0.0, 1.0, 2.0))
    assert not muted[..., 0].any()
    assert muted[..., 2].std() == pytest.approx(2 * base[..., 2].std(), rel=1e-4)
    assert lag1_correlation(grain_of("fast", size=2.0)[..., 1]) > lag1_correlation(base[..., 1]) + 0.1
    flat = grain_of("fast", response=0.0)
    dark, bright = flat[:, patches[0], 1].std(), flat[:, patches[3], 1].std()
    assert dark == pytest.approx(bright, rel=0.05)


@pytest.mark.parametrize("radius", [0.0, 0.3])
def test_physical_grain_is_matched_to_the_profile_at_mid_grey(radius):
    profile = preset_profile("medium")
    image = np.full((256, 256, 3), 0.18, np.float32)
    grain = grain_of("physical", image=image, radius=radius)
    for c, channel in enumerate(profile.ordered()):
        assert grain[..., c].std() == pytest.approx(channel.sigma_at(0.18), rel=0.06)
    if not radius:  # the radius is chosen so the grain correlates like the profile's size
        assert lag1_correlation(grain[..., 1]) == pytest.approx(fast_lag1(0.7), abs=0.05)


def lens_area(r, d):
    """Area shared by two discs of radius r whose centres are d apart."""
    return 0.0 if d >= 2 * r else 2 * r * r * math.acos(d / (2 * r)) - d / 2 * math.sqrt(4 * r * r - d * d)


@pytest.mark.parametrize("u", [0.1, 0.5, 0.8])
def test_boolean_model_point_statistics(u):
    """Unfiltered (one sample at the pixel centre), coverage is Bernoulli(u), and two points 1 px
    apart are both uncovered with probability exp(-lambda |A u B|): Newson et al.'s eq. for the
    Boolean model's covariance, (1-u)^2 (exp(lambda lens(d)) - 1)."""
    radius = 0.8
    lam = -math.log(1 - u) / (math.pi * radius**2)
    cover = boolean_grain(np.full((384, 384), u, np.float32), radius, np.zeros((1, 2)), frame_rng(0, 0))
    assert cover.mean() == pytest.approx(u, abs=0.01)
    assert cover.var() == pytest.approx(u * (1 - u), rel=0.03)
    centred = cover - cover.mean()
    covariance = ((centred[:, 1:] * centred[:, :-1]).mean() + (centred[1:] * centred[:-1]).mean()) / 2
    assert covariance == pytest.approx((1 - u) ** 2 * (math.exp(lam * lens_area(radius, 1.0)) - 1), abs=0.01)


def test_bigger_grains_correlate_further():
    u = np.full((192, 192), 0.3, np.float32)
    offsets = np.zeros((1, 2))
    lags = [lag1_correlation(boolean_grain(u, r, offsets, frame_rng(0, 0))) for r in (0.3, 0.6, 1.2, 2.4)]
    assert lags == sorted(lags) and lags[-1] - lags[0] > 0.5


@pytest.mark.parametrize("mode", MODES)
def test_operator_round_trips_linear_light_and_ignores_tiles(mode):
    image = to_working(flat_patches(size=64)[0])
    results = []
    for tile in (0, 32):
        op = get_operator("grain")
        op.prepare({"grain_mode": mode, "grain_preset": "fine", "tile": tile})
        results.append(op.process(image, 12))
    assert np.array_equal(*results)
    assert np.abs(to_linear(results[0]) - to_linear(image)).mean() > 1e-4
    op = get_operator("grain")
    op.prepare({"grain_amount": 0.0})
    assert np.abs(op.process(image, 12) - image).max() < 1e-5  # no grain: the colour round trip only
