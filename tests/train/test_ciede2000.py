"""CIEDE2000 against Sharma, Wu & Dalal's published test pairs, and scikit-image."""
import numpy as np
import pytest
import torch

from bake_seq.train.ciede2000 import ciede2000, delta_e_srgb, srgb_to_lab

# (Lab 1, Lab 2, published CIEDE2000): pairs 1, 2, 3, 7, 17, 25, 26, 30, 33 of Sharma et al. (2005)
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_sharma_pairs():
    lab1 = torch.tensor([p[0] for p in SHARMA], dtype=torch.float64)
    lab2 = torch.tensor([p[1] for p in SHARMA], dtype=torch.float64)
    expected = torch.tensor([p[2] for p in SHARMA], dtype=torch.float64)
    assert torch.allclose(ciede2000(lab1, lab2), expected, atol=5e-5)
    assert torch.allclose(ciede2000(lab2, lab1), expected, atol=5e-5)  # symmetric


def test_matches_scikit_image():
    color = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(0)
    lab1 = rng.uniform([0, -100, -100], [100, 100, 100], (2000, 3))
    lab2 = rng.uniform([0, -100, -100], [100, 100, 100], (2000, 3))
    ours = ciede2000(torch.from_numpy(lab1), torch.from_numpy(lab2)).numpy()
    assert np.allclose(ours, color.deltaE_ciede2000(lab1, lab2), atol=1e-9)


def test_srgb_white_and_identity():
    assert torch.allclose(srgb_to_lab(torch.ones(3)), torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=1e-3)
    rgb = torch.rand(8, 8, 3)
    assert delta_e_srgb(rgb, rgb).abs().max() == 0
