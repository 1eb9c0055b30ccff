"""Colorize training and scoring: self-supervised pairs from clean colour images (grey = Oklab
lightness, random damage masks and fills), the L1 + SSIM (+ mask BCE) loss, and the held-out
cases, baselines and metrics shared by validation and `bake-seq eval --model colorize`.

A *case* is a clean colour image, its greyscale with fixed-seed damage painted in, and the
damage mask. A *method* maps a case to an sRGB (3, H, W) image in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bake_node.colorize_checkpoint import ColorizeInfo, save_colorize
from bake_node.inpaint import telea_fill
from bake_node.models.colorize import ColorizeNet, grey_lightness, model_input
from bake_node.palette import oklabp_to_srgb, srgb_to_oklabp

from .ciede2000 import delta_e_srgb
from .data import Image, centre_crop, sample_batch
from .masks import apply_damage, damage_labels
from .ssim import masked_mean, ssim, ssim_map

EVAL_SEED = 2024
VAL_SEED = 1234


# -- data ------------------------------------------------------------------------------------
def grey_srgb(lightness: torch.Tensor) -> torch.Tensor:
    """OklabP L (..., 1, H, W) -> the neutral sRGB grey with that lightness, 3 channels."""
    lab = torch.cat([lightness.double(), torch.zeros_like(lightness.double()).expand(*lightness.shape[:-3], 2,
                                                                                    *lightness.shape[-2:])], dim=-3)
    return oklabp_to_srgb(lab, dim=-3).float()


def damaged_sample(lightness01: np.ndarray, rng: np.random.Generator, clean_fraction: float = 0.0):
    """(damaged lightness in [0, 1], mask) for one image's Oklab lightness."""
    h, w = lightness01.shape
    if rng.random() < clean_fraction:
        labels = np.zeros((h, w), np.int32)
    else:
        labels = damage_labels(h, w, rng)
    return apply_damage(lightness01, labels, rng), (labels > 0).astype(np.float32)


# -- loss --------------------------------------------------------------------------------------
def colorize_loss(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 1.0,
                  mask_weight: float = 0.2, chroma: str = "l1", ab_weight: float = 4.0) -> torch.Tensor:
    """Colour term + ssim_weight x (1 - SSIM on sRGB) + mask_weight x BCE(damage logit, mask).
    pred: the network's (N, 4, H, W); target: OklabP (3 channels) + the true mask.

    Colour term: ``chroma="l1"``: L1 on the three OklabP channels (the median, issue 9);
    ``chroma="l2"``: L1 on L + ab_weight x squared error on a/b, whose optimum is the
    conditional *mean* of a/b: where the grey frame fits several colours the mean of them is
    nearer neutral than any one, so an unsure prediction desaturates instead of committing."""
    if chroma == "l2":
        l1 = (pred[:, :1] - target[:, :1]).abs().mean() / 3 + ab_weight * (pred[:, 1:3] - target[:, 1:3]).square().mean()
    else:
        l1 = (pred[:, :3] - target[:, :3]).abs().mean()
    structure = 1.0 - ssim(oklabp_to_srgb(pred[:, :3]), oklabp_to_srgb(target[:, :3]))
    bce = F.binary_cross_entropy_with_logits(pred[:, 3], target[:, 3])
    return l1 + ssim_weight * structure + mask_weight * bce


# -- held-out cases, methods, scores -------------------------------------------------------------
@dataclass
class DamageCase:
    name: str
    clean: torch.Tensor  # (3, H, W) sRGB
    lightness: torch.Tensor  # (1, H, W) OklabP L of the damaged grey
    mask: torch.Tensor  # (1, H, W), 1 = damaged

    @property
    def grey(self) -> torch.Tensor:
        """The damaged greyscale frame as a plate would hold it: (3, H, W) sRGB, R = G = B."""
        return grey_srgb(self.lightness)


def damage_cases(images: list[Image], per_image: int, seed: int, crop: int = 0) -> list[DamageCase]:
    cases = []
    for i, image in enumerate(images):
        clean = centre_crop(image.pixels, crop)
        lightness01 = ((grey_lightness(clean[None])[0, 0] + 1) / 2).numpy()
        for j in range(per_image):
            rng = np.random.default_rng((seed, i, j))  # one stream per (image, case)
            damaged, mask = damaged_sample(lightness01, rng)
            cases.append(DamageCase(f"{image.name}#{j}", clean, torch.from_numpy(damaged * 2 - 1)[None],
                                    torch.from_numpy(mask)[None]))
    return cases


def grey_input(case: DamageCase) -> torch.Tensor:
    """Baseline: the damaged grey frame itself, replicated to RGB."""
    return case.grey


def telea(case: DamageCase) -> torch.Tensor:
    """Baseline: OpenCV's Telea inpainting of the grey frame (radius 3 px) with the true mask,
    replicated to RGB (no colour): bake_node.inpaint, the operator's fill=telea."""
    filled = telea_fill(((case.lightness[0] + 1) / 2).numpy(), case.mask[0].numpy())
    return grey_srgb(torch.from_numpy(filled * 2 - 1)[None])


def network_method(model: torch.nn.Module, give_mask: bool, device="cpu"):
    """The network on a case, whole frame: with the true mask, or finding the damage itself."""
    def run(case: DamageCase) -> torch.Tensor:
        x = model_input(case.lightness[None], case.mask[None] if give_mask else None)
        with torch.no_grad():
            out = model(x.to(device)).cpu()
        return oklabp_to_srgb(out[:, :3].double())[0].float()
    return run


def score(cases: list[DamageCase], method) -> dict:
    """SSIM (sRGB, mean over cases) over the frame and over the damaged pixels; CIEDE2000 over
    all pixels and over the damaged pixels (pooled over cases); the same per image
    ("per_image"), because a colouriser must not make any one plate worse than its grey input."""
    measured = []
    for case in cases:
        out = method(case).clamp(0.0, 1.0)
        smap = ssim_map(out[None].double(), case.clean[None].double())[0]
        de = delta_e_srgb(case.clean.permute(1, 2, 0), out.permute(1, 2, 0))
        measured.append((case.name.split("#")[0], float(smap.mean()), masked_mean(smap, case.mask[0]),
                         de.flatten().numpy(), de[case.mask[0] > 0.5].numpy()))
    images = list(dict.fromkeys(m[0] for m in measured))
    return {**_pooled(measured), "cases": len(cases),
            "per_image": {name: _pooled([m for m in measured if m[0] == name]) for name in images}}


def _pooled(measured: list) -> dict:
    de_damage = [m[4] for m in measured]
    return {"ssim": float(np.mean([m[1] for m in measured])), "ssim_damage": float(np.nanmean([m[2] for m in measured])),
            "de2000_mean": float(np.concatenate([m[3] for m in measured]).mean()),
            "de2000_damage": float(np.concatenate(de_damage).mean()) if sum(map(len, de_damage)) else float("nan")}


def markdown_table(results: dict) -> str:
    lines = ["| method | SSIM (frame) | SSIM (damaged px) | CIEDE2000 (frame) | CIEDE2000 (damaged px) |",
             "|---|---:|---:|---:|---:|"]
    for name, s in results.items():
        lines.append(f"| {name} | {s['ssim']:.4f} | {s['ssim_damage']:.4f} | {s['de2000_mean']:.2f} | "
                     f"{s['de2000_damage']:.2f} |")
    return "\n".join(lines) + "\n"


def per_image_table(results: dict) -> str:
    """CIEDE2000 and SSIM per image and method, over the frame and inside the damage, and on how
    many images each method beats the first (the grey input)."""
    methods = list(results)
    images = list(results[methods[0]]["per_image"])
    grey = results[methods[0]]["per_image"]
    text = []
    for title, de, ss in (("whole frame", "de2000_mean", "ssim"), ("inside the damage", "de2000_damage", "ssim_damage")):
        lines = [f"| image ({title}) | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
        for image in images:
            cells = [f"{results[m]['per_image'][image][de]:.2f} / {results[m]['per_image'][image][ss]:.3f}" for m in methods]
            lines.append(f"| {image} | " + " | ".join(cells) + " |")
        text.append("\n".join(lines) + "\n")
    beats = [f"{m}: {sum(results[m]['per_image'][i]['de2000_mean'] < grey[i]['de2000_mean'] for i in images)}"
             f" of {len(images)}" for m in methods[1:]]
    return ("\n".join(text) + "\nCIEDE2000 / SSIM per image. Whole-frame CIEDE2000 below the grey input's on: "
            + "; ".join(beats) + ".\n")


def run_eval(images: list[Image], methods: dict, cases_per_image: int = 4, seed: int = EVAL_SEED,
             crop: int = 0) -> dict:
    cases = damage_cases(images, cases_per_image, seed, crop)
    coverage = [float(c.mask.mean()) for c in cases]
    return {"images": [im.name for im in images], "cases_per_image": cases_per_image, "seed": seed,
            "crop": crop, "mask_coverage": {"min": min(coverage), "mean": float(np.mean(coverage)),
                                            "max": max(coverage)},
            "results": {name: score(cases, fn) for name, fn in methods.items()}}


# -- the training task (train.loop.Trainer drives it) -------------------------------------------
class ColorizeTask:
    name = "colorize"
    columns = ("damaged grey", "model, mask given", "model, damage found", "original")

    def __init__(self, cfg):
        self.cfg = cfg
        self.cases: list[DamageCase] = []

    def build_model(self) -> torch.nn.Module:
        return ColorizeNet(self.cfg.model_config)

    def loss_fn(self):
        cfg = self.cfg
        chroma = "l2" if cfg.loss == "l2ab+ssim" else "l1"
        return lambda pred, target: colorize_loss(pred, target, cfg.ssim_weight, cfg.mask_weight, chroma, cfg.ab_weight)

    def set_validation(self, images: list[Image]) -> list[DamageCase]:
        self.cases = damage_cases(images, self.cfg.val_cases, VAL_SEED, self.cfg.val_crop)
        return self.cases

    def batch(self, images: list[Image], micro: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        clean = sample_batch(images, micro * cfg.batch, cfg.batch, cfg.crop, cfg.seed, micro)
        lab = srgb_to_oklabp(clean.double()).float()
        rng = np.random.default_rng((cfg.seed, micro, 7))
        inputs, masks = [], []
        for k in range(clean.shape[0]):
            damaged, mask = damaged_sample(((lab[k, 0] + 1) / 2).numpy(), rng, cfg.clean_fraction)
            lightness, mask = torch.from_numpy(damaged * 2 - 1)[None, None], torch.from_numpy(mask)[None, None]
            inputs.append(model_input(lightness, mask if rng.random() < cfg.mask_given else None))
            masks.append(mask)
        inp = torch.cat(inputs).to(device)
        target = torch.cat([lab, torch.cat(masks)], dim=1).to(device)
        return inp, target

    def validate(self, ema, device) -> tuple[dict, float, str]:
        given = score(self.cases, network_method(ema, True, device))
        found = score(self.cases, network_method(ema, False, device))
        record = {"val_de2000": given["de2000_mean"], "val_de2000_damage": given["de2000_damage"],
                  "val_ssim": given["ssim"], "val_ssim_damage": given["ssim_damage"],
                  "val_found_de2000": found["de2000_mean"], "val_found_ssim": found["ssim"]}
        text = (f"CIEDE2000 {given['de2000_mean']:.3f}, SSIM {given['ssim']:.4f} "
                f"(damaged px {given['ssim_damage']:.4f}); damage found by the model: SSIM {found['ssim']:.4f}")
        return record, given["de2000_mean"], text

    def sample_rows(self, ema, device, training_batch) -> tuple[list, list[str]]:
        if self.cases:
            cases = self.cases[:4]
        else:
            inp, target = training_batch
            cases = [DamageCase(f"train {n}", oklabp_to_srgb(t[None, :3].double().cpu())[0].float(),
                                i[None, 0].cpu(), t[None, 3].cpu()) for n, (i, t) in enumerate(zip(inp, target))]
        with_mask, without = network_method(ema, True, device), network_method(ema, False, device)
        rows = [[x.permute(1, 2, 0).numpy() for x in (c.grey, with_mask(c), without(c), c.clean)] for c in cases]
        return rows, [c.name for c in cases]

    def info(self, training: dict) -> ColorizeInfo:
        return ColorizeInfo(preset=self.cfg.preset_name, config=self.cfg.model_config, weights="ema",
                            training=training)

    def save(self, path, model, info) -> None:
        save_colorize(path, model, info, overwrite=True)  # the run's own last/best files
