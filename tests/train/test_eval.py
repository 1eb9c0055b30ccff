"""Eval arithmetic on cases whose answers are known, and the eval command end to end."""
import json
import math

import numpy as np
import OpenImageIO as oiio
import torch
from click.testing import CliRunner

from bake_seq.train.ciede2000 import delta_e_srgb
from bake_seq.train.evaluate import (PSNR_CAP, Case, clean_cases, degraded_cases, do_nothing, evaluate, grey_world,
                            markdown_table, psnr, score)
from bake_seq.train.data import Image
from bake_seq.train.grades import EVAL_FAMILIES


def flat(rgb, size=8):
    return torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1).expand(3, size, size).clone()


def test_known_scores():
    clean = flat((0.5, 0.5, 0.5))
    shifted = flat((0.6, 0.5, 0.5))
    half = clean.clone()
    half[:, :, :4] = shifted[:, :, :4]  # half the pixels off by one known colour difference
    de = float(delta_e_srgb(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.6, 0.5, 0.5])))
    s = score([Case("a", clean, half)], do_nothing)
    assert math.isclose(s["de2000_mean"], de / 2, rel_tol=1e-9)
    assert math.isclose(s["de2000_p95"], de, rel_tol=1e-9)
    # MSE = (0.1^2 on 1 of 3 channels, half the pixels) = 0.01 / 6
    assert math.isclose(s["psnr_db"], 10 * math.log10(6 / 0.01), rel_tol=1e-6)
    perfect = score([Case("b", clean, clean)], do_nothing)
    assert perfect["de2000_mean"] == 0 and perfect["psnr_db"] == PSNR_CAP
    both = score([Case("a", clean, half), Case("b", clean, clean)], do_nothing)
    assert math.isclose(both["de2000_mean"], de / 4, rel_tol=1e-9)
    assert math.isclose(both["psnr_db"], (PSNR_CAP + s["psnr_db"]) / 2, rel_tol=1e-9)


def test_psnr_of_a_constant_offset():
    assert math.isclose(psnr(flat((0.2, 0.2, 0.2)), flat((0.3, 0.3, 0.3))), 20.0, rel_tol=1e-6)


def test_grey_world_removes_a_cast_from_a_grey_scene():
    cast = flat((0.6, 0.5, 0.4))
    out = grey_world(cast)
    assert float(out.max() - out.min()) < 1e-6  # neutral again
    grey = flat((0.3, 0.3, 0.3))
    assert torch.allclose(grey_world(grey), grey, atol=1e-6)


def test_cases_are_fixed_by_the_seed():
    gen = torch.Generator().manual_seed(0)
    images = [Image("x", torch.rand(3, 20, 30, generator=gen)), Image("y", torch.rand(3, 12, 12, generator=gen))]
    one, two = degraded_cases(images, 3, seed=9), degraded_cases(images, 3, seed=9)
    assert [c.name for c in one] == ["x#0", "x#1", "x#2", "y#0", "y#1", "y#2"]
    assert all(torch.equal(a.given, b.given) for a, b in zip(one, two))
    assert not torch.equal(one[0].given, one[1].given)
    assert one[0].given.min() >= 0 and one[0].given.max() <= 1  # as a plate would hold it
    table = evaluate({"degraded": one, "clean": clean_cases(images)}, {"do nothing": do_nothing})
    assert table["clean"]["do nothing"]["de2000_mean"] == 0
    assert table["degraded"]["do nothing"]["de2000_mean"] > 1
    assert "| degraded (6) | do nothing |" in markdown_table(table)


def test_eval_command(tmp_path, tiny_checkpoint):
    from bake_node.cli import cli

    data = tmp_path / "holdout"
    data.mkdir()
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 1, 40, dtype=np.float32)
    image = np.stack([np.tile(ramp, (32, 1)), np.tile(ramp[:32, None], (1, 40)), rng.random((32, 40), np.float32)], -1)
    assert oiio.ImageBuf(np.ascontiguousarray((image * 255).astype(np.uint8))).write(str(data / "a.png"))
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, ["eval", "--data", str(data), "--checkpoint", tiny_checkpoint,
                                      "-o", str(out), "--cases", "2", "--downscale", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    assert list(report["results"]) == [*EVAL_FAMILIES, "clean"]
    for family, methods in report["results"].items():
        assert list(methods) == ["do nothing", "grey-world", "previous cpu model", "model (tiny-test)"]
        assert methods["model (tiny-test)"]["cases"] == (1 if family == "clean" else 2)
        nothing = methods["do nothing"]["de2000_mean"]
        for scores in methods.values():  # the ratio is each method's mean over doing nothing's
            assert scores["ratio"] is None if family == "clean" else \
                math.isclose(scores["ratio"], scores["de2000_mean"] / nothing, rel_tol=1e-12)
    assert report["results"]["cdl"]["do nothing"]["de2000_mean"] > 1
    table = (out / "eval.md").read_text()
    assert "| clean (1) | model (tiny-test) | " in table and "| fade (2) | do nothing | " in table


def test_eval_command_missing_folder(tmp_path, tiny_checkpoint):
    from bake_node.cli import cli

    result = CliRunner().invoke(cli, ["eval", "--data", str(tmp_path / "nope"), "--checkpoint", tiny_checkpoint])
    assert result.exit_code == 2
    assert "image folder not found" in result.output

