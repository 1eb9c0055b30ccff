"""Training settings: one dataclass holding the reference recipe (spec/bakenet.md section 6).

A YAML file overrides the defaults, command-line flags override the file. Unknown keys are an
error (a typo must not silently train with the default).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

from bake_node.models import colorize as colorize_model
from bake_node.errors import SettingsError
from bake_node.models.bakenet import PRESETS, BakeNetConfig
from bake_node.models.bakenet_global import PRESETS as GLOBAL_PRESETS
from bake_node.models.bakenet_global import GlobalConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# The models `bake-seq train --model` trains: their presets, losses and default preset/loss.
MODEL_PRESETS = {"bakenet": {**PRESETS, **GLOBAL_PRESETS}, "colorize": colorize_model.PRESETS}
MODEL_LOSSES = {"bakenet": ("heo", "hyper", "distance"), "colorize": ("l1+ssim", "l2ab+ssim")}
MODEL_DEFAULTS = {"bakenet": ("v5", "heo"), "colorize": ("small", "l1+ssim")}


@dataclass
class TrainConfig:
    # data
    data: str | None = None  # folder of clean training images (searched recursively)
    val_data: str | None = None  # held-out clean images for validation (optional)
    run: str = "runs/bakenet"  # checkpoints, logs, plots go here
    ocio: str | None = None  # OCIO config; default $OCIO, else the pinned built-in one
    input_colorspace: str | None = None  # default: guessed per file like `bake-seq render`
    bit_depth: int | None = None  # code range of integer images; default: each file's header
    downscale: str | int = "auto"  # auto = /2 (long side < 3840), /3 (>= 3840), /6 (>= 7680)
    extra_downscale: list | None = None  # also train on a copy of every image down-scaled further by each factor
    crop: int = 256
    # model and loss
    model: str = "bakenet"  # bakenet (colour restoration) or colorize (greyscale + damage, issue 9)
    preset: str | None = None  # default: v5 for bakenet, small for colorize
    dim: int | None = None  # override the preset's width/depth (the preset is then recorded as "custom");
    depth: int | None = None  # for colorize: dim = width at full resolution, depth = levels
    loss: str | None = None  # bakenet: heo = 3-ch HeoLoss (the reference v5 code, default), hyper = 96-ch
    # projection; colorize: l1+ssim (L1 on OklabP + SSIM on sRGB + BCE on the damage head) or
    # l2ab+ssim (the same with squared error on a/b: the conditional mean, desaturates when unsure)
    strength: float = 0.12  # darkroom strength s (bakenet)
    families: dict | None = None  # global preset: share of samples per degradation family (train/grades.py)
    ssim_weight: float = 1.0  # colorize: weight of 1 - SSIM
    ab_weight: float = 4.0  # colorize, loss l2ab+ssim: weight of the squared a/b error
    mask_weight: float = 0.2  # colorize: weight of the damage head's BCE
    mask_given: float = 0.5  # colorize: share of samples whose mask is given (the rest: find the damage)
    clean_fraction: float = 0.1  # colorize: share of samples with no damage at all
    # optimiser (the reference code's values; its README says lr 1e-3)
    lr: float = 1e-4
    weight_decay: float = 1e-6
    warmup_epochs: int = 100  # linear warm-up from 0.01 x lr over this many epochs' worth of steps
    warmup_start: float = 0.01
    lr_decay: float = 0.999996  # per optimiser step after the warm-up
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay min(ema_decay, (1+t)/(10+t)): see docs/training.md
    batch: int = 4
    accum: int = 1  # gradient accumulation: optimiser step every `accum` batches
    seed: int = 42
    init: str | None = None  # start from this checkpoint's weights (same model and config); optimiser fresh
    # length (an epoch = one pass over the training images)
    epochs: int | None = None
    steps: int | None = None  # optimiser steps; the first of epochs/steps reached ends the run
    max_minutes: float | None = None  # also stop (with a checkpoint) after this much wall time in this process
    # feedback
    val_every: int = 500  # optimiser steps between validations (0 = only at the end)
    val_crop: int = 256  # centre crop of each held-out image (0 = whole image)
    val_cases: int = 2  # fixed-seed degradations per held-out image
    sample_every: int = 500  # steps between before/after sample grids (0 = never)
    plot_every: int = 50  # steps between loss-curve redraws
    # machine
    device: str = "auto"
    threads: int = 0  # torch CPU threads (0 = torch's default)

    def __post_init__(self):
        if self.model not in MODEL_PRESETS:
            raise SettingsError(None, f"unknown model {self.model!r}", f"use one of {', '.join(MODEL_PRESETS)}")
        default_preset, default_loss = MODEL_DEFAULTS[self.model]
        self.preset = self.preset or default_preset
        self.loss = self.loss or ("distance" if self.preset in GLOBAL_PRESETS else default_loss)
        presets = MODEL_PRESETS[self.model]
        if self.preset not in presets:
            raise SettingsError(None, f"unknown {self.model} preset {self.preset!r}", f"use one of {', '.join(presets)}")
        if (self.loss == "distance") != (self.preset in GLOBAL_PRESETS) or self.loss not in MODEL_LOSSES[self.model]:
            raise SettingsError(None, f"unknown loss {self.loss!r}",
                                ("use distance (per-pixel OklabP distance) for the global preset" if self.preset in GLOBAL_PRESETS
                                 else "use heo (3-ch) or hyper (96-ch)") if self.model == "bakenet" else "use l1+ssim or l2ab+ssim")
        if self.families is not None:
            from .grades import FAMILIES
            if (not isinstance(self.families, dict) or set(self.families) - set(FAMILIES)
                    or not all(isinstance(v, (int, float)) and v >= 0 for v in self.families.values())
                    or not sum(self.families.values()) > 0):
                raise SettingsError(None, f"families must map family names ({', '.join(FAMILIES)}) to shares >= 0",
                                    "e.g. families: {clean: 0.2, darkroom: 0.3, cdl: 0.5}")
        if self.downscale != "auto" and (not str(self.downscale).isdigit() or int(self.downscale) < 1):
            raise SettingsError(None, f"downscale {self.downscale!r} is not 'auto' or a whole factor >= 1",
                                "use auto, 1 (off), 2, 3 ...")
        if self.extra_downscale is not None and (not isinstance(self.extra_downscale, list) or not all(
                isinstance(f, int) and not isinstance(f, bool) and f >= 2 for f in self.extra_downscale)):
            raise SettingsError(None, f"extra_downscale {self.extra_downscale!r} is not a list of whole factors >= 2",
                                "e.g. extra_downscale: [2]")
        self.model_config  # noqa: B018  (validates dim/depth now, not at the first step)
        for name in ("ssim_weight", "mask_weight", "ab_weight"):
            if not getattr(self, name) >= 0:
                raise SettingsError(None, f"{name} must be a number >= 0", f"fix {name} in the config or flags")
        for name in ("crop", "batch", "accum"):
            if getattr(self, name) < 1:
                raise SettingsError(None, f"{name} must be at least 1", f"fix {name} in the config or flags")

    @property
    def model_config(self) -> BakeNetConfig | GlobalConfig | colorize_model.ColorizeConfig:
        names = (("dim", "depth") if self.model == "bakenet" else ("width", "levels"))
        if self.preset in GLOBAL_PRESETS and self.model == "bakenet":
            names = ("width", "hidden")  # encoder width, encoder head width
        changes = {k: v for k, v in zip(names, (self.dim, self.depth)) if v is not None}
        try:
            return replace(MODEL_PRESETS[self.model][self.preset], **changes)
        except ValueError as exc:
            raise SettingsError(None, str(exc), "depth must be a multiple of 10" if self.model == "bakenet"
                                else "dim (width) and depth (levels) must be positive") from None

    @property
    def preset_name(self) -> str:
        return self.preset if self.model_config == MODEL_PRESETS[self.model][self.preset] else "custom"

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(path: str | None = None, **overrides) -> TrainConfig:
    """Defaults <- YAML file <- overrides (None values in overrides mean 'not given')."""
    values: dict = {}
    if path:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise SettingsError(path, "config file not found", "check the --config path") from None
        except yaml.YAMLError as exc:
            raise SettingsError(path, f"not valid YAML ({str(exc).splitlines()[0]})", "fix the file") from None
        if not isinstance(values, dict):
            raise SettingsError(path, "config must be a mapping of key: value", "see train/configs/reference.yaml")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(path, f"unknown config keys: {', '.join(unknown)}",
                            "see train/configs/reference.yaml for the keys")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
