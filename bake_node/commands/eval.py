"""`bake-seq eval`: score a checkpoint on clean held-out images (the scoring lives in train/)."""
from __future__ import annotations

import json
from pathlib import Path

import click

EPILOG = """\b
Examples:
  bake-seq eval --data data/bundled/holdout                      # the shipped model
  bake-seq eval --data holdout/ --checkpoint runs/v5/checkpoints/best/model.safetensors -o eval_v5
"""


@click.command("eval", epilog=EPILOG)
@click.option("--data", required=True, type=click.Path(file_okay=False), help="folder of clean held-out images")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="BakeNet .safetensors [default: the shipped model]")
@click.option("-o", "--out", default="bake-eval", show_default=True, type=click.Path(file_okay=False),
              help="folder for eval.json and eval.md")
@click.option("--cases", default=4, show_default=True, type=click.IntRange(1, 255),
              help="fixed-seed degradations per image")
@click.option("--seed", default=None, type=int, help="degradation seed [default: 2024]")
@click.option("--crop", default=0, show_default=True, type=click.IntRange(0),
              help="centre crop in pixels after down-scaling (0 = whole image)")
@click.option("--downscale", default="auto", show_default=True,
              help="as in training: auto (/2, /3 from 3840 px, /6 from 7680 px) or a factor (1 = off)")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), show_default=True)
@click.option("--precision", default="fp32", type=click.Choice(["fp32", "bf16"]), show_default=True,
              help="model arithmetic, as `render --precision` (to measure what bf16 costs)")
def command(data, checkpoint, out, cases, seed, crop, downscale, device, precision):
    """Score a checkpoint against doing nothing and grey-world white balance.

    Each clean image gets fixed-seed darkroom degradations (the ones the model is trained to
    undo) and is also given undegraded (a restorer must not damage a clean frame). Reports mean
    and 95th-percentile CIEDE2000 over all pixels and mean PSNR; writes OUT/eval.json and
    OUT/eval.md. The model runs through the render path (the Bake operator).
    """
    import torch

    from bake_node.node import get_operator
    from train.data import load_folder
    from train.evaluate import EVAL_SEED, markdown_table, run_eval

    images = load_folder(data, downscale=downscale)
    op = get_operator("bake")
    op.prepare({"checkpoint": checkpoint, "device": device, "tile": 0, "precision": precision})

    def model(rgb: torch.Tensor) -> torch.Tensor:
        result = op.process(rgb.permute(1, 2, 0).contiguous().numpy(), 0)
        return torch.from_numpy(result).permute(2, 0, 1).clamp(0.0, 1.0)

    report = run_eval(images, model, cases, EVAL_SEED if seed is None else seed, crop=crop)
    report.update({"checkpoint": op.checkpoint.path, "checkpoint_sha256": op.checkpoint.sha256,
                   "preset": op.checkpoint.info.preset, "precision": precision, "data": data, "downscale": downscale, "crop": crop})
    table = markdown_table(report["results"])
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "eval.md").write_text(f"Checkpoint `{Path(op.checkpoint.path).name}` (preset {report['preset']}), "
                                    f"images: {', '.join(report['images'])}; {cases} degradations each, "
                                    f"seed {report['seed']}.\n\n{table}")
    click.echo(table)
    click.echo(f"wrote {folder / 'eval.json'} and {folder / 'eval.md'}", err=True)
