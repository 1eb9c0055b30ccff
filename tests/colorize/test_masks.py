"""Synthetic damage: every shape draws, coverage stays in range, a seed gives the same damage."""
import numpy as np
import pytest

from bake_seq.train.masks import COVERAGE, SHAPES, _draw, apply_damage, damage_labels, damage_mask


@pytest.mark.parametrize("kind", SHAPES)
def test_each_shape_draws_something(kind):
    for seed in range(5):
        canvas = np.zeros((96, 128), np.uint8)
        _draw(kind, canvas, np.random.default_rng(seed))
        assert 0 < canvas.sum() < canvas.size


def test_film_scratches_run_vertically_and_dust_is_speckles():
    canvas = np.zeros((128, 128), np.uint8)
    _draw("film_scratches", canvas, np.random.default_rng(3))
    ys, xs = np.nonzero(canvas)
    assert np.ptp(ys) >= 0.4 * 128 and np.ptp(xs) <= 0.05 * 128
    dust = np.zeros((128, 128), np.uint8)
    _draw("dust", dust, np.random.default_rng(3))
    assert dust.mean() < 0.05  # many tiny dots, a small share of the frame


def test_coverage_stays_in_range():
    for seed in range(60):
        for shape in ((64, 64), (40, 90), (128, 128)):
            mask = damage_mask(*shape, np.random.default_rng(seed))
            assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
            assert COVERAGE[0] <= mask.mean() <= COVERAGE[1], (seed, shape, mask.mean())
    narrow = damage_mask(64, 64, np.random.default_rng(0), coverage=(0.1, 0.12))
    assert 0.1 <= narrow.mean() <= 0.12


def test_masks_vary_and_each_seed_repeats():
    one = damage_labels(64, 64, np.random.default_rng((42, 7, 1)))
    again = damage_labels(64, 64, np.random.default_rng((42, 7, 1)))
    other = damage_labels(64, 64, np.random.default_rng((42, 7, 2)))
    assert np.array_equal(one, again) and not np.array_equal(one, other)
    kinds = {tuple(sorted(np.random.default_rng(s).choice(SHAPES, 2, replace=False))) for s in range(20)}
    assert len(kinds) > 3


def test_damage_changes_only_masked_pixels_with_plausible_values():
    rng = np.random.default_rng(5)
    lightness = np.full((64, 64), 0.5, np.float32)
    labels = damage_labels(64, 64, rng)
    damaged = apply_damage(lightness, labels, np.random.default_rng(9))
    assert np.array_equal(damaged[labels == 0], lightness[labels == 0])
    assert damaged.min() >= 0.0 and damaged.max() <= 1.0
    assert np.array_equal(damaged, apply_damage(lightness, labels, np.random.default_rng(9)))
