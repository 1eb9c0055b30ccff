"""The Colorize operator: a greyscale (or faded) plate -> colour, with damaged regions repaired.

sRGB -> OklabP lightness (the grey the model was trained on: for a grey plate, R = G = B, it is
exactly the plate's lightness) -> ColorizeNet (tiled, halo >= its receptive radius, tiles and
halo multiples of 2**levels) -> OklabP -> sRGB. Outside the damage the output keeps the input's
lightness exactly; the network adds a and b everywhere and fills L inside the damage.

Damage comes from, in this order: a mask handed to ``process`` (ComfyUI's MASK input), the
``mask`` knob (a frame pattern such as masks/####.png read per frame, or one file for every
frame; white = damaged), or, with ``detect_damage`` on, the network's own damage head.

``fill`` says where the lightness inside the damage comes from: ``model`` (the network's own
repair) or ``telea`` (OpenCV's Telea inpainting of the grey frame, whole frame at once, under the
network's colour). Either way the result does not depend on the tile size.
"""
from __future__ import annotations

import copy
import os
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import file_key
from ..colorize_checkpoint import LoadedColorize, load_colorize
from ..models.colorize import grey_lightness, model_input
from ..engine import auto_tile, deterministic_call, pick_device, run_tiled
from ..errors import CheckpointError
from ..inpaint import require_opencv, telea_fill
from ..contract import Knob, Operator
from ..palette import oklabp_to_srgb

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "weights" / "colorize-default.safetensors"
ACTIVATION_CHANNELS = 2  # x the width: auto_tile budgets 57 B x 2 x width per pixel (~1.8 KB at width 16; about twice our count of the U-Net's live tensors)

_CACHE: dict = {}


def load_cached(path: str) -> LoadedColorize:
    key = file_key(path, "checkpoint file not found", "check the --colorize-checkpoint path")
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_colorize(path)
    return _CACHE[key]


def mask_path(pattern: str, frame: int) -> str:
    """The mask file for ``frame``. A pattern without a frame token (####, @, %04d, $F) is one
    mask for all frames."""
    from bake_seq.sequences.pattern import FramePattern

    from ..render import has_padding_token

    return FramePattern.parse(pattern).path(frame) if has_padding_token(pattern) else pattern


def check_masks(pattern: str, frames: list[int]) -> None:
    """Every frame to render has its mask file, or one line names the first missing one."""
    from bake_seq.sequences.errors import PlateError

    missing = [n for n in frames if not os.path.isfile(mask_path(pattern, n))]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise PlateError(mask_path(pattern, missing[0]), f"mask for frame {missing[0]} not found{more}",
                         "give every rendered frame a mask (white = damaged), or drop --mask")


def read_mask(pattern: str, frame: int, shape: tuple[int, int]) -> np.ndarray:
    """The mask for ``frame``: H x W float32, 1 = damaged (a pixel whose colour channels average
    0.5 or more)."""
    from bake_seq.sequences.errors import PlateError
    from bake_seq.sequences.plate import read_plate

    check_masks(pattern, [frame])
    path = mask_path(pattern, frame)
    plate = read_plate(path, None)
    pixels = plate.pixels
    if plate.header.alpha_channel >= 0 and pixels.shape[2] > 1:
        pixels = np.delete(pixels, plate.header.alpha_channel, axis=2)
    if pixels.shape[:2] != tuple(shape):
        raise PlateError(path, f"mask is {pixels.shape[1]}x{pixels.shape[0]} but the frame is {shape[1]}x{shape[0]}",
                         "make the masks the plate's size")
    return (pixels.mean(axis=2) >= 0.5).astype(np.float32)


class Colorize(Operator):
    name = "colorize"
    label = "Colorize + Repair Damage"
    accepts_mask = True
    knobs = (
        Knob("colorize_checkpoint", "path", None,
             "colorize model (.safetensors from `bake-seq train --model colorize`); default: the shipped model"),
        Knob("mask", "path", None, "damage masks, white = damaged: a frame pattern such as masks/####.png read "
             "per frame, or one file for every frame; blank: no mask (see detect_damage)"),
        Knob("detect_damage", bool, True, "without a mask, let the model find damage and repair it; "
             "off: colourise only and keep every pixel's lightness"),
        Knob("chroma", float, -1.0, "colour strength: the network's a/b times this (0 = no colour: a repaired "
             "grey); -1 (default) = the checkpoint's calibrated value, chosen so colour made no held-out photo "
             "worse", min=-1.0, max=2.0),
        Knob("fill", "choice", "telea", "lightness inside the damage: telea (default: OpenCV's Telea inpainting "
             "of the grey frame, under the network's colour) or model (the network's own repair)",
             choices=("model", "telea")),
    )

    def prepare(self, settings: dict) -> None:
        super().prepare(settings)
        path = self.settings.get("colorize_checkpoint") or (str(DEFAULT_CHECKPOINT) if DEFAULT_CHECKPOINT.exists() else "")
        if not path:
            raise CheckpointError(None, "no colorize checkpoint given and no default model is installed",
                                  "pass --colorize-checkpoint FILE.safetensors")
        self.checkpoint = load_cached(path)
        self.settings["colorize_checkpoint"] = self.checkpoint.path
        self.device = pick_device(self.settings["device"])
        self.model = self.checkpoint.model.to(self.device)
        config = self.checkpoint.info.config
        if self.settings["chroma"] >= 0 and self.settings["chroma"] != config.chroma:
            # a shallow copy: the same weights (shared with the cache), another colour strength
            self.model = copy.copy(self.model)
            self.model.config = replace(config, chroma=float(self.settings["chroma"]))
        self.multiple, self.halo = config.multiple, config.halo
        self._lock = threading.Lock()
        if self.settings["fill"] == "telea":
            require_opencv()  # a missing OpenCV is one line now, not after the first frame's model pass

    def fingerprint(self) -> dict:
        # The mask *pattern* is part of it; edits to mask files are not seen (re-render with --overwrite).
        return {"op": self.name, "checkpoint_sha256": self.checkpoint.sha256, "preset": self.checkpoint.info.preset,
                "mask": self.settings.get("mask") or None, "detect_damage": bool(self.settings["detect_damage"]),
                "fill": self.settings["fill"], "chroma": self.model.config.chroma}

    def check_frames(self, frames: list[int]) -> None:
        if self.settings.get("mask"):
            check_masks(self.settings["mask"], frames)

    def tile_size(self, height: int, width: int) -> int:
        """A multiple of 2**levels (0 = whole frame): tiles then line up with the frame's pooling grid."""
        tile = self.settings["tile"] or auto_tile(height, width, self.halo,
                                                  ACTIVATION_CHANNELS * self.checkpoint.info.config.width, self.device)
        if tile <= 0 or tile >= max(height, width):
            return 0
        return max(self.multiple, tile // self.multiple * self.multiple)

    @deterministic_call
    def process(self, rgb: np.ndarray, frame: int, mask: np.ndarray | None = None) -> np.ndarray:
        height, width = rgb.shape[:2]
        if mask is None and self.settings.get("mask"):
            mask = read_mask(self.settings["mask"], frame, (height, width))
        lightness = grey_lightness(torch.from_numpy(np.clip(rgb, 0.0, 1.0)).permute(2, 0, 1)[None])
        if mask is not None:
            damage = torch.from_numpy((np.asarray(mask, np.float32) >= 0.5).astype(np.float32))[None, None]
            x = model_input(lightness, damage)
        elif self.settings["detect_damage"]:
            x = model_input(lightness, None)
        else:  # "no damage here": colour only
            x = model_input(lightness, torch.zeros_like(lightness))
        with self._lock:  # one model, one frame at a time
            raw = run_tiled(self.model, x, self.tile_size(height, width), self.halo, self.device, self.on_tile)
        lab = raw[:, :3].contiguous()  # OklabP; channel 3 is the damage logit
        if self.settings["fill"] == "telea":  # whole frame: the fill needs the whole damage first
            # the damage the network's lightness was composited with: the given mask, or the damage head
            damage = x[0, 1] if float(x[0, 2, 0, 0]) > 0.5 else (raw[0, 3] > 0).float()
            filled = telea_fill(((lightness[0, 0] + 1) / 2).numpy(), damage.numpy())
            lab[0, 0] = torch.where(damage > 0.5, torch.from_numpy(filled) * 2 - 1, lightness[0, 0])
        out = np.empty((height, width, 3), np.float32)
        for top in range(0, height, 256):  # rows at a time: no whole-frame float64 copy
            rows = oklabp_to_srgb(lab[:, :, top:top + 256].double()).float()
            out[top:top + 256] = rows[0].permute(1, 2, 0).numpy()
        return out
