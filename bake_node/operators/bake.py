"""The Bake colour-restoration operator: sRGB -> OklabP -> BakeNet (tiled) -> OklabP -> sRGB."""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import LoadedCheckpoint, file_key, load_checkpoint
from ..engine import auto_tile, make_deterministic, pick_device, run_tiled
from ..errors import CheckpointError
from ..models.bakenet_fast import FastBakeNet
from ..models.bakenet_global import BakeNetGlobal, thumbnail
from ..node import Knob, Operator, register
from ..palette import restore_srgb

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS / "bakenet-default.safetensors"  # the global preset
CPU_CHECKPOINT = WEIGHTS / "bakenet-cpu.safetensors"  # the previous default (per-pixel `cpu` preset)

RANGE_POLICIES = ("preserve", "clip")
GLOBAL_TILE = 512  # the global model's default tile (results do not depend on it)
PRECISIONS = ("fp32", "bf16")


def default_checkpoint() -> str:
    return str(DEFAULT_CHECKPOINT) if DEFAULT_CHECKPOINT.exists() else ""


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, size: int) -> LoadedCheckpoint:
    # Keyed on mtime and size too: a re-trained checkpoint under the same name reloads.
    return load_checkpoint(path)


def load_cached(path: str) -> LoadedCheckpoint:
    return _cached(*file_key(path, "checkpoint file not found", "check the --checkpoint path"))


_FAST: dict = {}


def inference_model(checkpoint: LoadedCheckpoint, device: torch.device) -> FastBakeNet | BakeNetGlobal:
    """The inference form (fused for the convolutional BakeNet), built once per checkpoint and
    device (hosts call repeatedly)."""
    key = (checkpoint.sha256, str(device))
    if key not in _FAST:
        _FAST.clear()
        model = checkpoint.model
        _FAST[key] = (model if isinstance(model, BakeNetGlobal) else FastBakeNet(model)).to(device)
    return _FAST[key]


def apply_range_policy(result: np.ndarray, source: np.ndarray, clamped: np.ndarray, policy: str) -> np.ndarray:
    """The model's domain is [0, 1]. 'preserve' adds back what clamping removed (highlights above
    1, negatives from wide-gamut or scene-linear plates), so float outputs lose nothing;
    'clip' returns the model's [0, 1] result."""
    if policy == "preserve":  # in place: on 4K plates every frame-sized temporary counts
        result += np.subtract(source, clamped, out=clamped)
    return result


@register
class Bake(Operator):
    name = "bake"
    label = "Bake Colour Restore"
    knobs = (
        Knob("checkpoint", "path", None, "BakeNet checkpoint (.safetensors); default: the shipped model"),
        Knob("precision", "choice", "fp32", "model arithmetic of the per-pixel presets: fp32 (default, "
             "exact) or bf16 (opt-in; costs ~0.01 CIEDE2000, gave no speed-up on the 2-core CPU measured, "
             "see README); the global model always runs fp32", choices=PRECISIONS),
        Knob("range_policy", "choice", "preserve", "values outside the model's [0,1] domain: "
             "'preserve' passes the excess through unchanged, 'clip' drops it", choices=RANGE_POLICIES),
    )

    def prepare(self, settings: dict) -> None:
        super().prepare(settings)
        path = self.settings.get("checkpoint") or default_checkpoint()
        if not path:
            raise CheckpointError(None, "no checkpoint given and no default model is installed",
                                  "pass --checkpoint FILE.safetensors")
        self.checkpoint = load_cached(path)
        self.settings["checkpoint"] = self.checkpoint.path
        self.device = pick_device(self.settings["device"])
        make_deterministic()
        self.model = inference_model(self.checkpoint, self.device)
        self.halo = self.checkpoint.info.config.receptive_radius
        self.is_global = isinstance(self.model, BakeNetGlobal)
        self._lock = threading.Lock()

    def fingerprint(self) -> dict:
        return {"op": self.name, "checkpoint_sha256": self.checkpoint.sha256,
                "preset": self.checkpoint.info.preset, "range_policy": self.settings["range_policy"],
                "precision": self.settings["precision"]}

    def _run_model(self, lab: torch.Tensor) -> torch.Tensor:
        bf16 = self.settings["precision"] == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self.model(lab)

    def _restore(self, srgb: torch.Tensor) -> torch.Tensor:
        # Per tile, so no whole-frame float64 copies exist (bounded memory on 4K plates).
        return restore_srgb(self._run_model, srgb)

    def process(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        clamped = np.clip(rgb, 0.0, 1.0)
        image = torch.from_numpy(clamped).permute(2, 0, 1).unsqueeze(0)
        height, width = rgb.shape[:2]
        with self._lock:  # one model, one frame at a time
            if self.is_global:
                result = self._process_global(image)
            else:
                tile = self.settings["tile"] or auto_tile(height, width, self.halo,
                                                          self.checkpoint.info.config.dim, self.device)
                result = run_tiled(self._restore, image, tile, self.halo, self.device)
        result = result[0].permute(1, 2, 0).numpy()  # channels-last storage: already H x W x 3
        return apply_range_policy(result, rgb, clamped, self.settings["range_policy"])

    def frame_grade(self, image: torch.Tensor) -> torch.Tensor:
        """The global model's colour transform for one whole frame (1,3,H,W sRGB): estimated
        once from the frame's thumbnail, so no tile ever sees a different one."""
        with torch.inference_mode():
            return self.model.estimate(thumbnail(image, self.model.config.thumb).to(self.device))

    def _process_global(self, image: torch.Tensor) -> torch.Tensor:
        grade = self.frame_grade(image)
        # A colour function per pixel: no halo, and the tile only sets how much of the frame each
        # elementwise pass touches at once (512 px tiles stay in cache: 0.65 s per 2K frame on
        # 2 cores against 0.84 s for the memory-budget tile, measured in one run).
        tile = self.settings["tile"] or GLOBAL_TILE
        return run_tiled(lambda srgb: restore_srgb(lambda lab: self.model.apply(grade, lab), srgb),
                         image, tile, 0, self.device)
