"""The Bake colour-restoration operator: sRGB -> OklabP -> BakeNet (tiled) -> OklabP -> sRGB."""
from __future__ import annotations

import copy
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import LoadedCheckpoint, file_key, load_checkpoint
from ..engine import auto_tile, deterministic_call, pick_device, run_tiled
from ..errors import CheckpointError, SettingsError
from ..models.bakenet_fast import FastBakeNet
from ..models.bakenet_global import BakeNetGlobal, thumbnail
from ..models.shot import ShotCorrection
from ..contract import Knob, Operator
from ..palette import oklabp_to_srgb, restore_srgb, srgb_to_oklabp
from .. import temporal
from ..shot_grade import TEMPORAL_MODES, ShotGrade, combine, effective_mode, is_lut, load_grade

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS / "bakenet-default.safetensors"  # the global preset
CPU_CHECKPOINT = WEIGHTS / "bakenet-cpu.safetensors"  # the previous default (per-pixel `cpu` preset)

RANGE_POLICIES = ("preserve", "clip")
GLOBAL_TILE = 512  # the global model's default tile (results do not depend on it)
PRECISIONS = ("fp32", "bf16")
FOLLOW_MODES = ("auto", "off")


def default_checkpoint() -> str:
    return str(DEFAULT_CHECKPOINT) if DEFAULT_CHECKPOINT.exists() else ""


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, size: int) -> LoadedCheckpoint:
    # Keyed on mtime and size too: a re-trained checkpoint under the same name reloads.
    return load_checkpoint(path)


def load_cached(path: str) -> LoadedCheckpoint:
    return _cached(*file_key(path, "checkpoint file not found", "check the --checkpoint path"))


_FAST: dict = {}


def inference_model(checkpoint: LoadedCheckpoint, device: torch.device) -> FastBakeNet | BakeNetGlobal | ShotCorrection:
    """The inference form (fused for the convolutional BakeNet, also inside a learned shot
    correction), built once per checkpoint and device (hosts call repeatedly)."""
    key = (checkpoint.sha256, str(device))
    if key not in _FAST:
        _FAST.clear()
        model = checkpoint.model
        if isinstance(model, ShotCorrection) and model.local is not None:
            model = copy.copy(model)  # the loaded checkpoint keeps its trainable form
            model._modules = {**model._modules, "local": FastBakeNet(model.local)}
        elif not isinstance(model, (BakeNetGlobal, ShotCorrection)):
            model = FastBakeNet(model)
        _FAST[key] = model.to(device)
    return _FAST[key]


def apply_range_policy(result: np.ndarray, source: np.ndarray, clamped: np.ndarray, policy: str) -> np.ndarray:
    """The model's domain is [0, 1]. 'preserve' adds back what clamping removed (highlights above
    1, negatives from wide-gamut or scene-linear plates), so float outputs lose nothing;
    'clip' returns the model's [0, 1] result."""
    if policy == "preserve":  # in place: on 4K plates every frame-sized temporary counts
        result += np.subtract(source, clamped, out=clamped)
    return result


def to_image(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 float32 -> 1 x 3 x H x W (a view: no copy)."""
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)


def grade_form(config) -> dict:
    """What a grade record must match to be applied by this model: the grade's own form."""
    return {k: getattr(config, k) for k in ("curve_knots", "toning_knots", "harmonics")}


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
        Knob("temporal", "choice", "auto", "how often the global model's correction is estimated: "
             "'shot' once from every frame rendered (no flicker), 'window' per frame over --window "
             "frames centred on it (light that really changes), 'frame' from each frame alone; "
             "auto = shot for the global model, frame for the per-pixel presets", choices=TEMPORAL_MODES),
        Knob("window", int, 9, "frames averaged per frame with --temporal window (centred; shorter at "
             "the shot's ends)", min=1, max=10001),
        Knob("grade", "path", None, "apply this correction instead of estimating one: a grade record "
             "(.json written by `bake-seq grade`, exact) or a 3D LUT (.cube/.clf/.spi3d, e.g. edited by a "
             "colourist; its .json sidecar names the colour space it expects, else the working space)"),
        Knob("follow", "choice", "auto", "corrections learned from keyframes (`bake-seq learn`): 'auto' measures "
             "the plate's own colour change from frame to frame and corrects each frame as its nearest keys "
             "would after that change (light that drifts, flickers or ramps between keys; a plate whose colour "
             "stays put renders as with 'off'); 'off' blends the keys by frame distance", choices=FOLLOW_MODES),
        Knob("follow_analysis", "path", None, "with --follow auto: the plate's colour change from this stored "
             "analysis (.json from `bake-seq info --temporal --write` or `submit`) instead of measuring it"),
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
        self.model = inference_model(self.checkpoint, self.device)
        self.halo = self.checkpoint.info.config.receptive_radius
        self.is_global = isinstance(self.model, BakeNetGlobal)
        self.is_shot = isinstance(self.model, ShotCorrection)  # learned from keyframes: nothing to estimate
        self._lock = threading.Lock()
        self.temporal = effective_mode(self.settings["temporal"], self.is_global)
        if self.temporal != "frame" and not self.is_global:
            name = Path(self.checkpoint.path).name
            what = ("a correction learned from keyframes (the same for every frame, blended between keys)"
                    if self.is_shot else f"the per-pixel {self.checkpoint.info.preset} preset")
            raise SettingsError(None, f"--temporal {self.temporal} needs the global BakeNet; {name} is {what}",
                                "drop --temporal or use the default model")
        self.analysis: temporal.Analysis | None = None  # the plate's own colour change (--follow)
        self.follow: temporal.Follow | None = None
        if self.is_shot and self.following and self.settings.get("follow_analysis"):
            self._use_analysis(temporal.load_analysis(self.settings["follow_analysis"]))
        self.shot_grade: ShotGrade | None = None
        self.lut = None  # (OCIO processor, LUT colour space, file sha256) for a LUT --grade
        if self.settings.get("grade"):
            self._load_grade(self.settings["grade"])

    def _load_grade(self, path: str) -> None:
        if not self.is_global:
            raise SettingsError(path, "a --grade file needs the global BakeNet (the default model)",
                                "drop --checkpoint or --grade")
        if is_lut(path):
            from ..lut import open_lut
            self.lut = open_lut(path)
        else:
            config = self.model.config
            self.shot_grade = load_grade(path, config.grade_parameters, grade_form(config))
            self.temporal = self.shot_grade.temporal

    @classmethod
    def may_need_shot(cls, settings: dict) -> bool:
        from ..checkpoint import architecture_in

        if (settings.get("temporal") or "auto") != "frame" and not settings.get("grade"):
            return True
        path = settings.get("checkpoint")  # a learned correction follows the plate (read from its header)
        return bool(path) and (settings.get("follow") or "auto") == "auto" and not settings.get("follow_analysis") \
            and architecture_in(path) == "shot"

    @property
    def following(self) -> bool:
        return self.settings.get("follow") != "off"

    @property
    def needs_shot(self) -> bool:
        """True when every frame of a shot must be seen (``analyse``, once per shot) before its
        first result: a shot/window mode whose correction is not given as a file, or a learned
        correction that follows the plate's colour change, not given as a stored analysis."""
        if self.is_shot:
            return self.following and not self.settings.get("follow_analysis")
        return self.temporal != "frame" and not self.settings.get("grade")

    def shot_frames(self, frames: list[int], available: list[int]) -> list[int]:
        """A learned correction follows the plate from its keys: the analysis spans the keys too."""
        if not self.is_shot or not frames:
            return frames
        keys = self.model.config.frames
        low, high = min(min(frames), keys[0]), max(max(frames), keys[-1])
        return sorted({n for n in available if low <= n <= high} | set(frames))

    def _use_analysis(self, analysis: temporal.Analysis) -> None:
        self.analysis = analysis
        self.follow = temporal.follow(analysis, self.model.config.frames)

    @deterministic_call
    def analyse(self, frames: list[int], read) -> ShotGrade | temporal.Analysis:
        """Estimate the shot's correction: every frame's grade (``read(n)`` gives frame n as
        working-space RGB), combined by the temporal mode. Only thumbnails are kept. A learned
        correction measures the plate's own colour change instead (bake_node/temporal.py)."""
        if self.is_shot:
            self._use_analysis(temporal.analyse_frames(frames, read))
            return self.analysis
        rows = [self.frame_grade(to_image(np.clip(read(n), 0.0, 1.0)))[0].cpu().numpy() for n in frames]
        window = self.settings["window"]
        config = self.model.config
        params = combine(np.stack(rows) if rows else np.zeros((0, config.grade_parameters), np.float32),
                         self.temporal, window)
        self.shot_grade = ShotGrade(self.temporal, window if self.temporal == "window" else 0, tuple(frames),
                                    params, grade_form(config),
                                    {"model": "bakenet", "preset": self.checkpoint.info.preset,
                                     "checkpoint": Path(self.checkpoint.path).name,
                                     "checkpoint_sha256": self.checkpoint.sha256})
        return self.shot_grade

    def describe_shot(self, frames: list[int]) -> str:
        if self.is_shot:
            return f"measuring the plate's colour change over {len(frames)} frames (--follow auto)"
        return f"estimating one correction ({self.temporal}) from {len(frames)} frames"

    def store_shot(self, folder: str, about: dict) -> tuple[str, str]:
        from dataclasses import replace

        if self.is_shot:
            return "follow_analysis", temporal.store_analysis(folder, self.analysis, about)

        from ..shot_grade import save_grade

        grade = self.shot_grade
        path = os.path.join(folder, f"grade-{grade.sha256}.json")
        save_grade(path, replace(grade, about={**grade.about, **about}))
        return "grade", path

    def check_frames(self, frames: list[int]) -> None:
        if self.shot_grade is not None:  # a given record must cover every frame, before any is written
            for n in frames:
                self.shot_grade.for_frame(n, self.settings.get("grade"))

    def fingerprint(self) -> dict:
        found = {"op": self.name, "checkpoint_sha256": self.checkpoint.sha256,
                 "preset": self.checkpoint.info.preset, "range_policy": self.settings["range_policy"],
                 "precision": self.settings["precision"]}
        if self.is_global:
            found["temporal"] = self.temporal
        if self.shot_grade is not None:
            found["grade_sha256"] = self.shot_grade.sha256
        if self.is_shot:
            found["follow"] = self.settings.get("follow")
            if self.analysis is not None:
                found["follow_sha256"] = temporal.analysis_sha256(self.analysis)
        if self.lut is not None:
            found["grade_lut"] = {"sha256": self.lut.sha256, "colorspace": self.lut.colorspace}
        return found

    def _run_model(self, lab: torch.Tensor) -> torch.Tensor:
        bf16 = self.settings["precision"] == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self.model(lab)

    def _restore(self, srgb: torch.Tensor) -> torch.Tensor:
        # Per tile, so no whole-frame float64 copies exist (bounded memory on 4K plates).
        return restore_srgb(self._run_model, srgb)

    @deterministic_call
    def process(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        if self.lut is not None:  # the LUT holds the whole per-pixel path, range policy included
            return self.lut.apply(rgb)
        clamped = np.clip(rgb, 0.0, 1.0)
        image = to_image(clamped)
        height, width = rgb.shape[:2]
        with self._lock:  # one model, one frame at a time
            if self.is_global:
                result = self._process_global(image, frame)
            elif self.is_shot:
                tile = self.settings["tile"] or (GLOBAL_TILE if not self.halo else auto_tile(
                    height, width, self.halo, self.model.config.local_dim, self.device))
                result = run_tiled(self._shot_tile(frame), image, tile, self.halo, self.device, self.on_tile)
            else:
                tile = self.settings["tile"] or auto_tile(height, width, self.halo,
                                                          self.checkpoint.info.config.dim, self.device)
                result = run_tiled(self._restore, image, tile, self.halo, self.device, self.on_tile)
        result = result[0].permute(1, 2, 0).numpy()  # channels-last storage: already H x W x 3
        return apply_range_policy(result, rgb, clamped, self.settings["range_policy"])

    def _shot_tile(self, frame: int):
        """A learned correction's per-tile function for ``frame``: the keys' blend by frame
        distance, or with --follow each key's correction of the frame's pixels brought to that
        key frame's colour by the plate's measured change (identity changes: the blend itself,
        in the same arithmetic)."""
        if self.follow is None and self.following:  # a given --follow-analysis was loaded by prepare
            raise SettingsError(None, "--follow auto needs the plate's colour change before the first frame",
                                "the host must call analyse() first (or pass --follow off)")
        plan = self.follow.for_frame(frame, self.model.config.frames) if self.follow is not None else None
        if plan is None or all(change == temporal.IDENTITY for _, _, change in plan):
            return lambda srgb: restore_srgb(lambda lab: self.model(lab, frame), srgb)
        model = self.model

        def tile(srgb: torch.Tensor) -> torch.Tensor:
            out = 0
            for key, weight, change in plan:
                moved = temporal.apply_tensor(change, srgb).clamp(0.0, 1.0)
                out = out + weight * model.colour(key, srgb_to_oklabp(moved.double()).float())
            if model.local is not None:
                out = model.local(out)
            return oklabp_to_srgb(out.double()).float()
        return tile

    def frame_grade(self, image: torch.Tensor) -> torch.Tensor:
        """The global model's colour transform for one whole frame (1,3,H,W sRGB): estimated
        once from the frame's thumbnail, so no tile ever sees a different one."""
        with torch.inference_mode():
            return self.model.estimate(thumbnail(image, self.model.config.thumb).to(self.device))

    def _process_global(self, image: torch.Tensor, frame: int) -> torch.Tensor:
        if self.shot_grade is not None:
            grade = torch.from_numpy(self.shot_grade.for_frame(frame, self.settings.get("grade")))[None]
            grade = grade.to(self.device)
        elif self.temporal != "frame":
            raise SettingsError(None, f"--temporal {self.temporal} needs the whole shot before the first frame",
                                "the host must call analyse() first (or pass --temporal frame)")
        else:
            grade = self.frame_grade(image)
        # A colour function per pixel: no halo, and the tile only sets how much of the frame each
        # elementwise pass touches at once (512 px tiles stay in cache: 0.65 s per 2K frame on
        # 2 cores against 0.84 s for the memory-budget tile, measured in one run).
        tile = self.settings["tile"] or GLOBAL_TILE
        grade = grade.float()
        return run_tiled(lambda srgb: self.model.apply_srgb(grade, srgb.float()), image, tile, 0, self.device,
                         self.on_tile)
