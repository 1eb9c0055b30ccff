"""Temporal stability: does the restored colour breathe from frame to frame?

A test *shot* is made from one held-out photograph: a slow pan with a slight zoom (a window of
70-77 % of the photo moving diagonally across it), each view resized to the shot's size, the
same fixed-seed degradation applied to every frame (one grade for the whole shot, as a real
plate has), then per-frame grain (Gaussian, fixed seed per frame) on the degraded plate.

For each temporal mode the shot is restored through the Bake operator exactly as `bake-seq
render` would (``analyse`` over the shot, then ``process`` per frame), and scored against the
clean frames:

    jitter   standard deviation over frames of each frame's mean OklabP colour (L, a, b; the
             norm of the three), x 100. The clean shot's own jitter (the pan changes what is in
             frame) is the floor: a correction that does not flicker adds nothing to it.
    drift    standard deviation over frames of (mean OklabP colour of the result - that of the
             clean frame), x 100: how much the *error* changes from frame to frame, with the
             content's own change taken out (0 for a shot whose error is the same every frame).
    dE       mean CIEDE2000 to the clean frame, averaged over frames.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bake_node.palette import srgb_to_oklabp

from . import grades
from .ciede2000 import delta_e_srgb
from .data import Image, seeded

FAMILIES = ("darkroom", "cdl", "white_balance", "fade", "combo")
MODES = ("frame", "window", "shot")


def pan_views(image: torch.Tensor, frames: int, size: tuple[int, int]) -> list[torch.Tensor]:
    """(3,H,W) -> ``frames`` views (3, *size): a window sliding diagonally and growing 10 %."""
    _, h, w = image.shape
    views = []
    for t in np.linspace(0.0, 1.0, frames):
        scale = 0.7 * (1.0 + 0.1 * t)
        ch, cw = int(h * scale), int(w * scale)
        y, x = int((h - ch) * (0.2 + 0.6 * t)), int((w - cw) * (0.2 + 0.6 * t))
        crop = image[:, y:y + ch, x:x + cw][None]
        views.append(F.interpolate(crop, size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1))
    return views


def make_shot(image: Image, family: str, seed: int, index: int, frames: int, size: tuple[int, int],
              grain: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(clean frames, plate frames) of one test shot."""
    clean = pan_views(image.pixels, frames, size)
    plate = []
    for n, view in enumerate(clean):
        if family == "secondary":  # keyed on a colour of the whole photo: the same secondary every frame
            graded = grades.secondary(view[None], seeded(seed, index, 0), image.pixels[None])[0].float()
        else:  # same grade every frame
            graded = grades.degrade(family, view[None], seeded(seed, index, 0))[0].float()
        noise = torch.randn(graded.shape, generator=seeded(seed, index, 1 + n)) * grain
        plate.append((graded + noise).clamp(0.0, 1.0))
    return clean, plate


def mean_colour(frames: list[torch.Tensor]) -> np.ndarray:
    return np.stack([srgb_to_oklabp(f[None].double())[0].mean((1, 2)).numpy() for f in frames])


def jitter(frames: list[torch.Tensor]) -> float:
    return float(np.linalg.norm(mean_colour(frames).std(0)) * 100.0)


def drift(clean: list[torch.Tensor], out: list[torch.Tensor]) -> float:
    return float(np.linalg.norm((mean_colour(out) - mean_colour(clean)).std(0)) * 100.0)


def restore_shot(op, plate: list[torch.Tensor], first: int = 1001) -> list[torch.Tensor]:
    """The shot through the Bake operator as `bake-seq render` runs it."""
    rgb = {first + n: f.permute(1, 2, 0).contiguous().numpy() for n, f in enumerate(plate)}
    if op.needs_shot:  # every shot afresh
        op.analyse(list(rgb), rgb.__getitem__)
    return [torch.from_numpy(op.process(rgb[n], n)).permute(2, 0, 1).clamp(0, 1) for n in rgb]


def run_flicker(images: list[Image], make_op, families=FAMILIES, modes=MODES, frames: int = 24,
                size: tuple[int, int] = (192, 288), grain: float = 0.02, seed: int = 2024) -> dict:
    """{family: {"clean": jitter, "plate": {...}, mode: {"jitter", "de2000"}}}, means over images.
    ``make_op(mode)`` returns a prepared Bake operator for that temporal mode."""
    ops = {mode: make_op(mode) for mode in modes}
    results = {}
    for f, family in enumerate(families):
        rows: dict[str, list] = {"clean": [], "plate": [], **{m: [] for m in modes}}
        for i, image in enumerate(images):
            clean, plate = make_shot(image, family, seed, f * 1000 + i, frames, size, grain)
            rows["clean"].append((jitter(clean), 0.0, 0.0))
            rows["plate"].append((jitter(plate), drift(clean, plate), frame_de(clean, plate)))
            for mode in modes:
                out = restore_shot(ops[mode], plate)
                rows[mode].append((jitter(out), drift(clean, out), frame_de(clean, out)))
        results[family] = {name: dict(zip(("jitter", "drift", "de2000"), np.mean(r, axis=0).tolist()))
                           for name, r in rows.items()}
    return {"families": list(families), "modes": list(modes), "frames": frames, "size": list(size),
            "grain": grain, "seed": seed, "images": [im.name for im in images], "results": results}


def frame_de(clean: list[torch.Tensor], out: list[torch.Tensor]) -> float:
    return float(np.mean([float(delta_e_srgb(c.permute(1, 2, 0), o.permute(1, 2, 0)).mean())
                          for c, o in zip(clean, out)]))


def flicker_table(report: dict) -> str:
    modes = report["modes"]
    head = "| family | clean shot jitter | plate jitter / drift / dE | " + " | ".join(
        f"`{m}` jitter / drift / dE" for m in modes) + " |\n|---|---:|---:|" + "---:|" * len(modes) + "\n"
    lines = []
    for family, r in report["results"].items():
        cells = [f"{r['clean']['jitter']:.3f}"]
        cells += [f"{r[m]['jitter']:.3f} / {r[m]['drift']:.3f} / {r[m]['de2000']:.2f}" for m in ("plate", *modes)]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
