"""The Zoo operator: a user-supplied SwinIR / Real-ESRGAN / GFPGAN / CodeFormer model (spandrel).

working sRGB -> clip to [0, 1] -> model (blended tiles) -> [+ resampled excess] -> working sRGB.
The render path converts plate -> working space and back with OCIO, as for Bake. Knobs are named
``weights`` and ``zoo_*`` because the CLI makes one option per knob name across all operators.

Face models (GFPGAN, CodeFormer) have no face detection or alignment here: they run on 512 x 512
tiles of the frame, which is right for pre-aligned face crops and face plates, not for wide shots.
"""
from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

from ..engine import deterministic_call, pick_device, run_blended
from ..contract import Knob, Operator
from ..zoo import PRECISIONS, ZooModel, load_cached, placed, run_model

RANGE_POLICIES = ("preserve", "clip")
ALPHA_MODES = ("resize", "model")
CPU_WHOLE_FRAME = 512 * 512  # on the CPU, larger frames go in 512 px tiles (no OOM to fall back on)
CPU_TILE = 512


class Zoo(Operator):
    name = "zoo"
    label = "Zoo: Super-Resolution / Face Restore"
    knobs = (
        Knob("weights", "path", None, "model weights (.safetensors, or .pth/.pt read with weights_only): "
             "SwinIR, Real-ESRGAN (RRDB, Compact), GFPGAN, CodeFormer; none ship with bake-seq. Face "
             "models have no face detection: they run on 512x512 tiles (use aligned face crops)"),
        Knob("zoo_range_policy", "choice", "preserve", "values outside the model's [0,1] sRGB domain: "
             "'preserve' adds the clipped excess back (resampled to the output size; right for "
             "scene-linear/HDR plates and float outputs), 'clip' keeps the model's [0,1] result "
             "(right for display-referred plates and integer outputs)", choices=RANGE_POLICIES),
        Knob("zoo_overlap", int, 32, "overlap of neighbouring tiles in input pixels; outputs are "
             "blended with a cosine window (raise it for SwinIR/GAN seams)", min=0, max=1024),
        Knob("zoo_alpha", "choice", "resize", "how alpha reaches the output size: 'resize' (bicubic, "
             "within the input alpha's range; unchanged at scale 1) or 'model' (alpha run through "
             "the model as grey; slower, sharper mattes)", choices=ALPHA_MODES),
        Knob("zoo_precision", "choice", "fp32", "model arithmetic: fp32 (default) or opt-in fp16/bf16 "
             "where the architecture supports it", choices=tuple(PRECISIONS)),
    )

    def prepare(self, settings: dict) -> None:
        super().prepare(settings)
        self.zoo: ZooModel = load_cached(self.settings.get("weights"))
        self.settings["weights"] = self.zoo.path
        self.device = pick_device(self.settings["device"])
        self.model = placed(self.zoo, self.device, self.settings["zoo_precision"])
        self.dtype = PRECISIONS[self.settings["zoo_precision"]]
        self.scale = self.zoo.scale
        self._lock = threading.Lock()

    def fingerprint(self) -> dict:
        # Tile size is in: blended tiles of a non-local model change its pixels (docs/zoo.md).
        return {"op": self.name, "weights_sha256": self.zoo.sha256, "arch": self.zoo.arch,
                "scale": self.scale, "tile": self.settings["tile"],
                **{k: self.settings[k] for k in ("zoo_range_policy", "zoo_overlap", "zoo_alpha", "zoo_precision")}}

    def auto_tile(self, height: int, width: int) -> int:
        """--tile 0: the whole frame on CUDA (halved on out-of-memory) and for small frames on
        the CPU; 512 px tiles for larger CPU frames. Fixed-size models always take their size."""
        if self.zoo.fixed_input or self.model.tiling.name == "INTERNAL":
            return 0
        if self.device.type == "cpu" and height * width > CPU_WHOLE_FRAME:
            return CPU_TILE
        return 0

    def _call(self, crop: torch.Tensor) -> torch.Tensor:
        # spandrel pads to the size requirements (reflect, then replicate) and crops back,
        # and clamps the output to [0, 1].
        return run_model(self.model, crop.to(self.dtype))

    def run(self, image: torch.Tensor) -> torch.Tensor:
        """N,3,H,W in [0, 1] (CPU) -> N,3,H*scale,W*scale (CPU, float32)."""
        _, _, height, width = image.shape
        tile = self.settings["tile"] or self.auto_tile(height, width)
        with self._lock:  # one model, one frame at a time
            return run_blended(self._call, image, tile, self.settings["zoo_overlap"], self.scale,
                               self.device, self.zoo.align, self.zoo.fixed_input)

    def resize(self, image: torch.Tensor, mode: str) -> torch.Tensor:
        if self.scale == 1:
            return image
        return F.interpolate(image, scale_factor=self.scale, mode=mode, align_corners=False)

    @deterministic_call
    def process(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        clamped = np.clip(rgb, 0.0, 1.0)
        result = self.run(torch.from_numpy(clamped).permute(2, 0, 1).unsqueeze(0))
        out = np.ascontiguousarray(result[0].permute(1, 2, 0).numpy())
        if self.settings["zoo_range_policy"] == "preserve":
            excess = np.subtract(rgb, clamped, out=clamped)
            if excess.any():  # bilinear: no overshoot, so the excess keeps its sign and size
                out += self.resize(torch.from_numpy(excess).permute(2, 0, 1)[None], "bilinear")[0] \
                    .permute(1, 2, 0).numpy()
        return out

    @deterministic_call
    def process_alpha(self, alpha: np.ndarray, frame: int) -> np.ndarray:
        if self.settings["zoo_alpha"] == "model":
            grey = torch.from_numpy(np.clip(alpha, 0.0, 1.0)).expand(1, 3, *alpha.shape)
            return np.ascontiguousarray(self.run(grey.contiguous()).mean(dim=1)[0].numpy())
        if self.scale == 1:
            return alpha
        resized = self.resize(torch.from_numpy(np.ascontiguousarray(alpha))[None, None], "bicubic")
        return np.ascontiguousarray(resized[0, 0].clamp(float(alpha.min()), float(alpha.max())).numpy())
