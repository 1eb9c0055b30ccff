"""`bake-seq eval`: score a checkpoint on clean held-out images (the scoring lives in train/)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..cli import AliasOption

EPILOG = """\b
Examples:
  bake-seq eval --data data/bundled/holdout                      # the shipped model
  bake-seq eval --data holdout/ --checkpoint runs/v5/checkpoints/best/model.safetensors -o eval_v5
  bake-seq eval --model colorize --data data/bundled/holdout -o eval-colorize   # the shipped colorize model
  bake-seq eval --flicker --data data/bundled/holdout -o eval-flicker   # temporal modes on panning shots
  bake-seq eval --keyframes --data data/bundled/holdout -o eval-keys    # learning from one key per shot
  bake-seq eval --temporal --data data/bundled/holdout -o eval-temporal # light that changes: keys, deflicker
"""


@click.command("eval", epilog=EPILOG)
@click.option("--model", "model_name", default="bakenet", show_default=True,
              type=click.Choice(["bakenet", "colorize"]), help="which model's checkpoint and scores")
@click.option("--data", required=True, type=click.Path(file_okay=False), help="folder of clean held-out images")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="BakeNet (or colorize) .safetensors [default: the shipped model]")
@click.option("-o", "--output", "--out", "out", cls=AliasOption, default="bake-eval", show_default=True, type=click.Path(), metavar="DIRECTORY",
              help="folder for eval.json and eval.md")
@click.option("--cases", default=4, show_default=True, type=click.IntRange(1, 255),
              help="fixed-seed degradations per image")
@click.option("--seed", default=None, type=int, help="degradation seed [default: 2024]")
@click.option("--crop", default=0, show_default=True, type=click.IntRange(0),
              help="centre crop in pixels after down-scaling (0 = whole image)")
@click.option("--downscale", default="auto", show_default=True,
              help="as in training: auto (/2, /3 from 3840 px, /6 from 7680 px) or a factor (1 = off)")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), show_default=True)
@click.option("--compare-cpu/--no-compare-cpu", default=True, show_default=True,
              help="also score the previous default model (the per-pixel `cpu` preset)")
@click.option("--precision", default="fp32", type=click.Choice(["fp32", "bf16"]), show_default=True,
              help="model arithmetic, as `render --precision` (to measure what bf16 costs)")
@click.option("--flicker", is_flag=True,
              help="temporal stability instead: panning test shots with grain and one degradation each, "
                   "restored with --temporal frame, window and shot (frame-to-frame colour jitter and dE)")
@click.option("--keyframes", is_flag=True,
              help="learning from keys instead: panning test shots (one degradation each, a hue-keyed "
                   "secondary, a grey shot to colourise); `bake-seq learn` on the clean first frame, scored on "
                   "the other frames beside doing nothing and the blind model")
@click.option("--temporal", "temporal_eval", is_flag=True,
              help="shots whose light changes instead (white-balance drift, exposure ramp, random flicker, film "
                   "breathing, a hard cut, steady light with motion): learned from one key or keys at both ends "
                   "with --follow off and auto, beside doing nothing and the blind model; and --op deflicker "
                   "without keys (train/temporal_eval.py)")
@click.option("--grain", default=None, type=click.FloatRange(0, 0.2),
              help="--keyframes / --temporal: Gaussian grain (sigma) on the plates [default: 0, --temporal 0.01]")
@click.option("--deflicker-window", default=6.0, show_default=True, type=click.FloatRange(0.0, 1000.0),
              help="--temporal: the deflicker operator's window (frames, sigma)")
@click.option("--shot-frames", default=24, show_default=True, type=click.IntRange(3, 1000),
              help="--flicker / --keyframes: frames per test shot (--keyframes default 12)")
@click.option("--window", default=9, show_default=True, type=click.IntRange(1, 1001),
              help="--flicker: the window mode's frames")
def command(model_name, data, checkpoint, out, cases, seed, crop, downscale, device, compare_cpu, precision,
            flicker, keyframes, temporal_eval, grain, deflicker_window, shot_frames, window):
    """Score a checkpoint against doing nothing, grey-world white balance and the previous model.

    Each clean image gets fixed-seed degradations of every family (darkroom, ASC CDL, white
    balance, fade, exposure, two combined; see train/grades.py) and is also given undegraded (a
    restorer must not damage a clean frame). Reports, per family, mean and 95th-percentile
    CIEDE2000 over all pixels, the ratio to doing nothing, and mean PSNR; writes OUT/eval.json
    and OUT/eval.md. Models run through the render path (the Bake operator), on whole images.

    --model colorize: each image becomes greyscale (Oklab lightness) with fixed-seed synthetic
    damage; scores SSIM over the frame and over the damaged pixels and CIEDE2000 to the colour
    original for the grey input, OpenCV Telea inpainting of the grey, and the model (through the
    Colorize operator) with the true mask and finding the damage itself.
    """
    import torch

    from bake_seq.sequences.safe_write import check_target

    # before minutes of evaluating: the report folder can take the report
    check_target(os.path.join(out, "report"), overwrite=True, what="report", fix="choose another -o folder")
    if model_name == "colorize":
        return colorize_eval(data, checkpoint, out, cases, seed, crop, downscale, device)
    if flicker:
        return flicker_eval(data, checkpoint, out, seed, downscale, device, shot_frames, window)
    if keyframes:
        frames = shot_frames if click.get_current_context().get_parameter_source("shot_frames").name == "COMMANDLINE" else 12
        return keyframe_eval(data, checkpoint, out, seed, downscale, frames, grain or 0.0)
    if temporal_eval:
        return temporal_eval_command(data, checkpoint, out, seed, downscale, shot_frames,
                                     0.01 if grain is None else grain, deflicker_window)

    from bake_node.node import get_operator
    from bake_node.operators.bake import CPU_CHECKPOINT
    from bake_seq.train.data import load_folder
    from bake_seq.train.evaluate import EVAL_SEED, family_table, grey_world, run_family_eval

    images = load_folder(data, downscale=downscale)
    if crop:
        from bake_seq.train.data import Image, centre_crop
        images = [Image(im.name, centre_crop(im.pixels, crop)) for im in images]

    def through_operator(path):
        op = get_operator("bake")
        op.prepare({"checkpoint": path, "device": device, "tile": 0, "precision": precision,
                    "temporal": "frame"})  # every case is a still of its own

        def run(rgb: torch.Tensor) -> torch.Tensor:
            result = op.process(rgb.permute(1, 2, 0).contiguous().numpy(), 0)
            return torch.from_numpy(result).permute(2, 0, 1).clamp(0.0, 1.0)
        return op, run

    op, model = through_operator(checkpoint)
    methods = {"grey-world": grey_world}
    if compare_cpu and CPU_CHECKPOINT.exists() and op.checkpoint.path != str(CPU_CHECKPOINT):
        methods["previous cpu model"] = through_operator(str(CPU_CHECKPOINT))[1]
    methods[f"model ({op.checkpoint.info.preset})"] = model
    report = run_family_eval(images, methods, cases, EVAL_SEED if seed is None else seed)
    report.update({"checkpoint": op.checkpoint.path, "checkpoint_sha256": op.checkpoint.sha256,
                   "preset": op.checkpoint.info.preset, "precision": precision, "data": data, "downscale": downscale,
                   "crop": crop})
    write_report(out, "eval", report, family_table(report["results"]),
                 f"Checkpoint `{Path(op.checkpoint.path).name}` (preset {report['preset']}), images: "
                 f"{', '.join(report['images'])}; {cases} fixed-seed degradations per image and family "
                 f"(seed {report['seed']}), whole images.")


def write_report(out: str, stem: str, report: dict, table: str, intro: str) -> None:
    """OUT/<stem>.json (everything) and OUT/<stem>.md (``intro`` and the table); the table on stdout."""
    from bake_seq.sequences.safe_write import write_files

    folder = Path(out)
    # The report folder is this command's: running it again replaces its own two files.
    write_files([(folder / f"{stem}.json", json.dumps(report, indent=2) + "\n"), (folder / f"{stem}.md", f"{intro}\n\n{table}")],
                overwrite=True, what="report", fix="choose another -o folder")
    click.echo(table)
    click.echo(f"wrote {folder / f'{stem}.json'} and {folder / f'{stem}.md'}", err=True)


def flicker_eval(data, checkpoint, out, seed, downscale, device, shot_frames, window) -> None:
    from bake_node.node import get_operator
    from bake_seq.train.data import load_folder
    from bake_seq.train.flicker import flicker_table, run_flicker

    images = load_folder(data, downscale=downscale)

    def make_op(mode):
        op = get_operator("bake")
        op.prepare({"checkpoint": checkpoint, "device": device, "tile": 0, "temporal": mode, "window": window})
        return op

    report = run_flicker(images, make_op, frames=shot_frames, seed=2024 if seed is None else seed)
    op = make_op("frame")
    report.update({"checkpoint": op.checkpoint.path, "checkpoint_sha256": op.checkpoint.sha256, "window": window,
                   "data": data})
    write_report(out, "flicker", report, flicker_table(report),
                 f"Checkpoint `{Path(op.checkpoint.path).name}`, images: {', '.join(report['images'])}; one "
                 f"panning shot of {shot_frames} frames per image and family, grain sigma {report['grain']}, "
                 f"window {window}. Jitter: std over frames of the mean OklabP colour x 100; drift: the same "
                 f"of (result - clean frame); dE: CIEDE2000 to the clean frames.")


def shot_eval(data, downscale, run) -> dict:
    """The held-out images through a shot evaluation (``run(images, say)``), its progress on
    stderr; the report, with the data folder named."""
    from bake_seq.train.data import load_folder

    report = run(load_folder(data, downscale=downscale), lambda text: click.echo(text, err=True))
    report["data"] = data
    return report


def keyframe_eval(data, checkpoint, out, seed, downscale, frames, grain) -> None:
    from bake_seq.train.keyframe_eval import keyframe_table, run_keyframe_eval

    report = shot_eval(data, downscale, lambda images, say: run_keyframe_eval(
        images, frames=frames, grain=grain, seed=2024 if seed is None else seed, blind_checkpoint=checkpoint, say=say))
    write_report(out, "keyframes", report, keyframe_table(report),
                 f"Images: {', '.join(report['images'])}; one panning shot of {frames} frames per image and family "
                 f"({report['size'][1]}x{report['size'][0]}, grain sigma {grain}); key = the clean first frame, "
                 f"scored on the other {frames - 1} frames (mean CIEDE2000); blind = the shipped model with "
                 f"--temporal shot. Colourise: the grey shot, key = the colour first frame.")


def temporal_eval_command(data, checkpoint, out, seed, downscale, frames, grain, window) -> None:
    from bake_seq.train.temporal_eval import run_temporal_eval, temporal_table

    report = shot_eval(data, downscale, lambda images, say: run_temporal_eval(
        images, frames=frames, grain=grain, seed=2024 if seed is None else seed, window=window,
        blind_checkpoint=checkpoint, say=say))
    write_report(out, "temporal", report, temporal_table(report),
                 f"Images: {', '.join(report['images'])}; one shot of {frames} frames per image and family "
                 f"({report['size'][1]}x{report['size'][0]}: a pan with a push-in and a moving object, grain sigma "
                 f"{grain}). Keys: a fixed `{report['grade_family']}` grade over the changing light, key = the clean "
                 f"frame; scored on the frames that are not keys (mean CIEDE2000; ratios to doing nothing; worst "
                 f"frame = the largest per-frame ratio over every image). Blind = the shipped model, --temporal shot.")


def colorize_eval(data, checkpoint, out, cases, seed, crop, downscale, device) -> None:
    import torch

    from bake_node.node import get_operator
    from bake_seq.train.colorize import (EVAL_SEED, grey_input, grey_lightness, grey_srgb, markdown_table,
                                         per_image_table, run_eval, telea)
    from bake_seq.train.data import load_folder

    images = load_folder(data, downscale=downscale)
    operators = {}
    for fill, chroma in (("model", -1.0), ("telea", -1.0), ("model", 1.0)):
        operators[fill, chroma] = get_operator("colorize")
        operators[fill, chroma].prepare({"colorize_checkpoint": checkpoint, "device": device, "tile": 0,
                                         "detect_damage": True, "fill": fill, "chroma": chroma})
    op = operators["model", -1.0]

    def through_operator(give_mask: bool, fill: str = "model", chroma: float = -1.0):
        def run(case):
            grey = case.grey.permute(1, 2, 0).contiguous().numpy()
            result = operators[fill, chroma].process(grey, 0, mask=case.mask[0].numpy() if give_mask else None)
            return torch.from_numpy(result).permute(2, 0, 1).clamp(0.0, 1.0)
        return run

    def lightness_only(method):  # the model's repair without its colour: how much colour costs
        return lambda case: grey_srgb(grey_lightness(method(case)[None])[0])

    default_fill = op.defaults()["fill"]

    def fill_label(fill):
        return f"fill={fill}" + (" (default)" if fill == default_fill else "")

    methods = {"grey input (damage left in)": grey_input, "Telea inpainting, grey (true mask)": telea}
    for fill in ("model", "telea"):
        methods[f"model, true mask, {fill_label(fill)}"] = through_operator(True, fill)
        methods[f"model, damage found, {fill_label(fill)}"] = through_operator(False, fill)
    methods["model's lightness only (grey), true mask, fill=model"] = lightness_only(through_operator(True))
    if op.model.config.chroma != 1.0:  # what the calibration changed: the network's own colour strength
        methods["model, true mask, uncalibrated colour (chroma 1, fill=model)"] = through_operator(True, "model", 1.0)
    report = run_eval(images, methods, cases, EVAL_SEED if seed is None else seed, crop=crop)
    info = op.checkpoint.info
    report.update({"model": "colorize", "checkpoint": op.checkpoint.path, "checkpoint_sha256": op.checkpoint.sha256,
                   "preset": info.preset, "chroma": op.model.config.chroma, "training_steps": info.training.get("steps"), "data": data,
                   "downscale": downscale})
    cover = report["mask_coverage"]
    write_report(out, "eval", report, markdown_table(report["results"]) + "\n" + per_image_table(report["results"]),
                 f"Checkpoint `{Path(op.checkpoint.path).name}` (colorize, preset {info.preset}, calibrated chroma {op.model.config.chroma:g}), images: "
                 f"{', '.join(report['images'])}; {cases} fixed-seed damage masks each (seed {report['seed']}, "
                 f"coverage {cover['min']:.1%}-{cover['max']:.1%}, mean {cover['mean']:.1%}).")
