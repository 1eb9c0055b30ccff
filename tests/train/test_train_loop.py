"""A tiny training run (dim 8, depth 10, 32 px crops): the loss goes down, checkpoints render,
and a resumed run continues exactly like an uninterrupted one."""
import json
from dataclasses import fields

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from click.testing import CliRunner

from bake_node.checkpoint import load_checkpoint
from bake_node.errors import SettingsError
from bake_node.palette import srgb_eotf
from bake_seq.train.config import CONFIG_DIR, TrainConfig, load_config
from bake_seq.train.data import downscale_factor, load_folder, reflect_pad
from bake_seq.train.loop import Trainer
from tests.train.resume import assert_resume_continues_exactly, fit_lowering_held_out_loss


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """One small colourful picture in three formats (8-bit PNG, 16-bit TIFF, half EXR)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64] / 64.0
    rgb = np.stack([np.sin(3 * x) * 0.4 + 0.5, np.cos(4 * y) * 0.4 + 0.5, (x + y) / 2], -1)
    rgb = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1).astype(np.float32)
    for i, ext in enumerate(("png", "tif", "exr")):
        if ext == "png":
            data = (rgb * 255).round().astype(np.uint8)
        elif ext == "tif":
            data = (rgb * 65535).round().astype(np.uint16)
        else:
            data = srgb_eotf(torch.from_numpy(rgb)).numpy()  # linear light, as an EXR holds it
        buf = oiio.ImageBuf(np.ascontiguousarray(data))
        if ext == "exr":
            buf.specmod().attribute("oiio:ColorSpace", "lin_rec709_scene")
        assert buf.write(str(folder / f"im{i}.{ext}"), oiio.HALF if ext == "exr" else oiio.UNKNOWN)
    return folder


def tiny(folder, run, **changes):
    values = dict(data=str(folder), run=str(run), preset="cpu", dim=8, depth=10, crop=32, downscale=1,
                  lr=1e-3, warmup_epochs=1, steps=4, val_every=0, sample_every=0, plot_every=1000, threads=1)
    values.update(changes)
    return TrainConfig(**values)


def test_images_load_from_any_format_into_srgb(image_folder):
    images = load_folder(str(image_folder), downscale=1)
    assert [im.name for im in images] == ["im0", "im1", "im2"]
    for im in images:
        assert im.pixels.shape == (3, 48, 64)
    # the same picture: 16-bit codes respected, the EXR's linear light brought back to sRGB by OCIO
    assert (images[1].pixels - images[0].pixels).abs().max() < 0.003
    assert (images[2].pixels - images[0].pixels).abs().max() < 0.01
    assert downscale_factor(1000) == 2 and downscale_factor(3840) == 3 and downscale_factor(7680) == 6
    assert reflect_pad(torch.rand(3, 5, 7), 32).shape == (3, 32, 32)


def test_loss_goes_down(image_folder, tmp_path):
    trainer = Trainer(tiny(image_folder, tmp_path / "run", steps=15), echo=lambda _: None)
    fit_lowering_held_out_loss(trainer, 100, 4, below=0.85, models=("model", "ema"))
    # the EMA weights are a render-path checkpoint
    loaded = load_checkpoint(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors")
    assert loaded.info.weights == "ema" and loaded.info.training["steps"] == 15
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0


def test_resume_continues_exactly(image_folder, tmp_path):
    assert_resume_continues_exactly(lambda run, steps: tiny(image_folder, run, steps=steps, accum=2), tmp_path)
    restarted = Trainer(tiny(image_folder, tmp_path / "split", steps=1), resume="restart", echo=lambda _: None)
    assert restarted.step == 0


def test_validation_samples_and_best_checkpoint(image_folder, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny(image_folder, run, steps=2, val_data=str(image_folder), val_every=1, val_crop=32,
                           val_cases=1, sample_every=2), echo=lambda _: None)
    summary = trainer.fit()
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_de2000" in r] == [1, 2]
    assert all(r["val_clean_de2000"] >= 0 for r in records if "val_de2000" in r)
    assert summary["best_val_de2000"] == min(r["val_de2000"] for r in records if "val_de2000" in r)
    assert load_checkpoint(run / "checkpoints" / "best" / "model.safetensors").info.training["best_val_de2000"]
    assert (run / "samples" / "step_0000002.png").exists()


def test_nan_loss_skips_the_step(image_folder, tmp_path):
    trainer = Trainer(tiny(image_folder, tmp_path / "run", steps=1), echo=lambda _: None)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.loss_fn = lambda pred, target: pred.sum() * float("nan")
    record = trainer.train_step()
    assert record["loss"] is None and trainer.skipped == 1 and trainer.step == 1
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_reference_yaml_holds_the_defaults():
    assert load_config(str(CONFIG_DIR / "reference.yaml")) == TrainConfig()
    cfg = load_config(str(CONFIG_DIR / "reference.yaml"), lr=1e-3, loss=None)
    assert cfg.lr == 1e-3 and cfg.loss == "heo"
    defaults = TrainConfig()
    assert (defaults.lr, defaults.weight_decay, defaults.batch, defaults.crop, defaults.ema_decay,
            defaults.grad_clip, defaults.lr_decay, defaults.seed) == (1e-4, 1e-6, 4, 256, 0.999, 1.0, 0.999996, 42)
    assert {f.name for f in fields(TrainConfig)} >= {"loss", "accum", "warmup_epochs"}


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(SettingsError, match="unknown config keys: learning_rate"):
        load_config(str(bad))
    with pytest.raises(SettingsError, match="unknown loss"):
        TrainConfig(loss="l1")
    with pytest.raises(SettingsError, match="has no length"):
        Trainer(TrainConfig(data=str(CONFIG_DIR.parent), preset="cpu"))


def test_train_command(image_folder, tmp_path):
    from bake_node.cli import cli

    run = tmp_path / "run"
    args = ["train", "--data", str(image_folder), "--run", str(run), "--preset", "cpu", "--crop", "32",
            "--steps", "1", "--threads", "1", "--json"]
    config = tmp_path / "tiny.yaml"
    config.write_text("dim: 8\ndepth: 10\ndownscale: 1\nval_every: 0\nsample_every: 0\n")
    result = CliRunner().invoke(cli, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["steps"] == 1
    again = CliRunner().invoke(cli, [*args, "--config", str(config), "--resume", "--steps", "2"])
    assert again.exit_code == 0 and "resuming" in again.output
    missing = CliRunner().invoke(cli, [*args, "--config", str(config), "--run", str(tmp_path / "new"), "--resume"])
    assert missing.exit_code == 4 and "no checkpoint to resume from" in missing.output


def test_a_state_file_without_the_expected_keys_is_one_line(image_folder, tmp_path):
    from bake_node.errors import CheckpointError

    cfg = tiny(image_folder, tmp_path / "run", steps=1)
    (tmp_path / "run" / "checkpoints" / "last").mkdir(parents=True)
    for state in ({"config": {}}, [1, 2], {"config": "x", "model": {}}):
        torch.save(state, tmp_path / "run" / "checkpoints" / "last" / "state.pt")
        with pytest.raises(CheckpointError, match="not a bake-seq training state"):
            Trainer(cfg, resume="force")
