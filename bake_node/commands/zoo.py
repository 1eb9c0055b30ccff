"""`bake-seq zoo info FILE`: what a super-resolution / face-restoration weight file holds.

Running a zoo model is an operator (`bake-seq render --op zoo --weights FILE`), so hosts and the
farm get it too; see docs/zoo.md.
"""
from __future__ import annotations

import json

import click


@click.group("zoo")
def command():
    """Super-resolution and face restoration with user-supplied weights (SwinIR, Real-ESRGAN RRDB
    and Compact, GFPGAN, CodeFormer) loaded by spandrel. No weights ship with bake-seq: take them
    from the projects' GitHub release pages or OpenModelDB.

    \b
    Examples:
      bake-seq zoo info RealESRGAN_x2plus.pth
      bake-seq render plate.####.exr --op zoo --weights RealESRGAN_x2plus.pth -o up/plate.####.exr
    """


@command.command("info")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def info(weights, as_json):
    """Show the architecture, scale, channels, parameter count, purpose, size requirements and
    tiling hints of WEIGHTS (.safetensors, or .pth/.pt read with weights_only: never code).

    \b
    Examples:
      bake-seq zoo info 4x-UltraSharp.safetensors
      bake-seq zoo info codeformer.pth --json
    """
    from ..zoo import load_cached

    report = load_cached(weights).describe()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    req = report["size_requirements"]
    sizes = [f"minimum {req['minimum']} px" if req["minimum"] else "",
             f"multiple of {req['multiple_of']}" if req["multiple_of"] > 1 else "",
             "square" if req["square"] else "", f"exactly {req['fixed']}x{req['fixed']}" if req["fixed"] else ""]
    precisions = ["fp32"] + [p for p, ok in (("fp16", report["supports_fp16"]), ("bf16", report["supports_bf16"])) if ok]
    rows = {
        "file": f"{report['file']} ({report['file_bytes']:,} bytes)",
        "architecture": f"{report['architecture']} ({report['architecture_name']})",
        "purpose": f"{report['purpose']}: {report['description']}",
        "tags": ", ".join(report["tags"]) or "-",
        "scale": f"{report['scale']}x",
        "channels": f"{report['input_channels']} in, {report['output_channels']} out",
        "parameters": f"{report['parameters']:,}",
        "size": ", ".join(s for s in sizes if s) or "any",
        "tiling": f"{report['tiling']}: {report['tiling_hint']}",
        "precision": ", ".join(precisions),
        "licence": report["licence"],
        "sha256": report["sha256"],
    }
    width = max(map(len, rows))
    for key, value in rows.items():
        click.echo(f"{key:<{width}}  {value}")
