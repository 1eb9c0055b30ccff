"""`bake-seq demo`: degrade a bundled photo into a small plate sequence, render it with the
default model through the real render path, and write a before/after contact sheet."""
from __future__ import annotations

from pathlib import Path

import click

from ..cli import AliasOption

FRAMES = 4
PAN_PX = 6  # the "camera" moves this far per frame, so the frames differ like a real plate
DEMO_SEED = 7
DEMO_FAMILIES = ("darkroom", "cdl", "white_balance", "exposure", "fade", "combo")
DEMO_FAMILY = "combo"  # two problems at once; README lists what each family gives


@click.command("demo")
@click.option("-o", "--output", "--out", "out", cls=AliasOption, default="bake-demo", show_default=True, type=click.Path(), metavar="DIRECTORY",
              help="folder for the plate, the render and the contact sheet")
@click.option("--image", default="coffee", show_default=True,
              help="bundled image (held out from the default model's training: chelsea, coffee, rocket)")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="BakeNet .safetensors [default: the shipped model]")
@click.option("--frames", default=FRAMES, show_default=True, type=click.IntRange(1, 50), help="frames in the plate")
@click.option("--seed", default=DEMO_SEED, show_default=True, type=int, help="degradation seed")
@click.option("--family", default=DEMO_FAMILY, show_default=True, type=click.Choice(DEMO_FAMILIES),
              help="what went wrong with the plate (train/grades.py): one draw for the whole shot")
def command(out, image, checkpoint, frames, seed, family):
    """Make OUT/plate/demo.####.png (a 16-bit plate with one colour problem for the whole shot),
    render it to OUT/restored/ with `bake-seq render`'s code, and write OUT/contact_sheet.png.

    \b
    Example:
      bake-seq demo --out /tmp/bake-demo
    """
    import numpy as np
    import torch

    from bake_node.node import get_operator
    from bake_seq.train.bundled import bundled_image
    from bake_seq.train.ciede2000 import delta_e_srgb
    from bake_seq.train.report import save_grid

    folder = Path(out)
    source = bundled_image(image).astype(np.float32) / 255.0
    crop_w = source.shape[1] - PAN_PX * (frames - 1)
    pans = [slice(i * PAN_PX, i * PAN_PX + crop_w) for i in range(frames)]
    clean = [source[:, pan] for pan in pans]
    op = get_operator("bake")
    op.prepare({"checkpoint": checkpoint, "temporal": "frame"})  # stills, each its own correction
    plan, shot = render_degraded(folder, source, family, seed, op, pans)
    plate, restored_pattern = plan.pattern.text, plan.output.text

    rows, labels, before, after = [], [], [], []
    for i, (n, (given, restored)) in enumerate(zip(plan.frames, shot)):
        de_before = float(delta_e_srgb(torch.from_numpy(clean[i]), torch.from_numpy(given)).mean())
        de_after = float(delta_e_srgb(torch.from_numpy(clean[i]), torch.from_numpy(restored)).mean())
        before.append(de_before)
        after.append(de_after)
        rows.append([given, restored, clean[i]])
        labels.append(f"frame {n}\nΔE00 {de_before:.2f} → {de_after:.2f}")
    sheet = folder / "contact_sheet.png"
    save_grid(rows, ["degraded plate", f"restored ({Path(op.checkpoint.path).name})", "original"], sheet, labels)
    click.echo(f"plate:         {plate}  ({frames} frames, 16-bit PNG, {family} seed {seed})")
    click.echo(f"restored:      {restored_pattern}")
    click.echo(f"contact sheet: {sheet}")
    for n, b, a in zip(plan.frames, before, after):
        click.echo(f"frame {n}: CIEDE2000 to the original {b:.2f} -> {a:.2f}")
    click.echo(f"mean CIEDE2000 to the original: plate {np.mean(before):.2f}, restored {np.mean(after):.2f}")
    click.echo(verdict(float(np.mean(before)), float(np.mean(after))))
    click.echo(f"every family (the whole photo as one frame, seed {seed}, rendered the same way):")
    for name in DEMO_FAMILIES:
        b, a = family_numbers(folder / "families" / name, source, name, seed, op)
        click.echo(f"  {name:<14} CIEDE2000 {b:5.2f} -> {a:5.2f}  ({a / b if b else 1.0:.2f} x the plate's error)")


def render_degraded(folder: Path, source, family: str, seed: int, op, crops: list[slice]):
    """``source`` (H,W,3 float32 sRGB) degraded by ``family`` in one draw for the whole shot (the
    families are global colour maps, so degrading the photo once and panning across it is the
    same as degrading every frame with the same parameters), each column crop written as a
    16-bit frame of FOLDER/plate/demo.####.png from 1001 and rendered by ``render``'s code to
    FOLDER/restored/: (the plan, [(plate frame, restored frame)] read back from the files)."""
    import torch

    from bake_node.render import RenderRequest, pending_frames, plan_render, render
    from bake_seq.sequences.plate import read_plate, write_plate
    from bake_seq.train import grades
    from bake_seq.train.data import seeded

    whole = torch.from_numpy(source).permute(2, 0, 1)[None].double()
    graded = grades.degrade(family, whole, seeded(seed, 0, 0))[0].permute(1, 2, 0).float().numpy()
    plate = folder / "plate" / "demo.####.png"
    for n, crop in enumerate(crops, start=1001):
        write_plate(str(plate).replace("####", str(n)), graded[:, crop], channel_names=["R", "G", "B"],
                    metadata={}, colorspace="sRGB Encoded Rec.709 (sRGB)", frame=n)
    plan = plan_render(RenderRequest(input=str(plate), output=str(folder / "restored" / "demo.####.png"),
                                     overwrite=True))
    render(plan, op, pending_frames(plan, op)[0])
    return plan, [tuple(read_plate(pattern.path(n), None).pixels[..., :3] for pattern in (plan.pattern, plan.output))
                  for n in plan.frames]


def family_numbers(folder: Path, source, family: str, seed: int, op) -> tuple[float, float]:
    """One frame of ``source`` degraded by ``family`` and rendered (``render_degraded``): its
    CIEDE2000 to the original before and after."""
    import torch

    from bake_seq.train.ciede2000 import delta_e_srgb

    _, [frames] = render_degraded(folder, source, family, seed, op, [slice(None)])
    return tuple(float(delta_e_srgb(torch.from_numpy(source), torch.from_numpy(f)).mean()) for f in frames)


def verdict(before: float, after: float) -> str:
    """The model's result in words, next to its numbers (no spin: worse is said to be worse)."""
    if after > before:
        return f"verdict: the model made this plate WORSE ({after / before:.2f} x the plate's error)"
    ratio = after / before if before else 1.0
    if ratio > 0.9:
        return f"verdict: barely restored ({ratio:.2f} x the plate's error; the README's eval has the held-out numbers)"
    return f"verdict: restored to {ratio:.2f} x the plate's error"
