"""Grain analysis recovers known grain from synthetic plates, ignoring edges, texture and ramps.

Stated tolerance: every measured point's std within 5 % of the truth (typically < 1.5 %), grain
size within 5 %, channel correlation within 0.05.
"""
import numpy as np
import pytest

from bake_node.grain.analyze import Blocks, estimate_profile, measure_blocks, size_for_lag1
from bake_node.grain.profile import CHANNELS, preset_profile
from bake_node.grain.synth import GrainSettings, add_grain, fast_lag1
from tests.grain.conftest import scene

LEVEL_TOLERANCE = 0.05


def truth(c, intensity):
    """Known per-channel grain std: grows with intensity, different per channel."""
    slope, floor = [(0.03, 0.0008), (0.02, 0.0005), (0.05, 0.0015)][c]
    return floor + slope * intensity


def analyse(frames):
    return estimate_profile(Blocks.join([measure_blocks(f) for f in frames]))


def binomial_blur(noise):
    """[1 2 1]/4 in x and y (circular): lag-1 correlation exactly 2/3, variance x 9/64."""
    for axis in (0, 1):
        noise = (np.roll(noise, 1, axis) + 2 * noise + np.roll(noise, -1, axis)) / 4
    return noise


@pytest.mark.parametrize("correlated", [False, True], ids=["white", "binomial"])
def test_recovers_known_per_channel_grain(correlated):
    rng = np.random.default_rng(5)
    frames = []
    for _ in range(3):
        clean = scene()
        noise = rng.standard_normal(clean.shape)
        if correlated:
            noise = binomial_blur(noise) / np.sqrt(9 / 64)
        frames.append(clean + np.stack([truth(c, clean[..., c]) for c in range(3)], axis=2) * noise)
    profile = analyse(frames)
    for c, name in enumerate(CHANNELS):
        points = np.array(profile.channels[name].sigma)
        assert len(points) >= 6  # the patch levels, the ramp, the texture band's mean
        error = points[:, 1] / truth(c, points[:, 0]) - 1
        assert np.abs(error).max() < LEVEL_TOLERANCE, (name, points, error)
        lag1 = fast_lag1(profile.channels[name].size)
        assert lag1 == pytest.approx(2 / 3 if correlated else 0.0, abs=0.03)
    assert all(abs(v) < 0.05 for v in profile.correlation.values())


@pytest.mark.parametrize("preset", ["fine", "coarse"])
def test_analysis_of_applied_profile_returns_the_profile(preset):
    reference = preset_profile(preset)
    frames = [add_grain(scene(), reference, n, GrainSettings(seed=3)) for n in range(3)]
    measured = analyse(frames)
    for name in CHANNELS:
        want, got = reference.channels[name], measured.channels[name]
        points = np.array(got.sigma)
        error = points[:, 1] / want.sigma_at(points[:, 0]) - 1
        assert np.abs(error).max() < LEVEL_TOLERANCE, (name, error)
        assert got.size == pytest.approx(want.size, rel=0.05)
    for pair, value in measured.correlation.items():
        assert value == pytest.approx(reference.correlation[pair], abs=0.05)


def test_texture_does_not_raise_the_level():
    rng = np.random.default_rng(1)
    clean = scene()
    textured = clean.copy()
    y, x = np.mgrid[0:clean.shape[0], 0:clean.shape[1]]
    textured[:, :200] += (0.05 * np.sin(x * 0.9 + y * 0.4) * (1 + np.sin(y * 0.05)))[:, :200, None]
    sigma = 0.004
    noise = [rng.standard_normal(clean.shape) * sigma for _ in range(2)]
    plain = analyse([clean + n for n in noise])
    busy = analyse([textured + n for n in noise])
    for name in CHANNELS:
        for profile in (plain, busy):
            levels = np.array(profile.channels[name].sigma)[:, 1]
            assert np.abs(levels / sigma - 1).max() < LEVEL_TOLERANCE


def test_size_for_lag1_inverts_the_synthesis_filter():
    for size in (0.0, 0.4, 0.8, 1.6, 3.0):
        assert size_for_lag1(fast_lag1(size)) == pytest.approx(size, abs=0.01)


def test_no_flat_area_is_an_error():
    with pytest.raises(ValueError, match="no flat areas"):
        analyse([np.full((20, 20, 3), 0.2, np.float32)])


def test_a_grain_free_plate_is_said_to_be_one_and_grainy_plates_are_not():
    """Issue 18 item 9: a clean (16-bit quantised) plate used to give a confident-looking profile."""
    from bake_node.grain.analyze import profile_warnings

    clean = [np.round(scene() * 65535) / 65535 for _ in range(3)]
    notes = profile_warnings(analyse(clean))
    assert any("looks grain-free" in n for n in notes), notes
    grainy = [add_grain(scene(), preset_profile("fine"), n, GrainSettings(seed=3)) for n in range(3)]
    profile = analyse(grainy)
    assert not any("grain-free" in n for n in profile_warnings(profile))
    marks = profile.source["confidence"]
    assert set(marks) == set(CHANNELS) and all(len(marks[c]) == len(profile.channels[c].sigma) for c in CHANNELS)
    assert not any("outlier" in marks[c] for c in CHANNELS)  # real grain: every point agrees with the rest


def test_a_point_far_from_its_neighbours_is_an_outlier():
    from bake_node.grain.analyze import ChannelMeasure, point_confidence
    from bake_node.grain.profile import ChannelGrain

    sigma = [(0.05, 0.002), (0.1, 0.003), (0.2, 0.02), (0.4, 0.005), (0.8, 0.007)]  # the third 5x its neighbours
    measure = ChannelMeasure(ChannelGrain(sigma, 1.0), np.ones(4, bool), [300, 300, 7, 300, 300])
    assert point_confidence(measure) == ["ok", "ok", "outlier", "ok", "ok"]
