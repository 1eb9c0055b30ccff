"""Scoring colour restoration on held-out images: CIEDE2000 and PSNR against the clean original.

A *case* is one clean image and a version of it to restore: either a fixed-seed darkroom
degradation (what the model is trained to undo) or the clean image itself (a restorer must not
damage a clean frame). A *method* maps an sRGB image (3, H, W) in [0, 1] to its restoration.
Validation during training and `bake-seq eval` share this code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bake_node.palette import oklabp_to_srgb, restore_srgb, srgb_eotf, srgb_oetf, srgb_to_oklabp

from . import darkroom, grades
from .ciede2000 import delta_e_srgb
from .data import Image, centre_crop, seeded

PSNR_CAP = 100.0  # dB; identical images would otherwise score infinity


@dataclass
class Case:
    name: str
    clean: torch.Tensor  # (3, H, W) sRGB
    given: torch.Tensor  # what the method receives


def degraded_cases(images: list[Image], per_image: int, seed: int, strength: float = darkroom.STRENGTH,
                   crop: int = 0) -> list[Case]:
    """Fixed-seed darkroom degradations, written as a plate would hold them (sRGB in [0, 1])."""
    cases = []
    for i, image in enumerate(images):
        clean = centre_crop(image.pixels, crop)
        target = srgb_to_oklabp(clean[None])  # float32, like training
        for j in range(per_image):
            gen = seeded(seed, i, j)  # one stream per (image, case): adding images changes no others
            given = oklabp_to_srgb(darkroom.degrade(target, gen, strength).double())[0].float()
            cases.append(Case(f"{image.name}#{j}", clean, given))
    return cases


def family_cases(images: list[Image], families, seed: int, per_image: int = 1) -> dict[str, list[Case]]:
    """{family: cases}: fixed-seed degradations of whole images (one generator per image, case, family)."""
    suites = {}
    for f, family in enumerate(families):
        cases = []
        for i, image in enumerate(images):
            for j in range(per_image):
                given = grades.degrade(family, image.pixels[None], seeded(seed, i * 64 + j, f))[0].float()
                cases.append(Case(f"{image.name}#{family}{j}", image.pixels, given))
        suites[family] = cases
    return suites


def clean_cases(images: list[Image], crop: int = 0) -> list[Case]:
    return [Case(image.name, c, c) for image in images for c in [centre_crop(image.pixels, crop)]]


def do_nothing(rgb: torch.Tensor) -> torch.Tensor:
    return rgb


def grey_world(rgb: torch.Tensor) -> torch.Tensor:
    """Classic white balance: scale linear R, G, B so their means are equal (a grey scene)."""
    linear = srgb_eotf(rgb.double())
    means = linear.mean(dim=(1, 2), keepdim=True).clamp_min(1e-8)
    return srgb_oetf(linear * means.mean() / means).clamp(0.0, 1.0).float()


def model_method(model: torch.nn.Module, device: torch.device | str = "cpu"):
    """The render path's maths on one image: colour conversions in float64, the model in fp32."""
    def restore(rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return restore_srgb(lambda lab: model(lab.to(device)).cpu(), rgb[None])[0]
    return restore


def psnr(clean: torch.Tensor, out: torch.Tensor) -> float:
    mse = float(((out.double() - clean.double()) ** 2).mean())
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else 10 * math.log10(1.0 / mse)


def score(cases: list[Case], method) -> dict:
    """Mean and 95th-percentile CIEDE2000 over all pixels of all cases; mean PSNR over cases."""
    errors, psnrs = [], []
    for case in cases:
        out = method(case.given)
        errors.append(delta_e_srgb(case.clean.permute(1, 2, 0), out.permute(1, 2, 0)).flatten().numpy())
        psnrs.append(psnr(case.clean, out))
    pixels = np.concatenate(errors)
    return {"de2000_mean": float(pixels.mean()), "de2000_p95": float(np.percentile(pixels, 95)),
            "psnr_db": float(np.mean(psnrs)), "cases": len(cases)}


def evaluate(suites: dict[str, list[Case]], methods: dict) -> dict:
    """{suite: {method: scores}} for every suite of cases and every method."""
    return {suite: {name: score(cases, fn) for name, fn in methods.items()} for suite, cases in suites.items()}


def markdown_table(results: dict) -> str:
    lines = ["| cases | method | CIEDE2000 mean | CIEDE2000 p95 | PSNR (dB) |", "|---|---|---:|---:|---:|"]
    for suite, methods in results.items():
        for name, s in methods.items():
            lines.append(f"| {suite} ({s['cases']}) | {name} | {s['de2000_mean']:.2f} | "
                         f"{s['de2000_p95']:.2f} | {s['psnr_db']:.2f} |")
    return "\n".join(lines) + "\n"


EVAL_SEED = 2024  # not the validation seed: eval cases are not the ones the best checkpoint was picked on


def run_eval(images: list[Image], model, cases_per_image: int = 4, seed: int = EVAL_SEED,
             strength: float = darkroom.STRENGTH, crop: int = 0) -> dict:
    """The eval table: doing nothing, grey-world and ``model`` on degraded and on clean images."""
    suites = {"degraded": degraded_cases(images, cases_per_image, seed, strength, crop),
              "clean": clean_cases(images, crop)}
    methods = {"do nothing": do_nothing, "grey-world": grey_world, "model": model}
    return {"images": [im.name for im in images], "cases_per_image": cases_per_image, "seed": seed,
            "strength": strength, "results": evaluate(suites, methods)}


def run_family_eval(images: list[Image], methods: dict, cases_per_image: int = 4, seed: int = EVAL_SEED) -> dict:
    """The restoration eval: every family of ``train.grades`` (whole images, fixed seeds) and
    clean frames, scored for every method; ``ratio`` = method / doing nothing (lower is better)."""
    suites = family_cases(images, grades.EVAL_FAMILIES, seed, cases_per_image)
    suites["clean"] = clean_cases(images)
    results = evaluate(suites, {"do nothing": do_nothing, **methods})
    for scores in results.values():
        nothing = scores["do nothing"]["de2000_mean"]
        for s in scores.values():
            s["ratio"] = s["de2000_mean"] / nothing if nothing > 0 else None
    return {"images": [im.name for im in images], "cases_per_image": cases_per_image, "seed": seed,
            "results": results}


def family_table(results: dict) -> str:
    lines = ["| family (cases) | method | CIEDE2000 mean | × doing nothing | CIEDE2000 p95 | PSNR (dB) |",
             "|---|---|---:|---:|---:|---:|"]
    for suite, methods in results.items():
        for name, s in methods.items():
            ratio = "—" if s.get("ratio") is None else f"{s['ratio']:.2f}"
            lines.append(f"| {suite} ({s['cases']}) | {name} | {s['de2000_mean']:.2f} | {ratio} | "
                         f"{s['de2000_p95']:.2f} | {s['psnr_db']:.2f} |")
    return "\n".join(lines) + "\n"
