"""The per-pixel BakeNet's training task: darkroom degradations in OklabP, its loss, CIEDE2000
validation on degraded and clean images, before/after grids and its checkpoint format.
train.loop.Trainer drives it; train.restore.GlobalTask extends it.
"""
from __future__ import annotations

import torch

from bake_node.checkpoint import CheckpointInfo, save_checkpoint
from bake_node.models.bakenet import BakeNet
from bake_node.palette import oklabp_to_srgb, srgb_to_oklabp

from . import darkroom
from .config import TrainConfig
from .data import sample_batch, seeded
from .evaluate import clean_cases, degraded_cases, model_method, score
from .losses import make_loss

VAL_SEED = 1234  # validation degradations never change between runs or resumes


class BakeTask:
    """BakeNet: darkroom degradations in OklabP, HeoLoss, CIEDE2000 validation."""

    name = "bakenet"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.cases, self.clean = [], []

    def build_model(self) -> torch.nn.Module:
        return BakeNet(self.cfg.model_config)

    def loss_fn(self):
        return make_loss(self.cfg.loss)

    def set_validation(self, images) -> list:
        self.cases = degraded_cases(images, self.cfg.val_cases, VAL_SEED, self.cfg.strength, self.cfg.val_crop)
        # Scored too (logged, not used to pick "best"): a model can beat doing nothing on degraded
        # images while shifting every colour of a clean one (the cpu run's step-50 checkpoint did).
        self.clean = clean_cases(images, self.cfg.val_crop)
        return self.cases

    def batch(self, images, micro: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) in OklabP for micro-batch number ``micro`` (counted over the run)."""
        cfg = self.cfg
        clean = sample_batch(images, micro * cfg.batch, cfg.batch, cfg.crop, cfg.seed, micro)
        target = srgb_to_oklabp(clean.to(device))
        gen = seeded(cfg.seed, micro, 1, device)
        return darkroom.degrade(target, gen, cfg.strength), target

    def validate(self, ema, device) -> tuple[dict, float, str]:
        restore = model_method(ema, device)
        result = score(self.cases, restore)
        value = result["de2000_mean"]
        clean = score(self.clean, restore)["de2000_mean"]
        record = {"val_de2000": value, "val_de2000_p95": result["de2000_p95"], "val_psnr": result["psnr_db"],
                  "val_clean_de2000": clean}
        return record, value, f"CIEDE2000 {value:.3f}, on clean images {clean:.3f}"

    @property
    def columns(self) -> tuple[str, ...]:
        return ("degraded", "model", "clean")

    def sample_rows(self, ema, device, training_batch) -> tuple[list, list[str]]:
        """Before/after rows: validation cases if there are any, else a training batch."""
        restore = model_method(ema, device)
        if self.cases:
            pairs = [(c.given, c.clean, c.name) for c in self.cases[:4]]
        else:
            inp, target = training_batch
            pairs = [(oklabp_to_srgb(i[None].cpu())[0], oklabp_to_srgb(t[None].cpu())[0], f"train {n}")
                     for n, (i, t) in enumerate(zip(inp, target))]
        rows = [[x.permute(1, 2, 0).numpy() for x in (given, restore(given), clean)] for given, clean, _ in pairs]
        return rows, [name for _, _, name in pairs]

    def info(self, training: dict) -> CheckpointInfo:
        return CheckpointInfo(preset=self.cfg.preset_name, config=self.cfg.model_config, weights="ema",
                              training=training)

    def save(self, path, model, info) -> None:
        save_checkpoint(path, model, info, overwrite=True)  # the run's own last/best files
