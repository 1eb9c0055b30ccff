"""Saturation calibration (issue 16): the chosen chroma minimises the worst photo's dE ratio to
its grey input, is written into a new checkpoint with its measurements, and never overwrites."""
import numpy as np
import pytest
import torch

from bake_node.colorize_checkpoint import load_colorize
from bake_seq.train.calibrate_colorize import choose, main


def photos(folder, n=2, seed=5):
    import OpenImageIO as oiio

    folder.mkdir()
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:64] / 64.0
    for i in range(n):  # smooth, strongly coloured images: grey is far from them
        rgb = np.stack([x, y, 1 - x * (i + 1) / n], -1) * 0.8 + rng.random((48, 64, 3)) * 0.1
        assert oiio.ImageBuf((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).write(str(folder / f"p{i}.png"))
    return folder


def test_choose_is_minimax_over_photos():
    grid = (0.0, 0.5, 1.0)
    measured = {("a", "m"): {"grey": (10.0, 0.5), 0.0: (8.0, 0.5), 0.5: (6.0, 0.6), 1.0: (4.0, 0.6)},
                ("b", "m"): {"grey": (10.0, 0.5), 0.0: (8.0, 0.5), 0.5: (7.0, 0.6), 1.0: (9.0, 0.6)}}
    chroma, rows = choose(measured, grid)
    assert chroma == 0.5  # 1.0 helps a more but makes b worse than no colour
    assert [r["worst_vs_no_colour"] for r in rows] == [1.0, 0.875, 1.125]
    assert [r["worst_vs_grey"] for r in rows] == [0.8, 0.7, 0.9]
    measured[("b", "m")][0.5] = (8.5, 0.6)  # colour hurts b at every chroma: none is shipped
    assert choose(measured, grid)[0] == 0.0


def test_calibrate_writes_a_new_checkpoint(tmp_path, colorize_checkpoint, capsys):
    data = photos(tmp_path / "val")
    out = tmp_path / "calibrated.safetensors"
    assert main([colorize_checkpoint, "--data", str(data), "-o", str(out), "--cases", "1"]) == 0
    printed = capsys.readouterr().out
    calibrated, source = load_colorize(out), load_colorize(colorize_checkpoint)
    cal = calibrated.info.training["calibration"]
    assert calibrated.info.config.chroma == cal["chroma"] and f"chroma {cal['chroma']:.2f}" in printed
    assert "(chosen)" in printed and cal["source_sha256"] == source.sha256 and cal["data"] == ["p0", "p1"]
    assert set(cal["per_image"]) == {"p0 (mask given)", "p0 (damage found)", "p1 (mask given)", "p1 (damage found)"}
    for a, b in zip(calibrated.model.state_dict().values(), source.model.state_dict().values()):
        assert torch.equal(a, b)  # the same weights
    before = out.read_bytes()
    assert main([colorize_checkpoint, "--data", str(data), "-o", str(out)]) != 0  # exists: refused
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main([colorize_checkpoint, "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "image folder not found" in capsys.readouterr().err


def test_calibrate_refuses_to_write_over_its_source(tmp_path, colorize_checkpoint):
    assert main([colorize_checkpoint, "--data", str(tmp_path), "-o", colorize_checkpoint, "--overwrite"]) == 2
