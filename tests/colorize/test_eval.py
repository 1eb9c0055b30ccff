"""Colorize scoring on cases whose answers are known: SSIM against skimage, masked SSIM and
CIEDE2000 by hand, the baselines, and the eval command end to end on a tiny checkpoint."""
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bake_seq.train.ciede2000 import delta_e_srgb
from bake_seq.train.colorize import DamageCase, damage_cases, grey_input, grey_lightness, score, telea
from bake_seq.train.data import Image
from bake_seq.train.ssim import masked_mean, ssim, ssim_map


def test_ssim_of_identical_images_is_one_and_matches_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((3, 40, 50))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ta, tb = torch.from_numpy(a)[None], torch.from_numpy(b)[None]
    assert float(ssim(ta, ta)) == pytest.approx(1.0, abs=1e-12)
    reference = structural_similarity(a, b, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1.0)
    # skimage averages over pixels at least 5 px (half the window) from the border
    assert float(ssim_map(ta, tb)[0, 5:-5, 5:-5].mean()) == pytest.approx(reference, abs=1e-9)
    assert ssim_map(ta, tb).shape == (1, 40, 50)


def test_masked_scores_by_hand():
    clean = torch.full((3, 16, 16), 0.5)
    out = clean.clone()
    out[0, :, :8] = 0.6  # the left half off by one known colour
    mask = torch.zeros(1, 16, 16)
    mask[:, :, :8] = 1
    case = DamageCase("half", clean, grey_lightness(clean[None])[0], mask)
    s = score([case], lambda c: out)
    de = float(delta_e_srgb(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.6, 0.5, 0.5])))
    assert math.isclose(s["de2000_damage"], de, rel_tol=1e-9)
    assert math.isclose(s["de2000_mean"], de / 2, rel_tol=1e-9)
    smap = ssim_map(out[None].double(), clean[None].double())[0]
    assert math.isclose(s["ssim_damage"], float(smap[:, :8].mean()), rel_tol=1e-9)
    assert math.isclose(s["ssim"], float(smap.mean()), rel_tol=1e-9)
    perfect = score([case], lambda c: clean)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["de2000_mean"] == 0
    assert math.isnan(masked_mean(smap, torch.zeros(16, 16)))


def test_grey_baseline_and_telea_fill_the_hole():
    y, x = np.mgrid[0:48, 0:48] / 48.0
    clean = torch.from_numpy(np.stack([x, x, x]).astype(np.float32))  # a grey ramp: nothing to colourise
    cases = damage_cases([Image("ramp", clean)], 3, seed=1)
    assert cases[0].mask.sum() > 0 and torch.equal(cases[0].mask, damage_cases([Image("ramp", clean)], 3, 1)[0].mask)
    for case in cases:
        grey, filled = score([case], grey_input), score([case], telea)
        assert filled["de2000_damage"] < grey["de2000_damage"]  # inpainting beats leaving the damage
        intact = case.mask[0] == 0
        assert torch.allclose(telea(case)[:, intact], case.grey[:, intact], atol=1e-4)


def test_eval_command(tmp_path, colorize_checkpoint):
    import OpenImageIO as oiio

    from bake_node.cli import cli

    folder = tmp_path / "holdout"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for name in ("a", "b"):
        assert oiio.ImageBuf((rng.random((40, 48, 3)) * 255).astype(np.uint8)).write(str(folder / f"{name}.png"))
    result = CliRunner().invoke(cli, ["eval", "--model", "colorize", "--data", str(folder), "--checkpoint",
                                      colorize_checkpoint, "--cases", "2", "--downscale", "1", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert set(report["results"]) == {"grey input (damage left in)", "Telea inpainting, grey (true mask)",
                                      "model, true mask, fill=model", "model, damage found, fill=model",
                                      "model, true mask, fill=telea (default)", "model, damage found, fill=telea (default)",
                                      "model's lightness only (grey), true mask, fill=model"}  # test weights: chroma 1
    assert all(r["cases"] == 4 for r in report["results"].values())
    # per image (issue 16: never worse than grey on any one plate), pooled the same way as overall
    for result in report["results"].values():
        assert set(result["per_image"]) == {"a", "b"}
        assert min(v["ssim"] for v in result["per_image"].values()) <= result["ssim"] <= max(
            v["ssim"] for v in result["per_image"].values())
    text = (tmp_path / "out" / "eval.md").read_text()
    assert "SSIM (damaged px)" in text and "| a |" in text and "CIEDE2000 below the grey input's on:" in text
    assert "| image (inside the damage) |" in text
    # fill=telea puts Telea's lightness under the model's colour: inside the damage its lightness
    # is the Telea baseline's (to 16-bit codes), so its grey version scores like the baseline there
    telea_fill, baseline = report["results"]["model, true mask, fill=telea (default)"], report["results"]["Telea inpainting, grey (true mask)"]
    assert telea_fill["ssim_damage"] != report["results"]["model, true mask, fill=model"]["ssim_damage"]
    assert baseline["ssim_damage"] > 0


def test_eval_shows_what_the_calibration_changed(tmp_path):
    from dataclasses import replace

    import OpenImageIO as oiio

    from bake_node.cli import cli
    from tests.colorize.conftest import TINY, make_colorize_checkpoint

    checkpoint = make_colorize_checkpoint(tmp_path / "c.safetensors", config=replace(TINY, chroma=0.5))
    folder = tmp_path / "holdout"
    folder.mkdir()
    assert oiio.ImageBuf((np.random.default_rng(3).random((32, 40, 3)) * 255).astype(np.uint8)).write(str(folder / "a.png"))
    result = CliRunner().invoke(cli, ["eval", "--model", "colorize", "--data", str(folder), "--checkpoint", str(checkpoint),
                                      "--cases", "1", "--downscale", "1", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert report["chroma"] == 0.5
    calibrated, uncalibrated = (report["results"][k]["de2000_mean"] for k in
                                ("model, true mask, fill=model", "model, true mask, uncalibrated colour (chroma 1, fill=model)"))
    assert calibrated != uncalibrated
