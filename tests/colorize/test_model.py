"""ColorizeNet: shapes, the receptive radius it claims, exact lightness outside the damage,
checkpoints, and the operator's determinism and tile invariance."""
import numpy as np
import pytest
import torch

from bake_node.colorize_checkpoint import load_colorize
from bake_node.models.colorize import PRESETS, ColorizeConfig, ColorizeNet, count_parameters
from bake_node.errors import CheckpointError
from bake_node.node import get_operator
from tests.colorize.conftest import TINY, grey_frames


def test_shapes_and_presets():
    model = ColorizeNet(TINY).eval()
    for h, w in ((16, 16), (21, 37), (5, 3)):  # any size: padded to a multiple of 2**levels inside
        assert model(torch.rand(2, 3, h, w)).shape == (2, 4, h, w)
    assert 300_000 < count_parameters(ColorizeNet(PRESETS["small"])) < 1_500_000
    assert all(c.halo % c.multiple == 0 and c.halo >= c.receptive_radius for c in PRESETS.values())
    with pytest.raises(ValueError):
        ColorizeConfig(levels=0)


@pytest.mark.parametrize("config", [TINY, ColorizeConfig(width=4, levels=3, convs=2)])
def test_receptive_radius_bounds_the_reach_of_one_pixel(config):
    torch.manual_seed(0)
    model = ColorizeNet(config).eval()
    size = 2 * config.receptive_radius + 40
    x = torch.rand(1, 3, size, size)
    x[:, 2] = 1.0  # mask given: the L composite is linear in the network's output
    y = size // 2
    for offset in (0, 1, config.multiple - 1):  # phases of the pooling grid
        c = y + offset
        bumped = x.clone()
        bumped[0, 0, c, c] += 1.0
        changed = (model(bumped) - model(x))[0, :3].abs().amax(0) > 0
        ys, xs = torch.nonzero(changed, as_tuple=True)
        reach = max((ys - c).abs().max(), (xs - c).abs().max())
        assert 0 < reach <= config.receptive_radius


def test_lightness_is_kept_outside_the_damage():
    model = ColorizeNet(TINY).eval()
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    mask = torch.zeros(1, 1, 24, 24)
    mask[..., 5:9, 5:12] = 1
    x = torch.cat([x[:, :1], mask, torch.ones_like(mask)], dim=1)
    out = model(x)
    assert torch.equal(out[:, 0][mask[:, 0] == 0], x[:, 0][mask[:, 0] == 0])
    assert not torch.equal(out[:, 0][mask[:, 0] == 1], x[:, 0][mask[:, 0] == 1])


def test_checkpoint_round_trip_and_refusals(tmp_path, colorize_checkpoint, tiny_checkpoint):
    loaded = load_colorize(colorize_checkpoint)
    assert loaded.info.config == TINY and len(loaded.sha256) == 64 and not loaded.model.training
    with pytest.raises(CheckpointError, match="not a colorize model"):
        load_colorize(tiny_checkpoint)  # a BakeNet file
    from bake_node.checkpoint import load_checkpoint
    with pytest.raises(CheckpointError, match="not BakeNet"):
        load_checkpoint(colorize_checkpoint)


def operator(checkpoint, **settings):
    op = get_operator("colorize")
    op.prepare({"colorize_checkpoint": checkpoint, "device": "cpu", **settings})
    return op


def test_operator_is_deterministic_and_tile_invariant(colorize_checkpoint):
    op = operator(colorize_checkpoint)
    rgb = np.ascontiguousarray(grey_frames(70, 90, 1)[0][..., :3])
    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[10:30, 40:70] = 1
    for m, fill in ((None, "model"), (mask, "model"), (None, "telea"), (mask, "telea")):
        op.settings["tile"], op.settings["fill"] = 0, fill
        whole = op.process(rgb, 1, mask=m)
        assert whole.shape == rgb.shape and whole.dtype == np.float32
        assert np.array_equal(whole, op.process(rgb, 1, mask=m))
        assert whole.std(axis=2).mean() > 1e-3  # colour appeared
        for tile in (16, 30, 48):  # 30 is rounded down to 28 (a multiple of 4)
            op.settings["tile"] = tile
            np.testing.assert_allclose(op.process(rgb, 1, mask=m), whole, atol=2e-6)
    op.settings["tile"], op.settings["fill"] = 46, "model"
    assert op.tile_size(70, 90) == 44 and operator(colorize_checkpoint, tile=0).tile_size(70, 90) == 0


def test_colour_only_keeps_every_lightness(tmp_path):
    from bake_node.colorize_checkpoint import ColorizeInfo, save_colorize
    from bake_node.palette import srgb_to_oklabp

    torch.manual_seed(1)
    model = ColorizeNet(TINY)
    with torch.no_grad():  # gentle colours, inside the sRGB gamut, so nothing is clamped
        model.head.weight[1:3].mul_(0.05)
        model.head.bias[1:3].zero_()
    save_colorize(tmp_path / "gentle.safetensors", model, ColorizeInfo("tiny-test", TINY))
    op = operator(str(tmp_path / "gentle.safetensors"), detect_damage=False)
    rgb = np.ascontiguousarray(grey_frames(32, 40, 1)[0][..., :3])
    out = op.process(rgb, 1)

    def lightness(a):
        return srgb_to_oklabp(torch.from_numpy(a).double().permute(2, 0, 1)[None])[0, 0]
    assert out.std(axis=2).mean() > 1e-4
    assert (lightness(out) - lightness(rgb)).abs().max() < 1e-5


def _oklab_l(a):
    from bake_node.palette import srgb_to_oklabp
    return srgb_to_oklabp(torch.from_numpy(a).double().permute(2, 0, 1)[None])[0, 0]


def test_telea_fill_puts_classical_lightness_under_the_model_colour(gentle_checkpoint):
    from bake_node.inpaint import telea_fill

    rgb = np.ascontiguousarray(grey_frames(48, 64, 1)[0][..., :3])
    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[12:30, 20:44] = 1
    model_fill, telea = (operator(gentle_checkpoint, fill=f).process(rgb, 1, mask=mask) for f in ("model", "telea"))
    inside, lightness = mask > 0.5, _oklab_l(rgb)
    expected = torch.from_numpy(telea_fill(((lightness + 1) / 2).float().numpy(), mask)).double() * 2 - 1
    got = _oklab_l(telea)
    assert (got[inside] - expected[inside]).abs().max() < 1e-4  # Telea's lightness inside the damage
    assert (got[~inside] - lightness[~inside]).abs().max() < 1e-4  # the plate's outside it
    assert (_oklab_l(model_fill)[inside] - expected[inside]).abs().mean() > 1e-3  # the network's fill differs
    # the colour is the network's either way (a/b equal outside the damage)
    from bake_node.palette import srgb_to_oklabp
    ab = [srgb_to_oklabp(torch.from_numpy(x).double().permute(2, 0, 1)[None])[0, 1:] for x in (model_fill, telea)]
    assert (ab[0][:, ~inside] - ab[1][:, ~inside]).abs().max() < 1e-4
    fingerprints = {operator(gentle_checkpoint, fill=f).fingerprint()["fill"] for f in ("model", "telea")}
    assert fingerprints == {"model", "telea"}


def test_telea_fill_without_opencv_is_one_line(gentle_checkpoint, monkeypatch):
    import sys

    from bake_node.errors import SettingsError

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    with pytest.raises(SettingsError, match="opencv-python-headless"):
        operator(gentle_checkpoint, fill="telea")
    operator(gentle_checkpoint, fill="model")  # the network's own fill needs no OpenCV


def test_chroma_scales_the_colour_and_is_checked(tmp_path):
    from dataclasses import replace

    from bake_node.colorize_checkpoint import ColorizeInfo, load_colorize, save_colorize

    x = torch.rand(1, 3, 16, 24)
    x[:, 2] = 1
    torch.manual_seed(3)
    model = ColorizeNet(TINY).eval()
    full = model(x)
    for chroma in (0.0, 0.4):
        model.config = replace(TINY, chroma=chroma)
        out = model(x)
        assert torch.equal(out[:, [0, 3]], full[:, [0, 3]])  # lightness and damage head untouched
        torch.testing.assert_close(out[:, 1:3], full[:, 1:3] * chroma)
    save_colorize(tmp_path / "c.safetensors", model, ColorizeInfo("tiny-test", model.config))
    assert load_colorize(tmp_path / "c.safetensors").info.config.chroma == 0.4
    for bad in (-0.1, 2.5, float("nan")):
        with pytest.raises(ValueError, match="chroma"):
            replace(TINY, chroma=bad)


def test_chroma_knob_overrides_the_calibrated_strength_without_touching_the_cache(gentle_checkpoint):
    rgb = np.ascontiguousarray(grey_frames(32, 40, 1)[0][..., :3])
    default = operator(gentle_checkpoint).process(rgb, 1)
    grey = operator(gentle_checkpoint, chroma=0.0).process(rgb, 1)
    half = operator(gentle_checkpoint, chroma=0.5)
    assert np.abs(grey - grey.mean(axis=2, keepdims=True)).max() < 1e-5  # R = G = B: no colour
    assert np.array_equal(operator(gentle_checkpoint).process(rgb, 1), default)  # the cached model is unchanged
    # small a/b: sRGB differences between channels scale with the chroma
    assert default.std(axis=2).mean() / half.process(rgb, 1).std(axis=2).mean() == pytest.approx(2.0, rel=0.02)
    fingerprints = {operator(gentle_checkpoint, chroma=c).fingerprint()["chroma"] for c in (-1.0, 1.0, 0.5)}
    assert fingerprints == {1.0, 0.5}  # -1 is the checkpoint's own value (1.0 here)
