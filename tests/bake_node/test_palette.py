import numpy as np
import pytest
import torch

from bake_node.palette import (M1, M1_INV, M1_INV_PUBLISHED, M2, M2_INV, M2_INV_PUBLISHED, MACBETH_OKLABP,
                               oklabp_to_srgb, srgb_to_oklabp)


def test_inverse_matrices_are_inverses():
    # The reference had +0.0041960863 in M1^-1's last row; the true inverse has a minus sign.
    assert np.allclose(np.array(M1_INV) @ np.array(M1), np.eye(3), atol=1e-12)
    assert np.allclose(np.array(M2_INV) @ np.array(M2), np.eye(3), atol=1e-12)
    assert np.allclose(M1_INV, M1_INV_PUBLISHED, atol=2e-7)
    assert np.allclose(M2_INV, M2_INV_PUBLISHED, atol=2e-7)
    assert M1_INV[2][0] < 0 and M1_INV_PUBLISHED[2][0] < 0


def cube_slabs(dtype):
    codes = torch.arange(256, dtype=dtype) / 255.0
    for r in range(0, 256, 32):  # 8 slabs of 32 x 256 x 256 colours each
        red = codes[r:r + 32].view(-1, 1, 1).expand(-1, 256, 256)
        green = codes.view(1, -1, 1).expand(red.shape[0], 256, 256)
        blue = codes.view(1, 1, -1).expand(red.shape[0], 256, 256)
        rgb = torch.stack([red, green, blue], dim=0).unsqueeze(0)  # 1 x 3 x 32 x 256 x 256
        yield rgb, oklabp_to_srgb(srgb_to_oklabp(rgb))


@pytest.mark.parametrize("dtype,codes,tolerance", [
    (torch.float64, 65535, 1e-10),  # the render path: every colour lands back on its own 16-bit code
    # float32: M1^-1 cancels large terms for dark channels next to bright ones
    (torch.float32, 255, 3e-5),
])
def test_round_trip_whole_8bit_cube(dtype, codes, tolerance):
    worst = 0.0
    for rgb, back in cube_slabs(dtype):
        worst = max(worst, (back - rgb).abs().max().item())
        assert torch.equal(torch.round(back * codes), torch.round(rgb * codes))
    assert worst < tolerance, worst


def test_known_values_and_range():
    white = torch.ones(1, 3, 1, 1)
    black = torch.zeros(1, 3, 1, 1)
    assert torch.allclose(srgb_to_oklabp(white).flatten(), torch.tensor([1.0, 0.0, 0.0]), atol=2e-4)
    assert torch.allclose(srgb_to_oklabp(black).flatten(), torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    # out-of-domain input is clamped first (the model's domain is [0, 1])
    assert torch.equal(srgb_to_oklabp(torch.full((1, 3, 1, 1), 3.0)), srgb_to_oklabp(white))


def test_macbeth_patches_decode_to_plausible_srgb():
    lab = torch.tensor(MACBETH_OKLABP).T.reshape(1, 3, 24, 1)
    rgb = oklabp_to_srgb(lab)
    assert rgb.shape == (1, 3, 24, 1)
    # patch 19 is the white patch, 24 the black: neutral and ordered
    assert rgb[0, :, 18, 0].min() > 0.9 and rgb[0, :, 23, 0].max() < 0.25
    assert (rgb[0, :, 18, 0].max() - rgb[0, :, 18, 0].min()) < 0.02
