"""ColorizeNet checkpoints: the same safetensors + JSON metadata format as BakeNet's
(bake_node.checkpoint), with ``"model": "colorize"`` so neither loader takes the other's file."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .checkpoint import FORMAT_VERSION, METADATA_KEY, _read_safetensors, file_sha256, save_checkpoint
from .models.colorize import ColorizeConfig, ColorizeNet
from .errors import CheckpointError

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
            "config": self.config.to_dict(), "weights": self.weights, "training": self.training,
            "working_space": WORKING_SPACE, "model_colourspace": MODEL_COLOURSPACE, "grey": GREY,
        }, sort_keys=True)


@dataclass
class LoadedColorize:
    model: ColorizeNet
    info: ColorizeInfo
    path: str
    sha256: str


def save_colorize(path, model: ColorizeNet, info: ColorizeInfo) -> None:
    save_checkpoint(path, model, info)  # atomic; only needs state_dict() and to_json()


def load_colorize(path) -> LoadedColorize:
    path = str(path)
    state, metadata = _read_safetensors(path)
    fix = "pass a colorize checkpoint written by `bake-seq train --model colorize`"
    if not metadata or METADATA_KEY not in metadata:
        raise CheckpointError(path, "safetensors file has no bake-seq metadata", fix)
    try:
        meta = json.loads(metadata[METADATA_KEY])
        if meta.get("model") != MODEL_NAME:
            raise CheckpointError(path, f"holds model {meta.get('model')!r}, not a colorize model", fix)
        if int(meta["format_version"]) > FORMAT_VERSION:
            raise CheckpointError(path, "format version is newer than this bake-seq understands", "upgrade bake-seq")
        info = ColorizeInfo(preset=meta.get("preset", "custom"), config=ColorizeConfig(**meta["config"]),
                            weights=meta.get("weights", "ema"), training=meta.get("training", {}))
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(path, f"bake-seq metadata is unreadable ({exc})", fix) from None
    model = ColorizeNet(info.config)
    own = model.state_dict()
    if set(own) != set(state) or any(state[k].shape != own[k].shape for k in own):
        raise CheckpointError(path, "weights do not match the colorize layout its metadata names",
                              "the file is damaged or was written by another version")
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return LoadedColorize(model=model, info=info, path=os.path.abspath(path), sha256=file_sha256(path))
