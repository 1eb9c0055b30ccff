"""`bake-seq learn PLATE --key FRAME=FILE -o shot.safetensors`: the shot's correction from keys.

An artist corrects a few frames of the plate (a grade, a colourised still from the client); this
learns the correction from those pairs and writes it as a checkpoint that `render --checkpoint`
(or, with --op colorize, `render --op colorize --colorize-checkpoint`), ComfyUI, Nuke, `submit`,
`export` and `grade` take like any model. The fitting lives in train/ (learn_shot, learn_colorize);
this module reads the frames as `render` does and writes the file.
"""
from __future__ import annotations

import json
import os
import sys
import time

import click

from ..cli import COLOURSPACE, AliasOption


class KeyType(click.ParamType):
    """FRAME=FILE: a plate frame number and the artist's corrected version of that frame."""

    name = "FRAME=FILE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        frame, sep, path = str(value).partition("=")
        if not sep or not path or not frame.strip().lstrip("-").isdigit():
            self.fail(f"{value!r} is not FRAME=FILE (e.g. --key 1001=graded/shot.1001.png)", param, ctx)
        return int(frame), path


EPILOG = """\b
Examples:
  bake-seq learn shot_010/####.dpx --key 1001=graded/shot_010.1001.tif -o shot_010.safetensors
  bake-seq render shot_010/####.dpx --checkpoint shot_010.safetensors -o out/####.dpx
  bake-seq learn shot_010/####.dpx --key 1001=g/1001.tif --key 1100=g/1100.tif -o sh010.safetensors
  bake-seq learn grey/####.png --op colorize --key 1001=colour.1001.png -o colour.safetensors
  bake-seq render grey/####.png --op colorize --colorize-checkpoint colour.safetensors
  bake-seq grade shot_010/####.dpx --checkpoint shot_010.safetensors -o shot_010.cube
"""


@click.command("learn", epilog=EPILOG)
@click.argument("plate", type=click.Path())
@click.option("--key", "keys", type=KeyType(), multiple=True, required=True,
              help="FRAME=FILE: the corrected version of plate frame FRAME (same size, pixel-aligned; any "
                   "format render reads); repeat for more keys")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="the learned correction to write (.safetensors)")
@click.option("--op", "op_name", default="bake", show_default=True, type=click.Choice(["bake", "colorize"]),
              help="bake: learn a colour correction; colorize: learn this grey plate's colours")
@click.option("--key-colorspace", type=COLOURSPACE, help="colour space of the key files (default: from their metadata/format, "
                                       "as render decides a plate's)")
@click.option("--bit-depth", "--bit_depth", "bit_depth", cls=AliasOption, type=click.Choice(["8", "10", "12", "14", "16"]),
              help="code-value range of the integer plate (default: its header)")
@click.option("--ocio", "ocio_config", metavar="CONFIG", type=click.Path(dir_okay=False),
              help="OCIO config (default $OCIO, else the pinned built-in studio config)")
@click.option("--input-colorspace", "-i", "input_colorspace", type=COLOURSPACE, help="plate colour space (default: from metadata/format)")
@click.option("--local", is_flag=True, help="also fine-tune the per-pixel BakeNet on the keys (corrections that "
                                            "depend on surroundings, not on colour alone); minutes, and no LUT export")
@click.option("--lut-size", default=17, show_default=True, type=click.IntRange(0, 33),
              help="points per axis of the residual colour lattice (0 = the grade alone)")
@click.option("--steps", type=click.IntRange(1, 100000),
              help="training steps of --local (default 300) or --op colorize (default 400)")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2 ** 31 - 1))
@click.option("--max-minutes", default=10.0, show_default=True, type=click.FloatRange(0),
              help="stop --local / colorize training after this long (0 = no limit); the colour stages "
                   "always finish (seconds). A cut run is recorded, and depends on the machine's speed")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="for --local and colorize training (the colour stages run on the CPU: deterministic)")
@click.option("--overwrite", is_flag=True, help="replace an existing output file")
@click.option("--json", "json_summary", is_flag=True, help="print a JSON summary on stdout at the end")
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
def command(plate, keys, output, op_name, key_colorspace, bit_depth, ocio_config, input_colorspace, local, lut_size,
            steps, seed, max_minutes, device, overwrite, json_summary, quiet):
    """Learn PLATE's correction from an artist's corrected frames (keys) and write it as a model.

    Each stage (global grade, colour lattice, --local network) is kept only if it lowers the
    error on regions of the keys it never saw. With keys at several frames, frames between keys
    blend the two nearest keys' corrections by frame distance. Same keys and seed give the same file.
    """
    from ..cli import make_request
    from bake_seq.sequences.safe_write import check_target

    from ..errors import SettingsError
    from ..render import load_frame, plan_render

    started = time.monotonic()
    frames = [frame for frame, _ in keys]
    if len(set(frames)) != len(frames):
        dup = next(f for f in frames if frames.count(f) > 1)
        raise SettingsError(None, f"frame {dup} has more than one --key", "give one key per frame")
    if not output.lower().endswith(".safetensors"):
        raise SettingsError(output, "is not a .safetensors file name", "end -o in .safetensors")
    if lut_size == 1:
        raise SettingsError(None, "--lut-size 1 is no lattice", "use 0 (the grade alone) or 2 to 33 points per axis")
    if local and op_name == "colorize":
        raise SettingsError(None, "--local is a stage of --op bake", "drop --local (colorize always learns per pixel)")
    if op_name == "bake" and steps is not None and not local:
        raise SettingsError(None, "--steps sets the --local stage's steps", "add --local, or drop --steps")
    plan = plan_render(make_request(plate, frames=sorted(frames), bit_depth=bit_depth, ocio_config=ocio_config,
                                    input_colorspace=input_colorspace))
    target = {"inputs": [plan.pattern.path(n) for n in plan.pattern.scan()] + [path for _, path in keys],
              "overwrite": overwrite}
    check_target(output, what="learned model", **target)  # now, not after minutes of learning
    say = (lambda text: None) if quiet else (lambda text: click.echo(f"bake-seq: {text}", err=True))
    pairs = []
    for frame, path in sorted(keys):
        pairs.append(read_pair(plan, frame, path, key_colorspace, load_frame, say))
    model, record, save = learn_pairs(pairs, op_name, seed=seed, lut_size=lut_size, local=local, steps=steps,
                                      max_minutes=max_minutes, device=device, say=say, progress=progress_printer(quiet))
    record.update(learned_from(plan, op_name, seed, max_minutes))
    if op_name == "bake":  # render follows the plate's colour change from the keys: say where it cannot
        record["plate_change"] = plate_change(plan, sorted(frames), say)
    save(output, model, record, **target)  # checked again as it is placed: never over a file that appeared meanwhile
    seconds = time.monotonic() - started
    summary = {"output": output, "op": op_name, "seconds": round(seconds, 2), **record}
    if json_summary:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(report_lines(output, op_name, record, seconds))


LOW_CONFIDENCE = 0.5  # a frame's measurement below this is reported (blur, a flash, little in common)


def plate_change(plan, keys: list[int], say) -> dict:
    """Measure how the plate's colour changes from frame to frame (what `render --follow auto`
    applies) and warn, with numbers, where following cannot work: segments after a cut without a
    key (the correction of another shot's key does not hold there) and frames measured with low
    confidence. Returns what the record keeps."""
    from bake_seq.sequences.pattern import format_frame_ranges

    from .. import temporal
    from ..render import load_frame

    frames = plan.pattern.scan()
    say(f"measuring the plate's colour change over {len(frames)} frames (what render follows between keys)")
    analysis = temporal.analyse_frames(frames, lambda n: load_frame(plan, n).rgb)
    follow = temporal.follow(analysis, tuple(keys))
    segments: dict[int, list[int]] = {}
    for record in analysis.frames:
        segments.setdefault(record.segment, []).append(record.frame)
    unkeyed = [members for members in segments.values() if not set(members) & set(keys)]
    for members in unkeyed:
        start = members[0]
        where = f"after the cut at frame {start}" if start != frames[0] else "before the first cut"
        say(f"warning: frames {format_frame_ranges(members)} ({where}) have no key: render blends the keys of "
            f"another shot there; add a key in {format_frame_ranges(members)} (e.g. --key {members[len(members) // 2]}=FILE)")
    weak = [r for r in analysis.frames if r.confidence < LOW_CONFIDENCE and r.frame not in keys
            and r.frame != segments[r.segment][0]]
    if weak:
        worst = min(weak, key=lambda r: r.confidence)
        say(f"warning: the colour change of frames {format_frame_ranges([r.frame for r in weak])} was measured "
            f"with low confidence (lowest {worst.confidence:.2f} at frame {worst.frame}; 1 = the same picture): "
            f"check them, or add a key there")
    largest = max(analysis.frames, key=lambda r: max(abs(s) for s in r.state.stops))
    stops = max(abs(s) for s in largest.state.stops)
    steady = all(temporal.steady(analysis, s) for s in segments)
    if not steady:
        say(f"the plate's colour changes by up to {stops:.2f} stops (frame {largest.frame}, against its "
            f"segment's first frame): render follows it from the keys (--follow auto)")
    return {"cuts": analysis.cuts, "unkeyed": [format_frame_ranges(m) for m in unkeyed],
            "low_confidence": [r.frame for r in weak], "largest_stops": round(stops, 4),
            "largest_at": largest.frame, "steady": steady, "analysis_sha256": temporal.analysis_sha256(analysis),
            "followed_frames": len(follow.plan)}


def learn_pairs(pairs, op_name: str, seed: int = 0, lut_size: int = 17, local: bool = False, steps: int | None = None,
                max_minutes: float = 10.0, device: str = "auto", say=lambda text: None, progress=lambda *a: None):
    """Checked key pairs -> (model, record, save function): what every host runs (the CLI here,
    ComfyUI's Learn From Keyframes node), so they learn the same file from the same keys."""
    from bake_seq.train.keyframes import check_pair

    alignment = [check_pair(pair) for pair in pairs]
    if op_name == "colorize":
        from bake_seq.train.learn_colorize import ColorizeLearnOptions, learn_colorize, save_learned_colorize

        options = ColorizeLearnOptions(seed=seed, steps=steps or 400, max_minutes=max_minutes, device=device,
                                       say=say, progress=progress)
        model, record = learn_colorize(pairs, options)
        save = save_learned_colorize
    else:
        from bake_seq.train.learn_shot import LearnOptions, learn_shot, save_shot

        options = LearnOptions(seed=seed, lut_size=lut_size, local=local, local_steps=steps or 300,
                               max_minutes=max_minutes, device=device, say=say, progress=progress)
        model, record = learn_shot(pairs, options)
        save = save_shot
    for pair, scores, found in zip(pairs, record["keys"], alignment):
        scores.update({"file": pair.path, "sha256": pair.sha256, "colorspace": pair.colorspace,
                       "alignment": {"structure_match": round(found["match"], 4),
                                     "largest_offset_px": round(found["shift"], 3)}})
    return model, record, save


def read_pair(plan, frame: int, path: str, key_colorspace: str | None, load_frame, say):
    """The plate frame and its key, both in the working space, checked to be usable as a pair."""
    from bake_seq.sequences.errors import PlateError
    from bake_seq.train.keyframes import KeyPair

    from ..checkpoint import file_sha256

    if frame not in plan.frames:
        raise PlateError(path, f"--key names frame {frame}, which the plate {plan.pattern} does not have",
                         "check the frame number before '='")
    plate = load_frame(plan, frame).rgb
    key, space = read_key(plan, frame, path, key_colorspace, say)
    return KeyPair(frame, plate, key, path, file_sha256(path), space)


def read_key(plan, frame: int, path: str, key_colorspace: str | None, say):
    """A key file -> (working-space RGB, its colour space), read with render's rules."""
    import numpy as np

    from bake_seq.ocio.config import WORKING_SPACE, resolve_colorspace
    from bake_seq.ocio.convert import convert
    from bake_seq.ocio.guess import guess_with_evidence
    from bake_seq.sequences.errors import PlateError
    from bake_seq.sequences.plate import read_header, read_plate

    from ..render import split_channels

    if not os.path.isfile(path):
        raise PlateError(path, f"key for frame {frame} not found", "check the path after '='")
    header = read_header(path)
    pixels = read_plate(path, None).pixels
    rgb, _ = split_channels(pixels, header)
    if not np.isfinite(rgb).all():
        raise PlateError(path, f"key for frame {frame} holds NaN or infinite pixels", "fix the key and export it again")
    if key_colorspace:
        space = resolve_colorspace(plan.config, key_colorspace, "--key-colorspace")
    else:
        ext = os.path.splitext(path)[1].lstrip(".")
        space, reason, evidence = guess_with_evidence(plan.config, path, header.colorspace_tag, header.is_float, ext)
        if evidence == "file type":
            say(f"warning: key {os.path.basename(path)}: colour space {space!r} is a guess from the file type "
                f"({reason}); pass --key-colorspace if it is another")
    return convert(rgb, plan.config, space, WORKING_SPACE), space


def learned_from(plan, op_name: str, seed: int, max_minutes: float) -> dict:
    from .. import __version__

    return {"learned_by": "bake-seq learn", "op": op_name, "bake_seq": __version__, "seed": seed,
            "plate": str(plan.pattern), "plate_colorspace": plan.input_colorspace.value,
            "bit_depth": plan.bit_depth.value, "ocio_config": plan.config_source.value,
            "ocio_config_id": plan.config_id, "max_minutes": max_minutes,
            "working_space": "sRGB Encoded Rec.709 (sRGB) -> OklabP"}


def progress_printer(quiet: bool):
    """Training progress: a line redrawn in place on a terminal, one line per finished stage in a log."""
    tty = sys.stderr.isatty()

    def progress(stage: str, done: int, total: int) -> None:
        if quiet:
            return
        if tty:
            click.echo(f"\rbake-seq: {stage} {done}/{total}" + ("\n" if done == total else ""), err=True, nl=False)
        elif done == total:
            click.echo(f"bake-seq: {stage} {done}/{total}", err=True)
    return progress


def report_lines(output: str, op_name: str, record: dict, seconds: float) -> str:
    lines = [f"wrote {output} in {seconds:.1f} s"]
    if op_name == "colorize":
        lines.append(f"  colour strength {record['chroma']:g}")
        for k in record["keys"]:
            lines.append(f"  key {k['frame']}: held-out CIEDE2000 {k['held_out_de']:.2f} (grey plate {k['grey_held_out_de']:.2f})")
        lines.append(f"  bake-seq render {record['plate']} --op colorize --colorize-checkpoint {output}")
        return "\n".join(lines)
    kept = [name for name, stage in record["stages"].items() if stage.get("kept")]
    lines.append(f"  stages kept: {', '.join(kept)}")
    for k in record["keys"]:
        best = k["grade"]["held_out_de"]
        if k.get("lut", {}).get("kept"):
            best = k["lut"]["held_out_de"]
        if k.get("local", {}).get("kept"):
            best = k["local"]["held_out_de"]
        other = f", one grade from the other keys {k['held_out_key_de']:.2f}" if "held_out_key_de" in k else ""
        lines.append(f"  key {k['frame']}: held-out CIEDE2000 {best:.2f} (doing nothing {k['do_nothing_de']:.2f}{other})")
    lines.append(f"  bake-seq render {record['plate']} --checkpoint {output}")
    return "\n".join(lines)
