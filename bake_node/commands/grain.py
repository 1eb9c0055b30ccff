"""`bake-seq grain analyze`: measure a plate's film grain into an editable YAML profile.

Adding grain is an operator (`bake-seq render --op grain`), so hosts and the farm get it too.
"""
from __future__ import annotations

import click

from ..cli import make_request, map_paths, plate_options


@click.group("grain")
def command():
    """Film grain: measure a plate's grain here; add grain with `bake-seq render --op grain`.

    \b
    Example (regrain a clean render like its plate):
      bake-seq grain analyze shot_010/####.dpx -o shot_010_grain.yaml
      bake-seq render cg_010/####.exr --op grain --grain-profile shot_010_grain.yaml -o cg_010_grain/
    """


@command.command("analyze")
@click.argument("sequence", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="profile to write (.yaml)")
@plate_options
@click.option("--max-frames", type=click.IntRange(1), default=8, show_default=True,
              help="without --frames, measure this many frames spread over the sequence")
@click.option("--overwrite", is_flag=True, help="replace -o if it exists")
def analyze(sequence, output, max_frames, overwrite, **opts):
    """Measure the grain of SEQUENCE (e.g. shot_010/####.dpx): per channel, noise std against
    intensity in linear light, grain size and spectrum, from the flat areas of the frames.
    Takes the same colour and bit-depth options as `render`.

    \b
    Examples:
      bake-seq grain analyze shot_010/####.dpx -o shot_010_grain.yaml
      bake-seq grain analyze scan.%04d.png --frames 1001-1010 --bit-depth 10 -o scan_grain.yaml
    """
    from bake_seq.sequences.errors import PlateError
    from bake_seq.sequences.safe_write import check_target
    from bake_seq.sequences.pattern import format_frame_ranges

    from ..grain.analyze import Blocks, estimate_profile, measure_blocks, profile_warnings
    from ..grain.linear import to_linear
    from ..grain.profile import save_profile
    from ..render import command_inputs, load_frame, plan_render

    sequence, opts = map_paths(sequence, {**opts, "output": output})
    output = opts.pop("output")
    plan = plan_render(make_request(sequence, **opts))
    target = {"inputs": command_inputs(plan, opts), "overwrite": overwrite}
    check_target(output, what="grain profile", **target)  # before reading the frames
    frames = plan.frames if opts.get("frames") else spread(plan.frames, max_frames)
    blocks = Blocks.join([measure_blocks(to_linear(load_frame(plan, n).rgb)) for n in frames])
    source = {"sequence": str(plan.pattern), "frames": format_frame_ranges(frames),
              "input_colorspace": plan.input_colorspace.value, "bit_depth": plan.bit_depth.value,
              "size": f"{plan.first.width}x{plan.first.height}"}
    try:
        profile = estimate_profile(blocks, source)
    except ValueError as exc:
        raise PlateError(str(plan.pattern), str(exc),
                         "measure frames with flat areas (sky, walls, a grey card), chosen with --frames") from None
    save_profile(profile, output, **target)
    green = profile.channels["green"]
    click.echo(f"wrote {output}: {len(frames)} frames, grain size {green.size:.2f} px (green), "
               f"std at mid grey R/G/B "
               + "/".join(f"{c.sigma_at(0.18):.4f}" for c in profile.ordered()) + " (linear)")
    for note in profile_warnings(profile):
        click.echo(f"bake-seq: warning: {note}", err=True)


def spread(frames: list[int], count: int) -> list[int]:
    """``count`` frames evenly spread over ``frames`` (all of them if there are fewer)."""
    if len(frames) <= count:
        return list(frames)
    step = (len(frames) - 1) / (count - 1) if count > 1 else 0
    return [frames[round(i * step)] for i in range(count)]
