"""`bake-seq grade SEQ -o shot_010.cube`: the shot's correction as a LUT and a grade record.

The LUT is sampled through the render's own per-pixel path (plate -> working space -> the
global model's grade -> output space), so applying it with OpenColorIO reproduces `bake-seq
render` up to the LUT's interpolation error (measured in the README). The record beside it
(shot_010.cube.json) holds the exact grade parameters, so `render --grade shot_010.cube.json` is
bit-identical to the render that estimated them; `render --grade shot_010.cube` applies the LUT
as it is now (edited by a colourist, say).
"""
from __future__ import annotations

import os
from dataclasses import replace

import click
from bake_seq.sequences.safe_write import write_files

from ..cli import KnobHelp
from ..lut import EVEN_SIZE, LUT_SIZES, SHAPED_SIZE
from .submit import with_render_options

LUT_SPACES = ("auto", "plate", "shaped", "working")


@with_render_options("output", "overwrite", "json_summary", "quiet", "grade")
@click.command("grade", cls=KnobHelp, epilog="""\b
Examples:
  bake-seq grade shot_010/####.dpx -o shot_010.cube
  bake-seq grade plate.####.exr -o sh010.clf --size 33
  bake-seq grade shot_010/####.dpx -o shot_010.json --temporal window --window 25
  bake-seq render shot_010/####.dpx --grade shot_010.cube -o graded/####.dpx
""")
@click.option("-o", "--output", "lut_path", required=True, type=click.Path(dir_okay=False),
              help="LUT to write (.cube, .clf or .spi3d, plus a .json record beside it), or only the "
                   "grade record (.json)")
@click.option("--size", type=click.Choice(("auto", *map(str, LUT_SIZES))), default="auto", show_default=True,
              help=f"LUT lattice points per axis; auto = {SHAPED_SIZE} for a shaped .clf (~41 MB: 65 left "
                   "film-density plates 3 16-bit codes off at the 99.9th percentile, 97 holds 2), "
                   f"else {EVEN_SIZE}")
@click.option("--lut-space", type=click.Choice(LUT_SPACES), default="auto", show_default=True,
              help="the LUT's input: 'plate' = the plate's code values on an even [0,1] lattice (one "
                   "OCIOFileTransform in Nuke; integer plates only), 'shaped' (.clf only) = the plate's "
                   "values of any range, converted inside the file to sRGB Encoded Rec.709 and through a "
                   "1D shaper to a lattice placed where the correction bends (log, scene-linear and float "
                   "plates), 'working' = sRGB Encoded Rec.709 (wrap it in colour-space conversions); "
                   "auto = shaped for a .clf of a plate in another space than sRGB Encoded Rec.709, else "
                   "plate for integer plates, working for float ones")
@click.option("--overwrite", is_flag=True, help="replace an existing LUT or record (it may hold a colourist's edits)")
def command(lut_path, size, lut_space, overwrite, sequence, **opts):
    """Estimate SEQUENCE's colour correction and write it as a 3D LUT plus a grade record.

    The frames are read once (only thumbnails are kept); the correction is the one `bake-seq
    render` would apply with the same options (default --temporal auto = one per shot).
    """
    from bake_seq.sequences.safe_write import check_target

    from ..cli import apply_config, make_request, map_paths, operator_for
    from ..errors import SettingsError
    from ..lut import sidecar_path
    from ..render import command_inputs, load_frame, plan_render, writable_folder
    from ..shot_grade import LUT_EXTENSIONS, grade_json

    ext = os.path.splitext(lut_path)[1].lower()
    if ext not in (*LUT_EXTENSIONS, ".json"):
        raise SettingsError(lut_path, f"cannot write a {ext or 'extension-less'} LUT",
                            "end -o in .cube, .clf, .spi3d or .json (the grade record alone)")
    if lut_space == "shaped" and ext != ".clf":
        raise SettingsError(lut_path, f"a {ext} file cannot hold the colour conversions of a shaped LUT",
                            "end -o in .clf, or use --lut-space plate or working")
    record_path = sidecar_path(lut_path)
    targets = [lut_path] if ext == ".json" else [lut_path, record_path]
    sequence, opts = map_paths(sequence, apply_config(opts))
    if opts.get("op_name", "bake") != "bake":
        raise SettingsError(None, f"operator {opts['op_name']!r} has no colour correction to export",
                            "bake-seq grade works with --op bake")
    plan = plan_render(make_request(sequence, **opts))
    target = {"inputs": command_inputs(plan, opts), "overwrite": overwrite, "what": "LUT or grade record"}
    for path in targets:  # early, before minutes of estimating; checked again as they are placed
        check_target(path, **target)
    writable_folder(os.path.dirname(os.path.abspath(lut_path)), "choose another -o")
    op = operator_for({**opts, "op_name": "bake"})
    if op.is_shot:
        return write_shot_lut(op, plan, lut_path, ext, size, lut_space, target)
    if not op.is_global:
        raise SettingsError(op.checkpoint.path, "is a per-pixel BakeNet: its correction is not one colour map",
                            "use the global model (the default checkpoint)")
    click.echo(f"bake-seq: estimating the {op.temporal} correction from {len(plan.frames)} frames", err=True)
    grade = op.analyse(plan.frames, lambda n: load_frame(plan, n).rgb)
    rows = grade.parameters
    one = bool((rows == rows[0]).all())
    about, lut_file = plan_about(plan, op), []
    if ext != ".json":
        if not one:
            raise SettingsError(lut_path, f"--temporal {grade.temporal} gives a different correction per frame: "
                                "no single LUT holds it", "use --temporal shot, or -o FILE.json for the record")
        model = f"model {grade.about.get('checkpoint')} sha256 {grade.about.get('checkpoint_sha256')}"
        sampled, text = sample_lut(op, plan, lut_path, size, lut_space, grade.frames[0],
                                   [f"bake-seq grade of {plan.pattern} frames {format_frames(grade.frames)}", model])
        about, lut_file = about | sampled, [(lut_path, text)]
    write_files([(record_path, grade_json(replace(grade, about={**grade.about, **about}))), *lut_file], **target)
    written = " and ".join(targets)
    click.echo(f"wrote {written}: {grade.temporal} correction from {len(grade.frames)} frames")
    if ext != ".json":
        click.echo(f"  bake-seq render {plan.pattern} --grade {lut_path}   (the LUT)")
    click.echo(f"  bake-seq render {plan.pattern} --grade {record_path}   (exact)")


def plan_about(plan, op) -> dict:
    """What the record beside a LUT says about the plate and colour spaces it was made for."""
    return {"plate": str(plan.pattern), "input_colorspace": plan.input_colorspace.value,
            "output_colorspace": plan.output_colorspace.value, "ocio_config": plan.config_source.value,
            "ocio_config_id": plan.config_id, "bit_depth": plan.bit_depth.value,
            "range_policy": op.settings["range_policy"]}


def sample_lut(op, plan, lut_path: str, size: str, lut_space: str, frame: int,
               comments: list[str]) -> tuple[dict, str]:
    """The LUT: the lattice sampled through the render's own per-pixel path (plate space ->
    working space -> ``op.process`` at ``frame`` -> output space); returns what the record says
    of it, and the file's text. A shaped lattice (lut.py) holds the colour conversions exactly
    and samples ``op.process`` on working-space points."""
    from bake_seq.ocio.config import WORKING_SPACE
    from bake_seq.ocio.convert import convert, shaped_lut_clf

    from ..lut import half_shaper, lattice_image, lut_grid, lut_text, shaped_axis

    ext = os.path.splitext(lut_path)[1].lower()
    space = lut_space if lut_space != "auto" else auto_lut_space(plan, ext)
    size = int(size) if size != "auto" else (SHAPED_SIZE if space == "shaped" else EVEN_SIZE)
    lut_in = WORKING_SPACE if space == "working" else plan.input_colorspace.value
    lut_out = WORKING_SPACE if space == "working" else plan.output_colorspace.value
    title = f"bake-seq {os.path.basename(str(plan.pattern))}"
    if space == "shaped":
        points = shaped_axis(size, *working_range(plan))
        values = op.process(lattice_image(points), frame)
        comments = [comments[0], f"input: {lut_in}; output: {lut_out}; converted to {WORKING_SPACE} and back "
                    f"exactly, the lattice on {size} working-space points per axis "
                    f"({points[0]:g} to {points[-1]:g}, 0 and 1 among them)", *comments[1:]]
        text = shaped_lut_clf(plan.config, lut_in, WORKING_SPACE, lut_out, half_shaper(points), values, title,
                              comments)
    else:
        if lut_space == "auto" and ext != ".clf" and not plate_is_working(plan):
            why = (f"an even lattice over {lut_in} codes is off by up to ~100 16-bit codes in saturated and "
                   "near-black colours" if space == "plate" else
                   f"its [0, 1] lattice in {WORKING_SPACE} clips values above 1 (wrap it in conversions)")
            click.echo(f"bake-seq: note: a {ext} holds no colour conversion: {why} (docs/shots.md); "
                       "-o FILE.clf writes a shaped LUT (<= 2 codes for 99.9 % of photographed plates)", err=True)
        working = convert(lut_grid(size), plan.config, lut_in, WORKING_SPACE)
        values = convert(op.process(working, frame), plan.config, WORKING_SPACE, lut_out)
        comments = [comments[0], f"input: {lut_in}; output: {lut_out}; apply with tetrahedral interpolation",
                    *comments[1:]]
        text = lut_text(ext, values, title, comments)
    return {"lut": os.path.basename(lut_path), "lut_size": size, "lut_colorspace": lut_in,
            "lut_output_colorspace": lut_out, "lut_lattice": "shaped" if space == "shaped" else "even",
            **({"lut_working_colorspace": WORKING_SPACE} if space == "shaped" else {})}, text


def plate_is_working(plan) -> bool:
    from bake_seq.ocio.config import WORKING_SPACE
    from bake_seq.ocio.convert import same_space

    return same_space(plan.config, plan.input_colorspace.value, WORKING_SPACE)


def auto_lut_space(plan, ext: str) -> str:
    """shaped for a .clf of a plate in another space than the working one (log, scene-linear,
    float: an even lattice over its codes misses the render's bends, docs/shots.md); else the
    plate's codes for integer plates and the working space for float ones (a [0, 1] lattice
    cannot hold scene-linear values)."""
    if ext == ".clf" and not plate_is_working(plan):
        return "shaped"
    return "working" if plan.first.is_float else "plate"


def working_range(plan) -> tuple[float, float]:
    """The lowest and highest working-space value a plate's pixel can have: integer plates' code
    values [0, 1], float plates' the half-float range (a 9^3 grid: the conversions are monotonic
    per channel around one matrix, so the extremes sit on the corners)."""
    import numpy as np

    from bake_seq.ocio.config import WORKING_SPACE
    from bake_seq.ocio.convert import convert

    from ..lut import HALF_MAX

    axis = np.linspace(-HALF_MAX, HALF_MAX, 9) if plan.first.is_float else np.linspace(0.0, 1.0, 9)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    corners = np.stack([r, g, b], axis=-1).reshape(1, -1, 3).astype(np.float32)
    working = convert(corners, plan.config, plan.input_colorspace.value, WORKING_SPACE).astype(np.float64)
    working = np.clip(working[np.isfinite(working)], -HALF_MAX, HALF_MAX)
    return float(min(working.min(), 0.0)), float(max(working.max(), 1.0))


def write_shot_lut(op, plan, lut_path: str, ext: str, size: str, lut_space: str, target: dict) -> None:
    """A correction learned from keyframes (`bake-seq learn`) as a LUT: the same colour map at
    every frame the LUT is for (one key, or frames beyond the keys' span, or one frame)."""
    import json

    from ..errors import SettingsError
    from ..lut import sidecar_path
    from ..models.shot import key_weights

    name = os.path.basename(op.checkpoint.path)
    if ext == ".json":
        raise SettingsError(lut_path, f"{name} is a learned correction: the checkpoint itself is its exact record",
                            f"render with --checkpoint {op.checkpoint.path}, or end -o in .cube, .clf or .spi3d")
    config = op.model.config
    if config.local_dim:
        raise SettingsError(op.checkpoint.path, "was learned with --local (a per-pixel network that looks at "
                            "neighbouring pixels): no LUT holds it", "learn without --local to export a LUT")
    from ..render import analyse_shot

    analyse_shot(plan, op, lambda text: click.echo(f"bake-seq: {text}", err=True))  # --follow: the plate's change
    if op.follow is not None:
        blends = {op.follow.for_frame(n, config.frames) for n in plan.frames}
    else:
        blends = {tuple(key_weights(config.frames, n)) for n in plan.frames}
    if len(blends) > 1:
        why = " (the plate's colour changes between them)" if op.follow is not None else ""
        raise SettingsError(lut_path, f"the keys at frames {format_frames(config.frames)} give frames "
                            f"{format_frames(plan.frames)} different corrections{why}: no single LUT holds them",
                            "write one LUT per frame (--frames N) or per key's frame")
    frame = plan.frames[0]
    sampled, text = sample_lut(op, plan, lut_path, size, lut_space, frame, [
        f"bake-seq grade of {plan.pattern} frames {format_frames(plan.frames)}",
        f"learned correction {name} sha256 {op.checkpoint.sha256}"])
    about = plan_about(plan, op) | sampled
    about |= {"format": "bake-seq-lut", "model": "shot", "checkpoint": name,
              "checkpoint_sha256": op.checkpoint.sha256, "key_frames": list(config.frames),
              "frames": list(plan.frames)}
    record = sidecar_path(lut_path)
    write_files([(record, json.dumps(about, indent=1) + "\n"), (lut_path, text)], **target)
    click.echo(f"wrote {lut_path} and {record}: the learned correction {name} at frames {format_frames(plan.frames)}")
    click.echo(f"  bake-seq render {plan.pattern} --grade {lut_path}   (the LUT)")
    click.echo(f"  bake-seq render {plan.pattern} --checkpoint {op.checkpoint.path}   (exact)")


def format_frames(frames) -> str:
    from bake_seq.sequences.pattern import format_frame_ranges

    return format_frame_ranges(list(frames))
