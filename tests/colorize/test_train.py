"""Colorize training through the shared Trainer: batches, the loss going down, checkpoints in the
colorize format, the CLI, and BakeNet settings refused for a colorize run."""
import json

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from click.testing import CliRunner

from bake_node.colorize_checkpoint import load_colorize
from bake_node.errors import SettingsError
from bake_seq.train.config import TrainConfig
from bake_seq.train.loop import Trainer
from tests.train.resume import assert_resume_continues_exactly, fit_lowering_held_out_loss


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("colour")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64] / 64.0
    for i in range(2):
        rgb = np.stack([np.sin(3 * x + i) * 0.4 + 0.5, np.cos(4 * y) * 0.4 + 0.5, (x + y) / 2], -1)
        rgb = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1)
        assert oiio.ImageBuf(np.ascontiguousarray((rgb * 255).round().astype(np.uint8))).write(str(folder / f"c{i}.png"))
    return folder


def tiny(folder, run, **changes):
    values = dict(model="colorize", preset="tiny", data=str(folder), run=str(run), crop=32, batch=4, downscale=1,
                  lr=3e-3, warmup_epochs=1, steps=4, val_every=0, sample_every=0, plot_every=1000, threads=1)
    values.update(changes)
    return TrainConfig(**values)


def test_defaults_per_model():
    assert (TrainConfig().preset, TrainConfig().loss) == ("v5", "heo")
    cfg = TrainConfig(model="colorize")
    assert (cfg.preset, cfg.loss) == ("small", "l1+ssim")
    assert TrainConfig(model="colorize", dim=8, depth=2).model_config.width == 8
    with pytest.raises(SettingsError, match="unknown colorize preset"):
        TrainConfig(model="colorize", preset="v5")
    with pytest.raises(SettingsError, match="unknown loss"):
        TrainConfig(model="colorize", loss="heo")
    assert TrainConfig(model="colorize", loss="l2ab+ssim").loss == "l2ab+ssim"
    for bad in ({"ab_weight": -1.0}, {"ssim_weight": float("nan")}, {"extra_downscale": [1]},
                {"extra_downscale": "2"}, {"extra_downscale": [2.5]}):
        with pytest.raises(SettingsError):
            TrainConfig(model="colorize", **bad)


def test_squared_chroma_loss_prefers_the_mean_of_two_colours():
    """Two equally likely colours for the same grey: the l2 loss's best single answer is their
    mean (nearer neutral), the l1 loss is indifferent along the segment between them."""
    from bake_seq.train.colorize import colorize_loss

    target = torch.zeros(2, 4, 16, 16)
    target[0, 1], target[1, 1] = 0.3, -0.1  # a = 0.3 or -0.1, b = 0, same L; no damage

    def loss(a, chroma):
        pred = torch.zeros(2, 4, 16, 16)
        pred[:, 1], pred[:, 3] = a, -20.0
        return float(colorize_loss(pred, target, ssim_weight=0.0, mask_weight=0.0, chroma=chroma))
    candidates = [-0.1, 0.0, 0.1, 0.2, 0.3]
    l2 = [loss(a, "l2") for a in candidates]
    assert min(range(5), key=l2.__getitem__) == 2  # a = 0.1, the mean
    l1 = [loss(a, "l1") for a in candidates]
    assert max(l1) - min(l1) < 1e-6


def test_extra_downscale_adds_smaller_copies(colour_folder, tmp_path):
    trainer = Trainer(tiny(colour_folder, tmp_path / "run", extra_downscale=[2]), echo=lambda _: None)
    names = [im.name for im in trainer.images]
    assert names == ["c0", "c1", "c0@1/2", "c1@1/2"]
    assert trainer.images[2].pixels.shape == (3, 24, 32) and 0 <= float(trainer.images[2].pixels.min())
    torch.testing.assert_close(trainer.images[2].pixels.mean(), trainer.images[0].pixels.mean(), atol=0.01, rtol=0)


def test_batches_hold_grey_mask_and_target(colour_folder, tmp_path):
    trainer = Trainer(tiny(colour_folder, tmp_path / "run"), echo=lambda _: None)
    inp, target = trainer.batch(3)
    assert inp.shape == (4, 3, 32, 32) and target.shape == (4, 4, 32, 32)
    given = inp[:, 2, 0, 0] == 1
    assert torch.equal(inp[given, 1], target[given, 3]) and (inp[~given, 1] == 0).all()
    intact = target[:, 3] == 0
    assert torch.allclose(inp[:, 0][intact], target[:, 0][intact], atol=1e-6)  # grey = Oklab L
    again, _ = trainer.batch(3)
    assert torch.equal(inp, again)  # (seed, step) decide every batch: resume draws the same


def test_loss_goes_down_and_checkpoints_render(colour_folder, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny(colour_folder, run, steps=25, val_data=str(colour_folder), val_every=25,
                           val_crop=32, val_cases=1, sample_every=25), echo=lambda _: None)
    summary = fit_lowering_held_out_loss(trainer, 100, 3)
    loaded = load_colorize(run / "checkpoints" / "last" / "model.safetensors")
    assert loaded.info.preset == "tiny" and loaded.info.training["steps"] == 25
    best = load_colorize(run / "checkpoints" / "best" / "model.safetensors")
    assert best.info.training["best_val_de2000"] == summary["best_val_de2000"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {"val_ssim", "val_ssim_damage", "val_found_ssim"} <= set(records[-1])
    assert (run / "samples" / "step_0000025.png").exists() and (run / "loss.png").exists()


def test_train_command_and_wall_budget(colour_folder, tmp_path):
    from bake_node.cli import cli

    run = tmp_path / "run"
    config = tmp_path / "tiny.yaml"
    config.write_text("model: colorize\npreset: tiny\ncrop: 32\nbatch: 2\ndownscale: 1\nval_every: 0\nsample_every: 0\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(config), "--data", str(colour_folder), "--run", str(run),
                                      "--steps", "1000", "--max-minutes", "0.002", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["stopped_by_time"] and 0 < summary["steps"] < 1000
    assert load_colorize(run / "checkpoints" / "last" / "model.safetensors").info.training["steps"] == summary["steps"]
    other = CliRunner().invoke(cli, ["train", "--data", str(colour_folder), "--run", str(run), "--preset", "cpu",
                                     "--steps", "1", "--resume"])
    assert other.exit_code == 2 and "trains another model" in other.output


def test_resume_continues_exactly(colour_folder, tmp_path):
    assert_resume_continues_exactly(lambda run, steps: tiny(colour_folder, run, steps=steps), tmp_path)
