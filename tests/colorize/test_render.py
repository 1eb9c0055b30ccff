"""`bake-seq render --op colorize` on real 16-bit RGBA PNG sequences on disk, with and without
--mask: 16-bit output, alpha untouched, lightness kept outside the damage, clear errors."""
import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bake_node.cli import cli
from bake_node.palette import srgb_to_oklabp
from bake_seq.sequences.plate import read_plate, write_plate
from tests.colorize.conftest import grey_frames

FRAMES = (1001, 1002)


def render(*args, code=0):
    result = CliRunner().invoke(cli, ["render", *map(str, args)])
    assert result.exit_code == code, (result.output, result.exception)
    return result


@pytest.fixture
def plate(tmp_path):
    folder = tmp_path / "plate"
    for n, frame in zip(FRAMES, grey_frames(frames=len(FRAMES))):
        write_plate(str(folder / f"grey.{n}.png"), frame, channel_names=["R", "G", "B", "A"], metadata={},
                    colorspace="sRGB Encoded Rec.709 (sRGB)", frame=n)
    return folder


@pytest.fixture
def masks(tmp_path):
    folder = tmp_path / "masks"
    for i, n in enumerate(FRAMES):
        mask = np.zeros((40, 56, 3), np.float32)
        mask[8 + i:20, 10:30] = 1.0  # white = damaged
        write_plate(str(folder / f"m.{n}.png"), mask, channel_names=["R", "G", "B"], metadata={}, colorspace=None)
    return folder


def lightness(rgb):
    return srgb_to_oklabp(torch.from_numpy(np.ascontiguousarray(rgb[..., :3])).double().permute(2, 0, 1)[None])[0, 0].numpy()


def test_render_with_and_without_mask(tmp_path, plate, masks, gentle_checkpoint):
    src = str(plate / "grey.####.png")
    common = ["--op", "colorize", "--colorize-checkpoint", gentle_checkpoint, "-q"]
    render(src, "-o", tmp_path / "found" / "c.####.png", *common)
    render(src, "-o", tmp_path / "masked" / "c.####.png", "--mask", masks / "m.####.png", *common)
    render(src, "-o", tmp_path / "colour" / "c.####.png", "--no-detect-damage", *common)
    for n in FRAMES:
        given = read_plate(str(plate / f"grey.{n}.png"), None)
        outputs = {}
        for kind in ("found", "masked", "colour"):
            out = read_plate(str(tmp_path / kind / f"c.{n}.png"), None)
            assert out.header.bits_per_sample == 16 and out.header.channel_names == ["R", "G", "B", "A"]
            np.testing.assert_array_equal(out.pixels[..., 3], given.pixels[..., 3])  # alpha passes through
            assert out.pixels[..., :3].std(axis=2).mean() > 1e-4  # colour appeared
            outputs[kind] = out.pixels
        mask = read_plate(str(masks / f"m.{n}.png"), None).pixels[..., 0] > 0.5
        masked = outputs["masked"]
        # outside the mask the lightness is the plate's (up to 16-bit codes and the sRGB clamp)
        inside_gamut = ((masked[..., :3] > 0.002) & (masked[..., :3] < 0.998)).all(axis=2)
        keep = ~mask & inside_gamut
        assert np.abs(lightness(masked) - lightness(given.pixels))[keep].max() < 2e-3
        assert not np.array_equal(outputs["masked"], outputs["found"])
    record = json.loads((tmp_path / "masked" / ".bake-seq" / "c.1001.png.json").read_text())
    assert record["operator"]["mask"].endswith("m.####.png") and record["operator"]["op"] == "colorize"
    assert len(record["operator"]["checkpoint_sha256"]) == 64


def test_mask_changes_the_fingerprint_and_a_missing_mask_frame_is_named(tmp_path, plate, masks, colorize_checkpoint):
    src = str(plate / "grey.####.png")
    out = tmp_path / "out" / "c.####.png"
    common = ["--op", "colorize", "--colorize-checkpoint", colorize_checkpoint, "-o", out, "-q"]
    render(src, *common, "--mask", masks / "m.####.png")
    def summary(result):
        return json.loads(result.stdout[result.stdout.index("{"):])
    again = render(src, *common, "--mask", masks / "m.####.png", "--json")
    assert summary(again)["skipped_complete"] == len(FRAMES)  # same settings: resumed
    assert summary(render(src, *common, "--json"))["rendered"] == len(FRAMES)  # no mask: another fingerprint
    os.remove(masks / "m.1002.png")
    missing = render(src, *common, "--mask", masks / "m.####.png", "--overwrite", code=3)
    assert "m.1002.png" in missing.output and "mask for frame 1002 not found" in missing.output
    assert "Traceback" not in missing.output
    fresh = tmp_path / "fresh"  # checked before the first frame: frame 1001 is not rendered either
    render(src, "--op", "colorize", "--colorize-checkpoint", colorize_checkpoint, "-o", fresh / "c.####.png",
           "--mask", masks / "m.####.png", code=3)
    assert not list(fresh.glob("*.png"))
    single = render(src, *common, "--mask", masks / "m.1001.png", "--json")  # one mask for all frames
    assert summary(single)["rendered"] == len(FRAMES)
