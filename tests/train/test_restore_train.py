"""Training the global BakeNet: whole-frame views of every family, learning, exact resume."""
import json

import pytest
import torch

from bake_node.checkpoint import load_checkpoint
from bake_node.errors import SettingsError
from bake_node.models.bakenet_global import BakeNetGlobal
from bake_node.node import get_operator
from bake_seq.train.config import CONFIG_DIR, TrainConfig, load_config
from bake_seq.train.loop import Trainer
from bake_seq.train.restore import GlobalTask, view
from tests.train.resume import assert_resume_continues_exactly, fit_lowering_held_out_loss
from tests.train.test_train_loop import image_folder  # noqa: F401  (fixture)


def tiny_global(folder, run, **changes):
    values = dict(data=str(folder), run=str(run), preset="global", dim=4, depth=16, crop=32, batch=6,
                  downscale=1, lr=3e-3, warmup_epochs=1, steps=4, val_every=0, sample_every=0,
                  plot_every=1000, threads=1)
    values.update(changes)
    return TrainConfig(**values)


def test_the_shipped_recipe_loads_and_names_the_global_task():
    cfg = load_config(str(CONFIG_DIR / "global-cpu.yaml"))
    assert cfg.preset == "global" and cfg.loss == "distance" and cfg.families["clean"] >= 0.3
    assert "exposure" not in cfg.families
    with pytest.raises(SettingsError, match="families must map"):
        TrainConfig(preset="global", families={"sepia": 1.0})
    with pytest.raises(SettingsError, match="unknown loss"):
        TrainConfig(preset="global", loss="heo")  # the grade is trained on the OklabP distance


def test_views_cover_most_of_the_photo_and_batches_mix_families(image_folder, tmp_path):  # noqa: F811
    trainer = Trainer(tiny_global(image_folder, tmp_path / "run", batch=12), echo=lambda _: None)
    assert isinstance(trainer.task, GlobalTask) and isinstance(trainer.model, BakeNetGlobal)
    given, target = trainer.batch(0)
    assert given.shape == target.shape == (12, 3, 32, 32)
    changed = (given - target).abs().flatten(1).amax(1) > 1e-4
    assert 0 < int(changed.sum()) < 12  # some clean frames, some degraded ones
    again = trainer.batch(0)
    assert torch.equal(again[0], given) and torch.equal(again[1], target)  # seeded by the step
    image = torch.rand(3, 40, 60)
    assert view(image, 16, torch.Generator().manual_seed(0)).shape == (3, 16, 16)


def test_loss_goes_down_and_the_checkpoint_renders(image_folder, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    trainer = Trainer(tiny_global(image_folder, run, steps=30, val_data=str(image_folder), val_every=30,
                                  val_cases=1, families={"clean": 0.2, "fade": 0.8}), echo=lambda _: None)
    summary = fit_lowering_held_out_loss(trainer, 500, 4)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    validation = [r for r in records if "val_de2000" in r]
    assert validation and {"val_clean", "val_fade"} <= set(validation[-1])
    assert summary["best_val_de2000"] == validation[-1]["val_de2000"]
    path = run / "checkpoints" / "last" / "model.safetensors"
    assert isinstance(load_checkpoint(path).model, BakeNetGlobal)
    op = get_operator("bake")
    op.prepare({"checkpoint": str(path), "device": "cpu", "tile": 0, "temporal": "frame"})
    out = op.process(torch.rand(24, 40, 3).numpy(), 1)
    assert out.shape == (24, 40, 3)


def test_resume_continues_exactly(image_folder, tmp_path):  # noqa: F811
    assert_resume_continues_exactly(lambda run, steps: tiny_global(image_folder, run, steps=steps), tmp_path)


def test_init_starts_from_a_checkpoints_weights_and_records_it(image_folder, tmp_path):  # noqa: F811
    first = Trainer(tiny_global(image_folder, tmp_path / "a", steps=3), echo=lambda _: None)
    first.fit()
    start = tmp_path / "a" / "checkpoints" / "last" / "model.safetensors"
    second = Trainer(tiny_global(image_folder, tmp_path / "b", steps=1, seed=7, init=str(start)), echo=lambda _: None)
    weights = load_checkpoint(start).model.state_dict()
    assert all(torch.equal(second.model.state_dict()[k], v) for k, v in weights.items())
    assert all(torch.equal(second.ema.state_dict()[k], v) for k, v in weights.items())
    second.fit()
    record = load_checkpoint(tmp_path / "b" / "checkpoints" / "last" / "model.safetensors").info.training["init"]
    assert record["file"] == "model.safetensors" and len(record["sha256"]) == 64
    with pytest.raises(SettingsError, match="differs from this run's in hidden"):
        Trainer(tiny_global(image_folder, tmp_path / "c", init=str(start), depth=8), echo=lambda _: None)
