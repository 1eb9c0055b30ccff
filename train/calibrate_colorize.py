"""Calibrate a colorize checkpoint's saturation on held-out photos (issue 16, "never worse than grey").

    python -m bake_seq.train.calibrate_colorize runs/colorize/checkpoints/best/model.safetensors \\
        --data data/debian/val -o bake_node/weights/colorize-default.safetensors

A colouriser that guesses a confident wrong colour is further from the original than the grey
plate it was given. The network is trained for the conditional mean of a/b (loss l2ab+ssim),
which already leans to neutral where it is unsure, but it is over-confident on photos it has
not seen. So its a/b are scaled by one number, ``chroma``, chosen on held-out photos (never the
eval holdout): for every candidate, every photo and both ways of finding the damage (mask given,
damage found by the model), the ratio of the result's mean CIEDE2000 to the same result with no
colour (chroma 0: the same repair, grey); the chosen chroma is the one whose *worst* ratio is
lowest, so the photo that gains least from colour gains most (and colour that makes any photo
worse than no colour is not shipped: then chroma 0 wins). The network runs once per case; a/b are scaled afterwards
(chroma multiplies the network's a/b output, exactly what the model does with it).

Writes a new checkpoint (the same weights, ``config.chroma`` set, the measurements in
``training.calibration``) and prints the table it chose from. Deterministic.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np
import torch

from bake_node.colorize_checkpoint import ColorizeInfo, load_colorize, save_colorize
from bake_node.errors import BakeError
from bake_node.models.colorize import model_input
from bake_node.palette import oklabp_to_srgb
from bake_seq.sequences.errors import SequenceError

from .ciede2000 import delta_e_srgb
from .colorize import VAL_SEED, damage_cases
from .data import load_folder
from .ssim import ssim

GRID = tuple(round(0.05 * i, 2) for i in range(0, 25))  # 0 (grey, repaired) ... 1.2


def measure(model, cases, grid=GRID) -> dict:
    """{(image, mode): {"grey": (dE, SSIM), s: (dE, SSIM) ...}}: pooled over the image's cases."""
    sums: dict = {}
    for case in cases:
        image = case.name.split("#")[0]
        clean = case.clean.permute(1, 2, 0)
        grey = case.grey.clamp(0, 1)
        grey_scores = delta_e_srgb(clean, grey.permute(1, 2, 0)), ssim(grey[None], case.clean[None])
        for mode, mask in (("mask given", case.mask[None]), ("damage found", None)):
            entry = sums.setdefault((image, mode), {})
            _add(entry, "grey", *grey_scores)  # the same grey input for both modes
            with torch.no_grad():
                lab = model(model_input(case.lightness[None], mask))[:, :3].double()
            for s in grid:
                out = oklabp_to_srgb(lab * torch.tensor([1.0, s, s], dtype=lab.dtype).view(1, 3, 1, 1)).float()
                out = out.clamp(0, 1)
                _add(entry, s, delta_e_srgb(clean, out[0].permute(1, 2, 0)), ssim(out, case.clean[None]))
    return {key: {k: (de / n, ss / n) for k, (de, ss, n) in entry.items()} for key, entry in sums.items()}


def _add(entry: dict, key, de: torch.Tensor, structure: torch.Tensor) -> None:
    de_sum, ssim_sum, n = entry.get(key, (0.0, 0.0, 0))
    entry[key] = (de_sum + float(de.mean()), ssim_sum + float(structure), n + 1)


def choose(measured: dict, grid=GRID) -> tuple[float, list[dict]]:
    """The chroma whose worst photo gains most from its colour: the lowest worst-case ratio of
    dE at that chroma to dE with no colour at all (chroma 0: the same repair, grey). 1.0 or
    more means colour makes that photo worse, so chroma 0 wins unless colour helps every photo.
    Ties go to the higher chroma. The table also holds the ratios to the grey input."""
    rows = []
    for s in grid:
        vs_none = [m[s][0] / m[0.0][0] for m in measured.values()]
        vs_grey = [m[s][0] / m["grey"][0] for m in measured.values()]
        gains = [m[s][1] - m["grey"][1] for m in measured.values()]
        rows.append({"chroma": s, "worst_vs_no_colour": max(vs_none), "worst_vs_grey": max(vs_grey),
                     "mean_vs_grey": float(np.mean(vs_grey)), "worst_ssim_gain": min(gains),
                     "mean_de2000": float(np.mean([m[s][0] for m in measured.values()]))})
    best = min(rows, key=lambda r: (round(r["worst_vs_no_colour"], 6), -r["chroma"]))
    return best["chroma"], rows


def calibrate(checkpoint: str, data: str, out: str, cases: int = 2, seed: int = VAL_SEED,
              overwrite: bool = False, echo=print) -> dict:
    from bake_seq.sequences.safe_write import check_target

    target = {"inputs": [checkpoint], "overwrite": overwrite}
    check_target(out, what="calibrated model", **target)  # before minutes of measuring; checked again on write
    loaded = load_colorize(checkpoint)
    model = loaded.model
    model.config = replace(loaded.info.config, chroma=1.0)  # measure the network's own a/b
    images = load_folder(data)
    measured = measure(model, damage_cases(images, cases, seed))
    chroma, rows = choose(measured)
    echo("| chroma | worst dE / dE without colour | worst dE / grey dE | mean dE / grey dE | "
         "worst SSIM - grey SSIM | mean dE |")
    echo("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mark = " (chosen)" if r["chroma"] == chroma else ""
        echo(f"| {r['chroma']:.2f}{mark} | {r['worst_vs_no_colour']:.3f} | {r['worst_vs_grey']:.3f} | "
             f"{r['mean_vs_grey']:.3f} | {r['worst_ssim_gain']:+.4f} | {r['mean_de2000']:.2f} |")
    per_image = {f"{image} ({mode})": {"grey_de2000": m["grey"][0], "de2000": m[chroma][0],
                                       "grey_ssim": m["grey"][1], "ssim": m[chroma][1]}
                 for (image, mode), m in measured.items()}
    chosen = next(r for r in rows if r["chroma"] == chroma)
    calibration = {"chroma": chroma, "rule": "lowest worst-case dE / (dE without colour) over photos and damage modes",
                   "data": [im.name for im in images], "cases_per_image": cases, "seed": seed,
                   "source_sha256": loaded.sha256, "worst_vs_no_colour": chosen["worst_vs_no_colour"],
                   "worst_vs_grey": chosen["worst_vs_grey"], "worst_ssim_gain": chosen["worst_ssim_gain"],
                   "per_image": per_image}
    config = replace(loaded.info.config, chroma=chroma)
    model.config = config
    info = ColorizeInfo(preset=loaded.info.preset, config=config, weights=loaded.info.weights,
                        training={**loaded.info.training, "calibration": calibration})
    save_colorize(out, model, info, **target)
    echo(f"chroma {chroma:.2f}: worst dE / dE without colour {chosen['worst_vs_no_colour']:.3f}, worst dE / grey dE "
         f"{chosen['worst_vs_grey']:.3f} over {len(images)} photos -> {out}")
    return calibration


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bake_seq.train.calibrate_colorize", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="colorize .safetensors to calibrate")
    parser.add_argument("--data", required=True, help="held-out colour photos (not the eval holdout)")
    parser.add_argument("-o", "--output", required=True, help="calibrated .safetensors to write")
    parser.add_argument("--cases", type=int, default=2, help="fixed-seed damage masks per photo (default 2)")
    parser.add_argument("--seed", type=int, default=VAL_SEED)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    try:
        calibrate(args.checkpoint, args.data, args.output, args.cases, args.seed, args.overwrite)
    except (BakeError, SequenceError) as exc:  # one line naming the file and the fix
        print(f"bake-seq: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
