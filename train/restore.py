"""Training the global BakeNet (preset ``global``): whole-frame views, every degradation family.

The model reads a thumbnail of the whole frame, so it is trained on what it will see: each
sample is a random-scale crop of a photograph (most of the frame, random aspect) resized to
``crop`` x ``crop``, degraded by one family from ``train.grades`` (clean included: a clean frame
must come back untouched), and restored through the model's own thumbnail. The loss is the
mean per-pixel Euclidean distance in OklabP (a perceptual colour difference, close to what
CIEDE2000 scores), so the optimum under ambiguity is a robust middle, not a palette average.

Validation runs at the inference view too: whole held-out images, every family, through the
render path's maths; the best checkpoint is the lowest mean CIEDE2000 over the families with
clean frames counted as one family.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bake_node.palette import srgb_to_oklabp

from . import grades
from .data import epoch_order, random_flips, seeded
from .evaluate import Case, family_cases, model_method, score
from .bake_task import BakeTask

VAL_SEED = 1234
# Share of training samples per family (normalised); clean frames are a family of their own.
# Exposure is not trained: a photo's brightness is a choice, so "undo the exposure" teaches the
# model to move every frame's brightness towards an average. Measured with 8 % exposure and 20 %
# clean: after 2000 steps clean validation frames were changed by CIEDE2000 5.9 and exposure cases
# got 1.7x worse than doing nothing. Half the frames are clean: the loss is a per-pixel distance
# (a median, not a mean), so the model leaves a frame alone unless it is more likely degraded
# than clean. With 40 % clean, strongly coloured clean photos (an orange cat, a saturated garden)
# were still "corrected" by CIEDE2000 6-14.
DEFAULT_MIX = {"clean": 0.5, "darkroom": 0.15, "cdl": 0.1, "white_balance": 0.1, "fade": 0.1, "combo": 0.05}
# What "restored" means (issue 13): clean frames within CIEDE2000 0.5, the darkroom family at
# 0.7x doing nothing (it is partly ambiguous), every other family at 0.5x.
TARGETS = {"clean": 0.5, "darkroom": 0.7, "other": 0.5}
MIN_SCALE = 0.5  # a training view covers at least half of the photo's width and height
BASE_SIDE = 384  # photos are shrunk to this long side once: views are at most crop px, so 3x is plenty
MOSAIC = 0.5  # share of training frames made of four photos (2 x 2): new palettes every step


def mean_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel Euclidean distance in OklabP (2 x the Oklab colour difference)."""
    return torch.sqrt((pred.float() - target.float()).pow(2).sum(1) + 1e-10).mean()


def view(image: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """A random crop covering MIN_SCALE..1 of each side, area-resized to size x size, random flips."""
    _, h, w = image.shape
    ch = max(1, int(h * (MIN_SCALE + (1 - MIN_SCALE) * float(torch.rand(1, generator=gen)))))
    cw = max(1, int(w * (MIN_SCALE + (1 - MIN_SCALE) * float(torch.rand(1, generator=gen)))))
    top = int(torch.randint(h - ch + 1, (1,), generator=gen))
    left = int(torch.randint(w - cw + 1, (1,), generator=gen))
    crop = image[None, :, top:top + ch, left:left + cw]
    crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return random_flips(crop, gen).clamp(0.0, 1.0)


class GlobalTask(BakeTask):
    """BakeNet global: whole-frame views, every family of ``train.grades``, OklabP distance."""

    score_name = "worst-family fraction of target"

    def __init__(self, cfg):
        super().__init__(cfg)
        mix = cfg.families or DEFAULT_MIX
        self.families = list(mix)
        self.weights = torch.tensor([float(mix[f]) for f in self.families], dtype=torch.float64)
        self.suites: dict[str, list[Case]] = {}
        self._bases: dict[int, torch.Tensor] = {}

    def base(self, images, index: int) -> torch.Tensor:
        """Photo ``index`` area-shrunk to BASE_SIDE (once): every view is cut from this."""
        if index not in self._bases:
            pixels = images[index].pixels
            factor = BASE_SIDE / max(pixels.shape[1:])
            if factor < 1:
                size = (max(1, round(pixels.shape[1] * factor)), max(1, round(pixels.shape[2] * factor)))
                pixels = F.interpolate(pixels[None], size=size, mode="area")[0]
            self._bases[index] = pixels
        return self._bases[index]

    def build_model(self) -> torch.nn.Module:
        from bake_node.models.bakenet_global import BakeNetGlobal
        return BakeNetGlobal(self.cfg.model_config)

    def loss_fn(self):
        return mean_distance

    def set_validation(self, images) -> list:
        if not images:
            return []
        families = ["clean"] + [f for f in grades.EVAL_FAMILIES if f in self.families]
        self.suites = family_cases(images, families, VAL_SEED, self.cfg.val_cases)
        self.cases = [c for suite in self.suites.values() for c in suite]
        self.nothing = {name: score(cases, lambda rgb: rgb)["de2000_mean"] for name, cases in self.suites.items()}
        return self.cases

    def batch(self, images, micro: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        gen = seeded(cfg.seed, micro, 0)
        n = len(images)
        first = micro * cfg.batch
        clean = torch.stack([self.frame(images, int(epoch_order(n, cfg.seed, k // n)[k % n]), gen)
                             for k in range(first, first + cfg.batch)])
        # Targets vary like clean photos do (grades.natural): no palette of the training set is
        # "the" clean one, so the model cannot learn them (measured: without this, clean
        # validation frames were changed more and more as training went on, to CIEDE2000 5).
        clean = grades.natural(clean.double(), seeded(cfg.seed, micro, 200)).float()
        family = torch.multinomial(self.weights, cfg.batch, replacement=True, generator=gen)
        given = torch.empty_like(clean, dtype=torch.float64)
        for f, name in enumerate(self.families):
            index = (family == f).nonzero().squeeze(1)
            if index.numel():
                given[index] = grades.degrade(name, clean[index], seeded(cfg.seed, micro, 1 + f))
        # The plate holds clamped sRGB; the model sees it in OklabP, as the Bake operator gives it
        # (float32 here: float64 conversions were 2/3 of a training step, for < 1e-6 of difference).
        return srgb_to_oklabp(given.float()).to(device), srgb_to_oklabp(clean.float()).to(device)

    def frame(self, images, index: int, gen: torch.Generator) -> torch.Tensor:
        """One training frame: a view of photo ``index``, or (MOSAIC of the time) a 2 x 2 mosaic
        of it and three random others. A few dozen photos have a few dozen palettes; an
        estimator trained on them alone learns those palettes (measured: it then pushes every
        frame towards them). Mosaics make the palette of a frame new at every step."""
        size = self.cfg.crop
        if float(torch.rand(1, generator=gen)) >= MOSAIC:
            return view(self.base(images, index), size, gen)
        others = torch.randint(len(images), (3,), generator=gen).tolist()
        half = size // 2
        tiles = [view(self.base(images, i), half, gen) for i in [index, *others]]
        return torch.cat([torch.cat(tiles[:2], dim=2), torch.cat(tiles[2:], dim=2)], dim=1)

    def validate(self, ema, device) -> tuple[dict, float, str]:
        """Scores every family; the value that picks the best checkpoint is how far the worst
        family is from its target (TARGETS: a ratio to doing nothing, or for clean frames an
        absolute CIEDE2000), so "best" is the checkpoint closest to meeting all of them."""
        restore = model_method(ema, device)
        per_family = {name: score(cases, restore)["de2000_mean"] for name, cases in self.suites.items()}
        progress = {name: (v / TARGETS["clean"] if name == "clean" else
                           v / max(self.nothing[name], 1e-9) / TARGETS.get(name, TARGETS["other"]))
                    for name, v in per_family.items()}
        value = max(progress.values())
        record = {"val_de2000": value, "val_mean_de2000": sum(per_family.values()) / len(per_family),
                  **{f"val_{k}": v for k, v in per_family.items()}}
        text = (f"worst family at {value:.2f}x its target; CIEDE2000 "
                + ", ".join(f"{k} {v:.2f}" + ("" if k == "clean" else f" ({v / self.nothing[k]:.2f}x)")
                            for k, v in per_family.items()))
        return record, value, text
