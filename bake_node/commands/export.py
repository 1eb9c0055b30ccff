"""`bake-seq export`: the Bake operator as a TorchScript (Nuke Inference) or ONNX model file."""
from __future__ import annotations

import click

from ..cli import AliasOption

EPILOG = """\b
Examples:
  bake-seq export --format torchscript -o bake.pt --checkpoint bakenet-v5.safetensors
  bake-seq export --format onnx -o bake.onnx --range-policy clip

\b
In Nuke: CatFileCreator (Torchscript File: bake.pt, Channels In/Out: rgb), add Int knobs
named tile and preserve_range to expose them; then Inference between two OCIOColorSpace
nodes (plate -> sRGB Encoded Rec.709 (sRGB) -> Inference -> back). See docs/hosts.md.
"""


@click.command("export", epilog=EPILOG)
@click.option("--format", "fmt", type=click.Choice(("torchscript", "onnx")), required=True,
              help="torchscript: Nuke CatFileCreator/Inference, libtorch; onnx: onnxruntime and "
                   "hosts that take ONNX (dynamic height and width)")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="model file to write")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="BakeNet checkpoint (.safetensors); default: the shipped model")
@click.option("--tile", type=click.IntRange(0), default=512, show_default=True,
              help="TorchScript: tile size inside forward (0 = whole frame), a knob in Nuke")
@click.option("--range-policy", type=click.Choice(("preserve", "clip")), default="preserve",
              show_default=True, help="values outside [0,1]: pass the excess through, or clip")
@click.option("--color-maths", "--colour-maths", "colour_maths", cls=AliasOption, type=click.Choice(("float64", "float32")), default="float64", show_default=True,
              help="precision of the sRGB<->OklabP conversions inside the model; float64 matches "
                   "bake-seq render, float32 suits runtimes without float64 (TensorRT, Core ML)")
def command(fmt, output, checkpoint, tile, range_policy, colour_maths):
    """Write the Bake operator (sRGB -> OklabP -> BakeNet -> OklabP -> sRGB) as one model file.

    The file takes and returns one 1x3xHxW sRGB-encoded image; it is checked against the
    eager model before this command reports success.
    """
    from ..export import contract, export_onnx, export_torchscript, inference_module, verify
    from ..errors import CheckpointError, SettingsError
    from ..operators.bake import default_checkpoint, load_cached

    path = checkpoint or default_checkpoint()
    if not path:
        raise CheckpointError(None, "no checkpoint given and no default model is installed",
                              "pass --checkpoint FILE.safetensors")
    loaded = load_cached(path)
    if loaded.info.preset == "shot":  # learned from keyframes (`bake-seq learn`)
        raise SettingsError(path, "a correction learned from keyframes has no TorchScript/ONNX export yet",
                            "for Nuke's OCIOFileTransform or any OCIO host write it as a LUT: bake-seq grade "
                            "PLATE --checkpoint FILE -o shot.cube (learned without --local); or render it with "
                            "bake-seq render / the BakeSeq Nuke node / ComfyUI")
    if loaded.info.config.receptive_radius == 0:  # the global preset: a per-frame estimate, not a conv net
        raise SettingsError(path, "the global BakeNet (whole-frame grade) has no TorchScript/ONNX export yet",
                            "export the per-pixel model instead: --checkpoint "
                            "bake_node/weights/bakenet-cpu.safetensors; in Nuke the BakeSeq node runs the "
                            "global model through bake-seq render")
    module = inference_module(loaded.model, tile=tile, range_policy=range_policy, colour_maths=colour_maths)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401  (torch's exporter needs it)
        except ImportError:
            raise SettingsError(None, "ONNX export needs the onnx package",
                                "pip install 'bake-seq[export]' (or pip install onnx)") from None
        export_onnx(module, output, contract(module, loaded.sha256, loaded.info.preset))
    else:
        export_torchscript(module, output, contract(module, loaded.sha256, loaded.info.preset))
    difference = verify(module, output, fmt)
    checked = "not checked (onnxruntime is not installed)" if difference is None else \
        f"max |file - eager| = {difference:.1e} on a 96x80 test image"
    click.echo(f"wrote {output} ({fmt}, preset {loaded.info.preset}, "
               f"{sum(p.numel() for p in loaded.model.parameters()):,} parameters; {checked})")
    if fmt == "torchscript":
        click.echo(f"knobs (int attributes): tile={module.tile}, preserve_range={module.preserve_range}")
