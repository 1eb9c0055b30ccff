"""Which task the training loop runs (train/loop.py asks; the tasks never import the loop)."""
from __future__ import annotations

from .bake_task import BakeTask
from .config import TrainConfig


def make_task(cfg: TrainConfig):
    if cfg.model == "colorize":
        from .colorize import ColorizeTask
        return ColorizeTask(cfg)
    if cfg.preset == "global":
        from .restore import GlobalTask
        return GlobalTask(cfg)
    return BakeTask(cfg)
