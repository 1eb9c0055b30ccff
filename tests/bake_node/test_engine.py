import numpy as np
import pytest
import torch

from bake_node.engine import TileGrid, run_tiled
from bake_node.models.bakenet import PRESETS, BakeNet
from bake_node.node import get_operator


def test_tile_grid_covers_frame_once():
    seen = np.zeros((37, 53), int)
    for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in TileGrid(37, 53, 16, 5):
        seen[y0:y1, x0:x1] += 1
        assert cy0 == max(0, y0 - 5) and cx1 == min(53, x1 + 5)
    assert (seen == 1).all()


@pytest.mark.parametrize("tile", [24, 40, 64])
def test_v5_tile_size_does_not_change_results(tile):
    torch.manual_seed(1)
    model = BakeNet(PRESETS["v5"]).eval()
    x = torch.rand(1, 3, 70, 90) * 2 - 1
    whole = run_tiled(model, x, 0, model.config.receptive_radius, torch.device("cpu"))
    tiled = run_tiled(model, x, tile, model.config.receptive_radius, torch.device("cpu"))
    assert torch.allclose(whole, tiled, atol=2e-6, rtol=0)


def test_too_small_halo_would_show(tiny_checkpoint):
    # guards the test above: with no halo the tile seams are visible
    torch.manual_seed(1)
    model = BakeNet(PRESETS["cpu"]).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    whole = run_tiled(model, x, 0, 0, torch.device("cpu"))
    seams = run_tiled(model, x, 32, 0, torch.device("cpu"))
    assert (whole - seams).abs().max() > 1e-3


def operator(checkpoint, **settings):
    op = get_operator("bake")
    op.prepare({"checkpoint": checkpoint, "device": "cpu", **settings})
    return op


def test_operator_tiles_within_one_16bit_code_and_reruns_identical(tiny_checkpoint):
    rng = np.random.default_rng(0)
    rgb = rng.random((75, 101, 3), dtype=np.float32)
    whole = operator(tiny_checkpoint, tile=0).process(rgb, 1)
    tiled = operator(tiny_checkpoint, tile=32).process(rgb, 1)
    again = operator(tiny_checkpoint, tile=32).process(rgb, 1)
    assert np.abs(np.round(whole * 65535) - np.round(tiled * 65535)).max() <= 1
    assert np.array_equal(tiled, again)
    assert np.abs(whole - rgb).mean() > 1e-3  # the model really changed the picture


def test_range_policy_preserves_out_of_domain_values(tiny_checkpoint):
    rgb = np.full((8, 8, 3), 0.5, np.float32)
    rgb[0, 0] = (4.0, 2.0, -0.25)
    keep = operator(tiny_checkpoint, range_policy="preserve").process(rgb, 1)
    clip = operator(tiny_checkpoint, range_policy="clip").process(rgb, 1)
    assert clip.min() >= 0 and clip.max() <= 1
    np.testing.assert_allclose(keep[0, 0] - clip[0, 0], (3.0, 1.0, -0.25), atol=1e-6)
    np.testing.assert_array_equal(keep[1:, 1:], clip[1:, 1:])


def test_bf16_is_opt_in_close_and_recorded(tiny_checkpoint):
    rgb = np.random.default_rng(1).random((32, 40, 3), dtype=np.float32)
    exact = operator(tiny_checkpoint)
    fast = operator(tiny_checkpoint, precision="bf16")
    assert exact.settings["precision"] == "fp32"
    assert exact.fingerprint() != fast.fingerprint()  # resume never mixes the two
    diff = np.abs(exact.process(rgb, 1) - fast.process(rgb, 1)).max()
    assert 0 < diff < 0.05
