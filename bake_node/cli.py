"""The `bake-seq` command line. Each command is short; decisions live in render.py.

Exit codes are listed in bake_node/errors.py and the README.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys

import click

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, exit_code_for
from .node import Knob, all_operators, get_operator
from .render import (BIT_DEPTHS, NAN_POLICIES, RenderRequest, analyse_shot, check_output_folder, guess_warning,
                     pending_frames, plan_render, render)

EPILOG_RENDER = """\b
Examples:
  bake-seq render shot_010/####.dpx --bit-depth 10
  bake-seq render plate.%04d.exr --frames 1001-1100x2 -o out/plate.####.exr
  bake-seq render 'scan/@@@@.png' --input-colorspace 'sRGB Encoded Rec.709 (sRGB)' --json
  bake-seq render plate.####.exr --op zoo --weights RealESRGAN_x2plus.safetensors -o up/####.exr
  bake-seq render plate.####.exr --config zoo_x2.yaml --zoo-overlap 64
"""


def frames_option(value: str | None) -> list[int] | None:
    from bake_seq.sequences.pattern import parse_frames

    return parse_frames(value) if value else None


class ColourSpaceType(click.ParamType):
    """A colour-space name (or alias) of the OCIO config: never empty. An empty string is refused
    (it would otherwise read as 'not given' and the space be guessed); whether the name exists is
    decided with the config, where the error lists the close matches."""

    name = "COLORSPACE"

    def convert(self, value, param, ctx):
        if value is None:
            return value
        if not str(value).strip():
            self.fail("is empty: name a colour space (bake-seq info --list-colorspaces), or leave the option out",
                      param, ctx)
        return str(value)


COLOURSPACE = ColourSpaceType()


class FramesType(click.ParamType):
    name = "FRAMES"

    def convert(self, value, param, ctx):
        from bake_seq.sequences.errors import PlateError

        if value is None or isinstance(value, list):
            return value
        try:
            return frames_option(value)
        except PlateError as exc:
            self.fail(str(exc), param, ctx)


class PathMapType(click.ParamType):
    """SRC=DST: a path prefix as the job names it, and what this machine calls it."""

    name = "SRC=DST"
    envvar_list_splitter = ";"  # $BAKE_SEQ_PATH_MAP='Z:\\shots=/mnt/shots;/Volumes/shots=/mnt/shots'

    def convert(self, value, param, ctx):
        src, sep, dst = str(value).partition("=")
        if not (sep and src.strip() and dst.strip()):
            self.fail(f"{value!r} is not SRC=DST, e.g. --path-map 'Z:\\shots=/mnt/shots'", param, ctx)
        return f"{src.strip()}={dst.strip()}"  # kept as text: `submit` passes it on to farm tasks


def map_path(path: str, rules) -> str:
    """Rewrite the longest matching SRC prefix (rules are "SRC=DST") to DST. Windows sources
    (drive letters, UNC or backslashes) match case-insensitively with either slash; the rest of
    the path takes DST's separator, so a job written on Windows runs on Linux and back."""
    slashed = path.replace("\\", "/")
    pairs = (rule.split("=", 1) for rule in rules)
    for src, dst in sorted(pairs, key=lambda pair: -len(pair[0])):
        prefix = src.replace("\\", "/").rstrip("/")
        windows = "\\" in src or re.match(r"[A-Za-z]:|//", prefix) is not None
        head, rest = slashed[:len(prefix)], slashed[len(prefix):]
        if (head.lower() == prefix.lower() if windows else head == prefix) and rest[:1] in ("", "/"):
            sep = "\\" if "\\" in dst and "/" not in dst else "/"
            return dst.rstrip("/\\") + rest.replace("/", sep)
    return path


def map_paths(sequence: str, opts: dict) -> tuple[str, dict]:
    """Apply --path-map to the plate and to every path option of the running command (output,
    checkpoint, OCIO config, any knob of type path): farm nodes mount storage under other names."""
    rules = opts.pop("path_map", None) or ()
    if not rules:
        return sequence, opts
    paths = {p.name for p in click.get_current_context().command.params if isinstance(p.type, click.Path)}
    mapped = {k: map_path(v, rules) if k in paths and isinstance(v, str) else v for k, v in opts.items()}
    return map_path(sequence, rules), mapped


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange lets 'nan' through (every comparison with NaN is false)."""

    def convert(self, value, param, ctx):
        result = super().convert(value, param, ctx)
        if not math.isfinite(result):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return result


class AliasOption(click.Option):
    """An option whose help shows only its first spelling: older or other spellings (--bit_depth,
    --colour-maths, --out) keep working without cluttering the help."""

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is None:
            return None
        short = [o for o in self.opts if not o.startswith("--")][:1]
        names = ", ".join(short + [o for o in self.opts if o.startswith("--")][:1])
        return (f"{names} {self.make_metavar(ctx)}" if not self.is_flag else names), record[1]


def knob_option(knob: Knob):
    """A click option generated from a node-contract knob."""
    default = "" if knob.default is None else f" [default: {knob.default}]"  # None: the help says what happens
    kwargs = {"default": None, "show_default": False, "help": f"{knob.help}{default}"}
    if knob.type == "choice":
        kwargs["type"] = click.Choice(knob.choices)
    elif knob.type == "path":
        kwargs["type"] = click.Path(dir_okay=False)
    elif knob.type is bool:
        return click.option(f"{knob.flag}/--no-{knob.flag[2:]}", knob.name, default=None, help=knob.help)
    elif knob.type in (int, float):
        kwargs["type"] = (click.IntRange if knob.type is int else FiniteFloatRange)(knob.min, knob.max)
    return click.option(knob.flag, knob.name, **kwargs)


def operator_knobs() -> list[Knob]:
    seen, knobs = set(), []
    for cls in all_operators().values():
        for knob in cls.all_knobs():
            if knob.name not in seen:
                seen.add(knob.name)
                knobs.append(knob)
    return knobs


class KnobHelp(click.Command):
    """Help that groups the operator knobs under the operator they belong to (`--op NAME`)."""

    def format_options(self, ctx, formatter):
        from .node import ENGINE_KNOBS

        owner = {k.name: "every operator" for k in ENGINE_KNOBS}
        for name, cls in sorted(all_operators().items()):
            owner.update({k.name: f"--op {name} ({cls.label})" for k in cls.knobs})
        sections: dict[str, list] = {"Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(owner.get(param.name, "Options"), []).append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title if title == "Options" else f"Options of {title}"):
                    formatter.write_dl(records)


def with_knobs(fn):
    for knob in reversed(operator_knobs()):
        fn = knob_option(knob)(fn)
    return fn


def plate_options(fn):
    """Options shared by every command that reads a plate sequence."""
    options = [
        click.option("--frames", type=FramesType(), help="frames to use: 1001-1100, 1001-1100x2, 1001,1005,1010-1020"),
        click.option("--skip-missing", is_flag=True, help="render the frames that exist instead of failing on gaps"),
        click.option("--bit-depth", "--bit_depth", "bit_depth", cls=AliasOption, type=click.Choice([str(b) for b in BIT_DEPTHS]),
                     help="code-value range of integer plates (e.g. 10 for 10-bit codes in 16-bit PNGs); "
                          "default: the first frame's header"),
        click.option("--ocio", "ocio_config", metavar="CONFIG", type=click.Path(dir_okay=False),
                     help="OCIO config (file or ocio:// URI); default $OCIO, else the pinned built-in studio config"),
        click.option("--input-colorspace", "-i", "input_colorspace", type=COLOURSPACE, help="plate colour space (default: from metadata/format)"),
        click.option("--path-map", "path_map", type=PathMapType(), multiple=True, envvar="BAKE_SEQ_PATH_MAP",
                     help="rewrite path prefixes (plate, output, checkpoint, OCIO config) for this machine, "
                          "e.g. 'Z:\\shots=/mnt/shots'; repeatable; also $BAKE_SEQ_PATH_MAP, ';'-separated"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def apply_config(opts: dict) -> dict:
    """Fold ``--config FILE`` into the options: the file names the operator and knob values; a
    knob given on the command line wins, and so does an explicit --op (if it is the same).
    A knob of another operator is refused (it would be ignored silently otherwise)."""
    from click.core import ParameterSource

    from .errors import SettingsError
    from .settings import load_settings

    path = opts.pop("config", None)
    if not path:
        refuse_foreign_knobs(opts)
        return opts
    name, settings = load_settings(path)
    explicit = click.get_current_context().get_parameter_source("op_name") is ParameterSource.COMMANDLINE
    if explicit and opts.get("op_name") != name:
        raise SettingsError(path, f"holds settings for operator {name!r}, not {opts.get('op_name')!r}",
                            f"drop --op or use --op {name}")
    merged = {**opts, "op_name": name}
    for key, value in settings.items():
        if merged.get(key) is None:
            merged[key] = value
    refuse_foreign_knobs(merged)
    return merged


def refuse_foreign_knobs(opts: dict) -> None:
    """A knob given for an operator other than --op's is an error naming the --op it needs."""
    from .errors import SettingsError

    name = opts.get("op_name") or "bake"
    operators = all_operators()
    own = {k.name for k in get_operator(name).all_knobs()}  # an unknown name is get_operator's error
    for key, value in opts.items():
        if value is None or key in own:
            continue
        owners = sorted(op for op, cls in operators.items() if key in {k.name for k in cls.knobs})
        if owners:
            flag = "--" + key.replace("_", "-")
            raise SettingsError(None, f"{flag} is a setting of operator {' / '.join(owners)}, not of {name}",
                                f"add --op {owners[0]}, or drop {flag}")


def operator_for(opts: dict):
    """The operator named by --op, prepared with the knob values among ``opts``."""
    op = get_operator(opts["op_name"])
    op.prepare({k: v for k, v in opts.items() if v is not None and k in op.defaults()})
    return op


def make_request(input_pattern: str, **opts) -> RenderRequest:
    return RenderRequest(
        input=input_pattern, output=opts.get("output"), frames=opts.get("frames"),
        skip_missing=opts.get("skip_missing", False),
        bit_depth=int(opts["bit_depth"]) if opts.get("bit_depth") else None,
        ocio=opts.get("ocio_config"), input_colorspace=opts.get("input_colorspace"),
        output_colorspace=opts.get("output_colorspace"), overwrite=opts.get("overwrite", False),
        nan_policy=opts.get("nan_policy") or "error")


def chunk_frames(layer: list[int], size: int, start: list[int] | None) -> list[int]:
    """The ``size`` frames of ``layer`` from the chunk's first frame on. OpenCue fills only
    #FRAME_START# reliably: Cuebots before mid-2024 fill #FRAME_END# as start + chunk - 1, which
    overruns the last chunk and skips frames of stepped ranges, so bake-seq counts the chunk itself."""
    from .errors import SettingsError

    if not start or start[0] not in layer:
        raise SettingsError(None, f"chunk start {start[0] if start else None} is not a frame of the layer "
                            f"({len(layer)} frames)", "pass --frames FIRST with a frame of --chunk-of")
    at = layer.index(start[0])
    return layer[at:at + size]


def use_farm_threads() -> None:
    """OpenCue books cores for a task and says how many in $CUE_THREADS: torch (and OCIO's pool)
    use that many instead of every core of the host. Results do not depend on it (README)."""
    booked = os.environ.get("CUE_THREADS", "").strip()
    if booked.isdigit() and int(booked) > 0:
        import torch

        torch.set_num_threads(int(booked))
        os.environ["BAKE_SEQ_THREADS"] = booked


class BakeGroup(click.Group):
    """Maps user errors from any layer to one line on stderr and a documented exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("bake-seq: interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            code = exit_code_for(exc)
            if code is None:
                raise
            click.echo(f"bake-seq: error: {exc}", err=True)
            raise click.exceptions.Exit(code) from None


@click.group(cls=BakeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bake-seq")
def cli():
    """bake-seq: colour restoration for plate sequences (BakeNet in OklabP), colour-managed
    with OpenColorIO, deterministic, written as 16-bit frames.

    \b
    Examples:
      bake-seq info shot_010/####.dpx
      bake-seq render shot_010/####.dpx --bit-depth 10 -o shot_010_bake/####.dpx
      bake-seq convert reference.pth -o bakenet.safetensors
    """


@cli.command("render", cls=KnobHelp, epilog=EPILOG_RENDER)
@click.argument("sequence", type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="output pattern or folder (default: <plate folder>_bake/<same names>)")
@plate_options
@click.option("--output-colorspace", type=COLOURSPACE, help="colour space to write (default: the input's)")
@click.option("--op", "op_name", default="bake", show_default=True, type=click.Choice(sorted(all_operators())),
              help="operator to run")
@click.option("--config", "config", type=click.Path(dir_okay=False),
              help="operator settings file (YAML/JSON, from `bake-seq config`): its operator and knob "
                   "values; options given here override it")
@click.option("--overwrite", is_flag=True, help="re-render frames that are already complete")
@click.option("--nan-policy", type=click.Choice(NAN_POLICIES), default="error", show_default=True,
              help="pixels with NaN/Inf: fail naming the frame, or set them to 0")
@click.option("--json", "json_summary", is_flag=True, help="print a JSON summary on stdout at the end")
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
@click.option("--chunk-of", "chunk_of", type=FramesType(), hidden=True,
              help="farm tasks: the layer's frames; --frames then names only the chunk's first frame")
@click.option("--chunk-size", "chunk_size", type=click.IntRange(1), hidden=True,
              help="farm tasks: frames per chunk, counted in --chunk-of")
@with_knobs
def render_cmd(sequence, json_summary, quiet, chunk_of, chunk_size, **opts):
    """Render SEQUENCE (e.g. shot_010/####.dpx) through an operator into 16-bit frames.

    Frames already rendered with the same checkpoint and settings are skipped (resume);
    writes are atomic; input frames are never overwritten.
    """
    from bake_seq.sequences.pattern import format_frame_ranges

    sequence, opts = map_paths(sequence, apply_config(opts))
    if chunk_of:
        opts["frames"] = chunk_frames(chunk_of, chunk_size or 1, opts.get("frames"))
    use_farm_threads()
    request = make_request(sequence, **opts)
    plan = plan_render(request)
    check_output_folder(plan)
    op = operator_for(opts)
    warning = guess_warning(plan)
    if warning:  # a warning, not progress: printed even with --quiet and --json (on stderr)
        click.echo(f"bake-seq: {warning}", err=True)
    # --json keeps stdout for the summary; progress stays on stderr (plain lines when it is a log)
    analyse_shot(plan, op, None if quiet else lambda text: click.echo(f"bake-seq: {text}", err=True))
    todo, done = pending_frames(plan, op)
    op.check_frames(todo)
    log = Reporter(len(todo), quiet)
    if log.bar is not None:  # a terminal: progress within each frame too (tiles)
        op.on_tile = log.tile
    chunk = f"chunk {format_frame_ranges(plan.frames)}"  # one farm task's frames, greppable in its log
    log.line(f"{chunk} start: {op.name}, {len(plan.frames)} frames of {plan.pattern} -> {plan.output}; "
             f"{len(done)} already done, {len(todo)} to render"
             + (f"; skipping missing {len(plan.missing)}" if plan.missing else ""))
    timings = render(plan, op, todo, progress=log.frame)
    log.close()
    rendered, elsewhere = timings.pop("rendered_frames"), timings.pop("left_to_other_renders")
    summary = {
        "input": str(plan.pattern), "output": str(plan.output), "operator": op.name,
        "frames": len(plan.frames), "rendered": rendered, "skipped_complete": len(done),
        "left_to_other_renders": elsewhere,
        "missing": plan.missing, "bit_depth": plan.bit_depth.value,
        "input_colorspace": plan.input_colorspace.value, "output_colorspace": plan.output_colorspace.value,
        "seconds": round(timings["wall_s"], 3),
        "fps": round(rendered / timings["wall_s"], 4) if rendered and timings["wall_s"] else None,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    if json_summary:
        click.echo(json.dumps(summary, indent=2))
    else:
        others = (f", {len(elsewhere)} rendered meanwhile by another process: {format_frame_ranges(elsewhere)}"
                  if elsewhere else "")
        log.line(f"{chunk} done {len(plan.frames)} frames {timings['wall_s']:.1f}s "
                 f"({rendered} rendered, {len(done)} already done{others})")




@cli.command("config", cls=KnobHelp, epilog="""\b
Examples:
  bake-seq config -o zoo_x2.yaml --op zoo --weights RealESRGAN_x2plus.safetensors --zoo-overlap 48
  bake-seq config -o grain.json --op grain --grain-preset fine
  bake-seq config -o zoo_x4.yaml --config zoo_x2.yaml --weights RealESRGAN_x4plus.safetensors
""")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="settings file to write (.yaml, .yml or .json)")
@click.option("--op", "op_name", default="bake", show_default=True, type=click.Choice(sorted(all_operators())),
              help="operator the settings are for")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="start from this settings file")
@click.option("--overwrite", is_flag=True, help="replace -o if it exists (never the --config it starts from)")
@with_knobs
def config_cmd(output, overwrite, **opts):
    """Write an operator's settings (every knob: the values given, else defaults) to a YAML or
    JSON file for `bake-seq render --config FILE`. Unknown settings in a file are an error."""
    from .settings import save_settings

    inputs = [opts["config"]] if opts.get("config") else []
    opts = apply_config(opts)  # refuses knobs of another operator
    name = opts.pop("op_name")
    save_settings(output, name, opts, inputs=inputs, overwrite=overwrite)
    click.echo(f"wrote {output} (operator {name}); use: bake-seq render SEQ --config {output}")


class Reporter:
    """A tqdm bar on a terminal (with its ETA); otherwise plain `bake-seq: ...` lines a farm
    monitor can parse (farm logs add their own timestamps): `chunk 1001-1010 start: ...`,
    `frame 1003 done 2.31s (3/10, eta 16s)`, `chunk 1001-1010 done 10 frames 23.1s (...)`."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.count, self.seconds = total, quiet, 0, 0.0
        self.bar = None
        if not quiet and sys.stderr.isatty() and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            click.echo(f"bake-seq: {text}", err=True)

    def tile(self, done: int, total: int) -> None:
        if self.bar is not None and total > 1:
            self.bar.set_postfix_str(f"tile {done}/{total}")

    def frame(self, number: int, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        if self.bar is not None:
            self.bar.set_postfix(frame=number)
            self.bar.update(1)
        else:
            eta = self.seconds / self.count * (self.total - self.count)
            self.line(f"frame {number} done {seconds:.2f}s ({self.count}/{self.total}, eta {eta:.0f}s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@cli.command()
@click.argument("sequence", type=click.Path(), required=False)
@plate_options
@click.option("--list-colorspaces", is_flag=True, help="list the config's colour spaces and exit (no SEQUENCE needed)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--temporal", is_flag=True,
              help="measure the plate's own colour change, frame by frame: one line per frame (the correction's "
                   "exposure, white balance R-G and B-G in stops, contrast, confidence), then the cuts and the "
                   "largest correction; a frame 0.5 stops brighter than its reference reads -0.5")
@click.option("--to", "temporal_to", type=click.Choice(["first", "deflicker"]), default=None,
              help="--temporal: the correction shown and written: to each segment's first frame, or to a "
                   "smoothed state of the neighbours (the flicker only; slow ramps read ~0) [default: first]")
@click.option("--window", type=FiniteFloatRange(0.5, 1000.0), default=None, metavar="SIGMA",
              help="--to deflicker: smoothing sigma in frames [default: 6, as --deflicker-window]")
@click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="--temporal: draw the per-channel stops and contrast (dashed lines at cuts) into a PNG")
@click.option("--write", "write_record", type=click.Path(dir_okay=False), metavar="FILE.json",
              help="--temporal: store the analysis (every frame's change, camera move, confidence) as JSON")
@click.option("--ccc", type=click.Path(dir_okay=False), metavar="FILE.ccc",
              help="--temporal: the corrections as an ASC CDL collection (id frame.NNNN per frame), "
                   "on LINEAR Rec.709 values")
@click.option("--overwrite", is_flag=True, help="replace existing --plot/--write/--ccc files (never a plate frame)")
def info(sequence, list_colorspaces, as_json, **opts):
    """Show what `render` would decide for SEQUENCE: frames, gaps, size, channels, bit depth and
    colour space, and why. With --temporal: how the plate's colour changes from frame to frame.

    \b
    Examples:
      bake-seq info shot_010/####.dpx --bit-depth 10
      bake-seq info shot_010/####.dpx --temporal --plot shot_010.png --ccc shot_010.ccc
      bake-seq info shot_010/####.dpx --temporal --to deflicker --window 4 --json
    """
    from bake_seq.ocio.config import list_colorspaces as names
    from bake_seq.ocio.config import resolve_config
    from bake_seq.sequences.pattern import format_frame_ranges

    if list_colorspaces and not sequence:
        click.echo("\n".join(names(resolve_config(map_paths("", opts)[1].get("ocio_config"))[0])))
        return
    if not sequence:
        raise click.UsageError("give a SEQUENCE (e.g. shot_010/####.dpx), or --list-colorspaces")
    opts["skip_missing"] = True
    sequence, opts = map_paths(sequence, opts)
    temporal = {k: opts.pop(k) for k in ("temporal", "temporal_to", "window", "plot", "write_record", "ccc",
                                          "overwrite")}
    plan = plan_render(make_request(sequence, **opts))
    if list_colorspaces:
        click.echo("\n".join(names(plan.config)))
        return
    if temporal.pop("temporal"):
        from .temporal_report import info_temporal
        return info_temporal(plan, opts, as_json, **temporal)
    if any(temporal.values()):
        raise click.UsageError("--to, --window, --plot, --write, --ccc and --overwrite need --temporal")
    first = plan.first
    gaps = plan.missing
    report = {
        "sequence": str(plan.pattern),
        "frames": format_frame_ranges(plan.frames), "frame_count": len(plan.frames),
        "gaps": format_frame_ranges(gaps) if gaps else "",
        "size": f"{first.width}x{first.height}", "channels": first.channel_names,
        "pixel_type": first.pixel_type,
        "bit_depth": plan.bit_depth.value, "bit_depth_reason": plan.bit_depth.reason,
        "ocio_config": plan.config_source.value, "ocio_config_reason": plan.config_source.reason,
        "input_colorspace": plan.input_colorspace.value, "input_colorspace_reason": plan.input_colorspace.reason,
        "input_colorspace_guessed": plan.input_colorspace.guessed,
        "default_output": str(plan.output),
        "output_colorspace": plan.output_colorspace.value, "output_colorspace_reason": plan.output_colorspace.reason,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    width = max(len(k) for k in report)
    for key, value in report.items():
        if key.endswith(("_reason", "_guessed")):
            continue
        reason = report.get(f"{key}_reason")
        click.echo(f"{key:<{width}}  {value}" + (f"   ({reason})" if reason else ""))


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="new .safetensors file")
@click.option("--preset", default="v5", show_default=True, help="architecture the reference file holds")
@click.option("--overwrite", is_flag=True, help="replace -o if it exists (never the source)")
def convert(source, output, preset, overwrite):
    """Import a reference BakeNet .pth (ema_shadow or model_state_dict) as safetensors.

    Loaded with torch.load(weights_only=True): tensors only, never code.

    \b
    Example:
      bake-seq convert checkpoints/last.pth -o bakenet-v5.safetensors
    """
    from .checkpoint import import_reference, save_checkpoint
    from .models.bakenet import PRESETS

    if preset not in PRESETS:
        from .errors import SettingsError
        raise SettingsError(None, f"unknown preset {preset!r}", f"use one of {', '.join(PRESETS)}")
    from bake_seq.sequences.safe_write import check_target

    target = {"inputs": [source], "overwrite": overwrite}
    check_target(output, what="model file", **target)
    model, info_, notes = import_reference(source, preset)
    save_checkpoint(output, model, info_, **target)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {output} ({info_.weights} weights, preset {preset})")


def _add_discovered_commands() -> None:
    from .commands import discover

    for command in discover():
        cli.add_command(command)


_add_discovered_commands()


def main() -> None:
    try:
        cli.main(prog_name="bake-seq")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:  # Ctrl-C while starting up (importing torch, loading a model)
        sys.stderr.write("bake-seq: interrupted\n")
        code = EXIT_INTERRUPTED
    except BaseException:
        import traceback
        traceback.print_exc()
        code = EXIT_INTERNAL
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: OpenImageIO's nanobind bindings print "leaked" warnings there.
    os._exit(code)


if __name__ == "__main__":
    main()
