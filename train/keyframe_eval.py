"""`bake-seq eval --keyframes`: learning a shot's correction from one key, on panning test shots.

Each held-out photograph becomes a panning shot per degradation family (train/flicker.py's pan,
grain and fixed-seed grade); the clean first frame is the artist's key. The correction learned
from (plate frame 1, key) is rendered through the Bake operator on the *other* frames and scored
against their clean frames (mean CIEDE2000), beside doing nothing and the shipped blind model
(one correction per shot). Colourise: the shot's grey frames, the colour first frame as key, the
Colorize operator with the learned checkpoint, against the grey plate (CIEDE2000 and SSIM).
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from . import flicker
from .data import Image
from .keyframes import KeyPair, check_pair
from .learn_shot import LearnOptions, learn_shot, save_shot

FAMILIES = ("darkroom", "cdl", "white_balance", "fade", "combo", "secondary")
FIRST = 1001


def _hwc(frame: torch.Tensor) -> np.ndarray:
    return frame.permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def _through(op, frames: list[torch.Tensor]) -> list[torch.Tensor]:
    return flicker.restore_shot(op, frames, first=FIRST)


def learned_operator(learn, save, op_name: str, knob: str, pair: KeyPair, path: str, options):
    """Learn from one key, save the file as `bake-seq learn` does, and prepare the operator that
    renders with it: (operator, model, record, seconds spent learning)."""
    from bake_node.node import get_operator

    start = time.perf_counter()
    model, record = learn([pair], options)
    seconds = time.perf_counter() - start
    save(path, model, record)
    op = get_operator(op_name)
    op.prepare({knob: path, "device": "cpu", "tile": 0})
    return op, model, record, seconds


def shot_scores(clean, out) -> float:
    """Mean CIEDE2000 over the non-key frames (frame 1 is the key)."""
    return flicker.frame_de(clean[1:], out[1:])


def run_keyframe_eval(images: list[Image], families=FAMILIES, frames: int = 12, size=(192, 288), grain: float = 0.0,
                      seed: int = 2024, options: LearnOptions | None = None, blind_checkpoint: str | None = None,
                      colorize: bool = True, colorize_options=None, say=lambda text: None) -> dict:
    from bake_node.node import get_operator

    options = options or LearnOptions()
    blind = get_operator("bake")
    blind.prepare({"checkpoint": blind_checkpoint, "device": "cpu", "tile": 0, "temporal": "shot"})
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bake-keys-") as tmp:
        for f, family in enumerate(families):
            rows = []
            for i, image in enumerate(images):
                clean, plate = flicker.make_shot(image, family, seed, f * 1000 + i, frames, size, grain)
                pair = KeyPair(FIRST, _hwc(plate[0]), _hwc(clean[0]), f"{image.name}-{family}", "", "sRGB")
                check_pair(pair)
                op, _, record, seconds = learned_operator(learn_shot, save_shot, "bake", "checkpoint", pair,
                                                          os.path.join(tmp, f"{family}-{i}.safetensors"), options)
                learned = shot_scores(clean, _through(op, plate))
                nothing = shot_scores(clean, plate)
                blind_de = shot_scores(clean, _through(blind, plate))
                stages = "+".join(s for s, v in record["stages"].items() if v.get("kept"))
                rows.append({"image": image.name, "do_nothing": nothing, "blind": blind_de, "learned": learned,
                             "ratio": learned / nothing, "stages": stages, "seconds": seconds,
                             "key_held_out_de": record["keys"][0].get("lut", record["keys"][0]["grade"])["held_out_de"]})
                say(f"{family} {image.name}: do nothing {nothing:.2f}, blind {blind_de:.2f}, learned {learned:.2f} "
                    f"({learned / nothing:.3f} x, {stages}, {seconds:.1f} s)")
            results[family] = summarise(rows)
        if colorize:
            results["colorize"] = colorize_rows(images, frames, size, seed, tmp, colorize_options, say)
    return {"families": list(families), "frames": frames, "size": list(size), "grain": grain, "seed": seed,
            "images": [im.name for im in images], "results": results}


def summarise(rows: list[dict]) -> dict:
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("do_nothing", "blind", "learned", "seconds")}
    mean["ratio"] = mean["learned"] / mean["do_nothing"]
    mean["blind_ratio"] = mean["blind"] / mean["do_nothing"]
    return {**mean, "per_image": rows}


def colorize_rows(images, frames, size, seed, tmp, colorize_options, say) -> dict:
    from bake_node.models.colorize import grey_lightness

    from .colorize import grey_srgb
    from .learn_colorize import ColorizeLearnOptions, learn_colorize, save_learned_colorize
    from .ssim import ssim

    options = colorize_options or ColorizeLearnOptions()
    rows = []
    for i, image in enumerate(images):
        clean = flicker.pan_views(image.pixels, frames, size)
        grey = [grey_srgb(grey_lightness(c[None]))[0] for c in clean]
        pair = KeyPair(FIRST, _hwc(grey[0]), _hwc(clean[0]), f"{image.name}-colour", "", "sRGB")
        op, model, _, seconds = learned_operator(learn_colorize, save_learned_colorize, "colorize", "colorize_checkpoint",
                                                 pair, os.path.join(tmp, f"colorize-{i}.safetensors"), options)
        out = [torch.from_numpy(op.process(_hwc(g), FIRST + n)).permute(2, 0, 1).clamp(0, 1)
               for n, g in enumerate(grey)]
        de_grey, de_out = shot_scores(clean, grey), shot_scores(clean, out)
        ssim_grey = float(np.mean([float(ssim(g[None], c[None])) for g, c in zip(grey[1:], clean[1:])]))
        ssim_out = float(np.mean([float(ssim(o[None], c[None])) for o, c in zip(out[1:], clean[1:])]))
        rows.append({"image": image.name, "grey_de": de_grey, "learned_de": de_out, "ratio": de_out / de_grey,
                     "grey_ssim": ssim_grey, "learned_ssim": ssim_out, "chroma": model.config.chroma,
                     "seconds": seconds})
        say(f"colorize {image.name}: grey {de_grey:.2f} / SSIM {ssim_grey:.3f}, learned {de_out:.2f} / "
            f"SSIM {ssim_out:.3f} ({de_out / de_grey:.3f} x, chroma {model.config.chroma:g}, {seconds:.1f} s)")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("grey_de", "learned_de", "grey_ssim", "learned_ssim", "seconds")}
    mean["ratio"] = mean["learned_de"] / mean["grey_de"]
    return {**mean, "per_image": rows}


def keyframe_table(report: dict) -> str:
    head = ("| family | do nothing dE | blind model (shot) | learned from 1 key | learned / do nothing | "
            "blind / do nothing | stages kept | seconds per key |\n|---|---:|---:|---:|---:|---:|---|---:|\n")
    lines = []
    for family in report["families"]:
        r = report["results"][family]
        kept = sorted({row["stages"] for row in r["per_image"]})
        lines.append(f"| {family} | {r['do_nothing']:.2f} | {r['blind']:.2f} | {r['learned']:.2f} | "
                     f"{r['ratio']:.3f} | {r['blind_ratio']:.3f} | {', '.join(kept)} | {r['seconds']:.1f} |")
    text = head + "\n".join(lines) + "\n"
    c = report["results"].get("colorize")
    if c:
        text += ("\n| colourise | grey plate dE / SSIM | learned dE / SSIM | learned / grey dE | SSIM gain | seconds per key |\n"
                 "|---|---:|---:|---:|---:|---:|\n"
                 f"| mean of {len(c['per_image'])} | {c['grey_de']:.2f} / {c['grey_ssim']:.3f} | {c['learned_de']:.2f} / "
                 f"{c['learned_ssim']:.3f} | {c['ratio']:.3f} | {c['learned_ssim'] - c['grey_ssim']:+.3f} | {c['seconds']:.1f} |\n")
    return text
