"""`bake-seq export`: the Bake operator as a TorchScript (Nuke Inference) or ONNX model file."""
from __future__ import annotations

import click

from ..cli import AliasOption

EPILOG = """\b
Examples:
  bake-seq export --format torchscript -o bake.pt                  # the shipped global model
  bake-seq export --format onnx -o bake.onnx --range-policy clip
  bake-seq export --format torchscript -o v5.pt --checkpoint bakenet-v5.safetensors
  bake-seq export --format onnx -o shot_f1012.onnx --checkpoint shot.safetensors --frame 1012

\b
In Nuke: CatFileCreator (Torchscript File: bake.pt, Channels In/Out: rgb), add Int knobs
named tile and preserve_range to expose them; then Inference between two OCIOColorSpace
nodes (plate -> sRGB Encoded Rec.709 (sRGB) -> Inference -> back). The global model
estimates its grade from the whole image it gets: see docs/hosts.md for hosts that tile.
"""


@click.command("export", epilog=EPILOG)
@click.option("--format", "fmt", type=click.Choice(("torchscript", "onnx")), required=True,
              help="torchscript: Nuke CatFileCreator/Inference, libtorch; onnx: onnxruntime and "
                   "hosts that take ONNX (dynamic height and width)")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="model file to write")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="BakeNet checkpoint (.safetensors): any preset, or a correction learned with "
                   "`bake-seq learn`; default: the shipped (global) model")
@click.option("--frame", type=click.IntRange(-2 ** 31, 2 ** 31 - 1), default=None,
              help="learned corrections with several keys: the frame number whose blend of keys the "
                   "file applies (one file per frame, or per stretch of frames that take one key)")
@click.option("--tile", type=click.IntRange(0), default=512, show_default=True,
              help="TorchScript: tile size inside forward (0 = whole frame), a knob in Nuke; memory, "
                   "not results (the global model estimates its grade from the whole image first)")
@click.option("--range-policy", type=click.Choice(("preserve", "clip")), default="preserve",
              show_default=True, help="values outside [0,1]: pass the excess through, or clip")
@click.option("--overwrite", is_flag=True, help="replace -o if it exists (never the checkpoint it reads)")
@click.option("--follow-analysis", type=click.Path(dir_okay=False), metavar="FILE.json",
              help="with --frame: bake that frame's measured colour change to its keys into the file, as "
                   "render --follow auto applies it (the analysis from `bake-seq info --temporal --write`)")
@click.option("--color-maths", "--colour-maths", "colour_maths", cls=AliasOption, type=click.Choice(("float64", "float32")), default="float64", show_default=True,
              help="precision of the sRGB<->OklabP conversions inside the model; float64 matches "
                   "bake-seq render, float32 suits runtimes without float64 (TensorRT, Core ML)")
def command(fmt, output, checkpoint, frame, follow_analysis, tile, range_policy, colour_maths, overwrite):
    """Write the Bake operator (sRGB -> OklabP -> model -> OklabP -> sRGB) as one model file.

    The file takes and returns one 1x3xHxW sRGB-encoded image; it is checked against the
    eager model before this command reports success.
    """
    from bake_seq.sequences.safe_write import check_target, write_file

    from ..errors import CheckpointError, SettingsError
    from ..export import contract, inference_module, onnx_bytes, torchscript_bytes, verify
    from ..models.shot import ShotConfig
    from ..operators.bake import default_checkpoint, load_cached

    path = checkpoint or default_checkpoint()
    if not path:
        raise CheckpointError(None, "no checkpoint given and no default model is installed",
                              "pass --checkpoint FILE.safetensors")
    target = {"inputs": [path], "overwrite": overwrite, "what": f"{fmt} model"}
    check_target(output, **target)  # before the export's seconds of work; checked again as it is placed
    loaded = load_cached(path)
    config = loaded.info.config
    if isinstance(config, ShotConfig):  # learned from keyframes (`bake-seq learn`)
        if frame is None and len(config.frames) > 1:
            keys = ", ".join(map(str, config.frames))
            raise SettingsError(path, f"this correction blends {len(config.frames)} keys (frames {keys}) by frame "
                                "number; an exported file applies one frame's blend",
                                "pass --frame N (frames outside the keys' span take the nearest end key)")
        if frame is not None and not config.frames[0] <= frame <= config.frames[-1]:
            end = "first" if frame < config.frames[0] else "last"
            key = config.frames[0] if end == "first" else config.frames[-1]
            click.echo(f"bake-seq: frame {frame} is {'before' if end == 'first' else 'after'} the {end} key (frame "
                       f"{key}): the file applies that key's correction"
                       + (", after the frame's measured change to it," if follow_analysis else "")
                       + " as render does outside the keys' span", err=True)
    elif frame is not None or follow_analysis:
        given = "--frame" if frame is not None else "--follow-analysis"
        raise SettingsError(None, f"{given} applies to a correction learned from keyframes; "
                            f"{click.format_filename(path)} is the {loaded.info.preset} preset, which "
                            "estimates each frame's correction itself", f"drop {given}")
    plan = None
    if follow_analysis:
        from ..temporal import follow, load_analysis

        if frame is None:
            raise SettingsError(None, "--follow-analysis needs --frame: the plate's change is per frame",
                                "pass --frame N")
        analysis = load_analysis(follow_analysis)
        target["inputs"] = [path, follow_analysis]
        check_target(output, **target)
        if frame not in {r.frame for r in analysis.frames}:
            raise SettingsError(follow_analysis, f"holds no measurement of frame {frame}",
                                "analyse the plate frames that include it (bake-seq info --temporal --write)")
        plan = follow(analysis, config.frames).for_frame(frame, config.frames)
    module = inference_module(loaded.model, tile=tile, range_policy=range_policy, colour_maths=colour_maths,
                              frame=frame, plan=plan)
    about = contract(module, loaded.sha256, loaded.info.preset)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401  (torch's exporter needs it)
        except ImportError:
            raise SettingsError(None, "ONNX export needs the onnx package",
                                "pip install 'bake-seq[export]' (or pip install onnx)") from None
        data = onnx_bytes(module, about)
    else:
        data = torchscript_bytes(module, about)
    difference = verify(module, data, fmt)
    write_file(output, data, **target)
    checked = "not checked (onnxruntime is not installed)" if difference is None else \
        f"max |file - eager| = {difference:.1e} on a 96x80 test image"
    click.echo(f"wrote {output} ({fmt}, preset {loaded.info.preset}, {about['model']}, "
               f"{sum(p.numel() for p in loaded.model.parameters()):,} parameters; {checked})")
    if fmt == "torchscript":
        click.echo(f"knobs (int attributes): tile={module.tile}, preserve_range={module.preserve_range}")
    if about["model"] == "global BakeNet":
        click.echo("the file estimates one grade from each image it is given: give it whole frames (a host "
                   "that cuts the frame into tiles gets one grade per tile; docs/hosts.md)")
