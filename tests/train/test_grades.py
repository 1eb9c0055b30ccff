"""The degradation families beside the darkroom: each checked against an independent reference."""
import numpy as np
import PyOpenColorIO as OCIO
import pytest
import torch

from bake_node.palette import srgb_eotf
from bake_seq.train import grades
from bake_seq.train.data import seeded


def colourful(n=3, h=12, w=16, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_cdl_is_the_maths_ocio_applies():
    """Same draws, applied by OCIO's own CDLTransform (ASC style, clamping) to the same values."""
    x = colourful(2)
    ours = grades.cdl(x, seeded(3, 0, 0))
    gen = seeded(3, 0, 0)  # redraw the parameters exactly as grades.cdl does
    slope = torch.exp(grades._u(gen, 2, np.log(0.75), np.log(1.33), 3))
    offset = grades._u(gen, 2, -0.06, 0.06, 3)
    power = torch.exp(grades._u(gen, 2, np.log(0.75), np.log(1.33), 3))
    sat = grades._u(gen, 2, 0.6, 1.4)
    config = OCIO.Config.CreateRaw()
    for i in range(2):
        cdl = OCIO.CDLTransform(slope=slope[i].tolist(), offset=offset[i].tolist(), power=power[i].tolist(),
                                sat=float(sat[i]))
        cdl.setStyle(OCIO.CDL_ASC)
        pixels = np.ascontiguousarray(x[i].permute(1, 2, 0).numpy().astype(np.float32))
        config.getProcessor(cdl).getDefaultCPUProcessor().applyRGB(pixels)
        assert np.abs(pixels - ours[i].permute(1, 2, 0).numpy()).max() < 2e-5


def test_white_balance_turns_white_into_the_illuminant_and_keeps_its_luminance():
    white = torch.ones(4, 3, 2, 2, dtype=torch.float64)
    out = grades.white_balance(white * 0.8, seeded(5, 0, 0))
    linear = srgb_eotf(out)[:, :, 0, 0]
    luma = linear @ torch.tensor(grades.REC709_LUMA, dtype=torch.float64)
    assert torch.allclose(luma, srgb_eotf(torch.tensor(0.8, dtype=torch.float64)).expand(4), atol=1e-4)
    assert (linear.max(1).values - linear.min(1).values > 0.01).all()  # no longer neutral
    # Bradford with the same white on both sides is the identity; warm light makes white orange
    d65 = torch.tensor([grades.D65_XY], dtype=torch.float64)
    assert torch.allclose(grades.adaptation_matrix(d65, d65)[0], torch.eye(3, dtype=torch.float64), atol=1e-6)
    warm = grades.adaptation_matrix(d65, grades.cct_to_xy(torch.tensor([3000.0], dtype=torch.float64)))[0]
    rgb = warm @ torch.ones(3, dtype=torch.float64)
    assert rgb[0] > rgb[1] > rgb[2]


def test_cct_to_xy_matches_the_published_points():
    xy = grades.cct_to_xy(torch.tensor([6504.0, 5003.0, 2856.0], dtype=torch.float64))
    assert torch.allclose(xy[0], torch.tensor([0.3127, 0.3291], dtype=torch.float64), atol=2e-3)  # D65
    assert torch.allclose(xy[1], torch.tensor([0.3457, 0.3585], dtype=torch.float64), atol=2e-3)  # D50
    assert torch.allclose(xy[2], torch.tensor([0.4476, 0.4074], dtype=torch.float64), atol=2e-3)  # illuminant A


@pytest.mark.parametrize("family", grades.FAMILIES)
def test_every_family_is_seeded_global_and_in_range(family):
    x = colourful()
    a = grades.degrade(family, x, seeded(1, 2, 3))
    b = grades.degrade(family, x, seeded(1, 2, 3))
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    if family == "clean":
        assert torch.equal(a, x)
        return
    assert (a - x).abs().mean() > 1e-3  # it does something
    # global: the same colour gets the same result wherever it is in the frame
    repeated = x[:1, :, :1, :1].expand(1, 3, 5, 7).contiguous()
    out = grades.degrade(family, repeated, seeded(9, 9, 9))
    assert (out - out[:, :, :1, :1]).abs().max() < 1e-6


def test_fade_lifts_blacks_and_dims_whites():
    x = torch.zeros(8, 3, 1, 2, dtype=torch.float64)
    x[..., 1] = 1.0
    out = grades.fade(x, seeded(0, 0, 0))
    assert (out[..., 0] > 0.0).all() and (out[..., 1] < 1.0).any()
