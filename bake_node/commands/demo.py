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
@click.option("-o", "--output", "--out", "out", cls=AliasOption, default="bake-demo", show_default=True, type=click.Path(file_okay=False),
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
    from bake_node.render import RenderRequest, pending_frames, plan_render, render
    from bake_seq.sequences.plate import read_plate, write_plate
    from bake_seq.train import grades
    from bake_seq.train.bundled import bundled_image
    from bake_seq.train.ciede2000 import delta_e_srgb
    from bake_seq.train.data import seeded
    from bake_seq.train.report import save_grid

    folder = Path(out)
    source = bundled_image(image).astype(np.float32) / 255.0
    height, width = source.shape[:2]
    crop_w = width - PAN_PX * (frames - 1)
    clean = [source[:, i * PAN_PX:i * PAN_PX + crop_w] for i in range(frames)]
    # One draw for the whole shot: a plate has one colour problem, not one per frame. The
    # families are global colour maps, so degrading the whole photo once and panning across it
    # is the same as degrading every frame with the same parameters.
    whole = torch.from_numpy(source).permute(2, 0, 1)[None].double()
    graded = grades.degrade(family, whole, seeded(seed, 0, 0))[0].permute(1, 2, 0).float().numpy()
    degraded = [graded[:, i * PAN_PX:i * PAN_PX + crop_w] for i in range(frames)]

    plate = folder / "plate" / "demo.####.png"
    for n, frame in enumerate(degraded, start=1001):
        write_plate(str(plate).replace("####", str(n)), frame, channel_names=["R", "G", "B"], metadata={},
                    colorspace="sRGB Encoded Rec.709 (sRGB)", frame=n)

    restored_pattern = folder / "restored" / "demo.####.png"
    plan = plan_render(RenderRequest(input=str(plate), output=str(restored_pattern), overwrite=True))
    op = get_operator("bake")
    op.prepare({"checkpoint": checkpoint, "temporal": "frame"})  # stills, each its own correction
    todo, _ = pending_frames(plan, op)
    render(plan, op, todo)

    rows, labels, before, after = [], [], [], []
    for i, n in enumerate(plan.frames):
        restored = read_plate(str(restored_pattern).replace("####", str(n)), None).pixels[..., :3]
        given = read_plate(plan.pattern.path(n), None).pixels[..., :3]
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
        b, a = family_numbers(folder / "families" / name, whole, name, seed, op)
        click.echo(f"  {name:<14} CIEDE2000 {b:5.2f} -> {a:5.2f}  ({a / b if b else 1.0:.2f} x the plate's error)")


def family_numbers(folder: Path, whole, family: str, seed: int, op) -> tuple[float, float]:
    """One frame of ``whole`` (1,3,H,W float64 sRGB) degraded by ``family``, written as a 16-bit
    plate and rendered by ``render``: its CIEDE2000 to the original before and after."""
    import torch

    from bake_node.render import RenderRequest, pending_frames, plan_render, render
    from bake_seq.sequences.plate import read_plate, write_plate
    from bake_seq.train import grades
    from bake_seq.train.ciede2000 import delta_e_srgb
    from bake_seq.train.data import seeded

    clean = whole[0].permute(1, 2, 0).float()
    given = grades.degrade(family, whole, seeded(seed, 0, 0))[0].permute(1, 2, 0).float().numpy()
    plate = folder / "plate" / "demo.####.png"
    write_plate(str(plate).replace("####", "1001"), given, channel_names=["R", "G", "B"], metadata={},
                colorspace="sRGB Encoded Rec.709 (sRGB)", frame=1001)
    restored = folder / "restored" / "demo.####.png"
    plan = plan_render(RenderRequest(input=str(plate), output=str(restored), overwrite=True))
    render(plan, op, pending_frames(plan, op)[0])
    frames = [read_plate(str(p).replace("####", "1001"), None).pixels[..., :3] for p in (plate, restored)]
    return tuple(float(delta_e_srgb(clean, torch.from_numpy(f)).mean()) for f in frames)


def verdict(before: float, after: float) -> str:
    """The model's result in words, next to its numbers (no spin: worse is said to be worse)."""
    if after > before:
        return f"verdict: the model made this plate WORSE ({after / before:.2f} x the plate's error)"
    ratio = after / before if before else 1.0
    if ratio > 0.9:
        return f"verdict: barely restored ({ratio:.2f} x the plate's error; the README's eval has the held-out numbers)"
    return f"verdict: restored to {ratio:.2f} x the plate's error"
