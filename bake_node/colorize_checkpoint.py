"""ColorizeNet checkpoints: the same safetensors + JSON metadata format as BakeNet's, read by
the same reader (bake_node.checkpoint.read_checkpoint), with ``"model": "colorize"`` so neither
loader takes the other's file."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .checkpoint import FORMAT_VERSION, architecture_of, file_sha256, read_checkpoint, save_checkpoint
from .models.colorize import ColorizeConfig, ColorizeNet

MODEL_NAME = "colorize"
WORKING_SPACE = "OklabP"
MODEL_COLOURSPACE = "sRGB Encoded Rec.709 (sRGB)"
GREY = "OklabP L of the sRGB frame (the neutral grey with the same Oklab lightness)"


@dataclass
class ColorizeInfo:
    preset: str
    config: ColorizeConfig
    weights: str = "ema"
    training: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps({
            "format_version": self.format_version, "model": MODEL_NAME, "preset": self.preset,
            "architecture": architecture_of(self.config),
            "config": self.config.to_dict(), "weights": self.weights, "training": self.training,
            "working_space": WORKING_SPACE, "model_colourspace": MODEL_COLOURSPACE, "grey": GREY,
        }, sort_keys=True)


@dataclass
class LoadedColorize:
    model: ColorizeNet
    info: ColorizeInfo
    path: str
    sha256: str


def save_colorize(path, model: ColorizeNet, info: ColorizeInfo, **target) -> None:
    save_checkpoint(path, model, info, **target)  # only needs state_dict() and to_json()


def load_colorize(path) -> LoadedColorize:
    path = str(path)
    model, meta, config = read_checkpoint(path, MODEL_NAME, "pass a colorize checkpoint written by "
                                          "`bake-seq train --model colorize`")
    info = ColorizeInfo(preset=meta.get("preset", "custom"), config=config, weights=meta.get("weights", "ema"),
                        training=meta.get("training", {}))
    return LoadedColorize(model=model, info=info, path=os.path.abspath(path), sha256=file_sha256(path))
