"""`bake-seq train`: train BakeNet (or the colorize model) on a folder of clean images (the
training code lives in train/)."""
from __future__ import annotations

import json

import click

EPILOG = """\b
Examples:
  bake-seq train --data stills/ --val-data holdout/ --steps 200000
  bake-seq train --config train/configs/cpu.yaml --bundled-data data/bundled --run runs/cpu
  bake-seq train --data stills/ --run runs/v5 --resume --steps 400000     # continue a run
  bake-seq train --model colorize --config train/configs/colorize-cpu.yaml --bundled-data data/bundled \
      --run runs/colorize --max-minutes 50
"""


@click.command("train", epilog=EPILOG)
@click.option("--data", type=click.Path(file_okay=False), help="folder of clean images (any format OpenImageIO reads)")
@click.option("--val-data", type=click.Path(file_okay=False), help="held-out clean images for validation")
@click.option("--bundled-data", type=click.Path(), metavar="DIRECTORY",
              help="write the images bundled with scikit-image/matplotlib to DIR/train and DIR/holdout "
                   "and train on them (the default model's data)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML settings (see train/configs/reference.yaml); flags override it")
@click.option("--model", type=click.Choice(["bakenet", "colorize"]),
              help="what to train: bakenet (colour restoration) or colorize (greyscale + damage) [default: bakenet]")
@click.option("--run", help="run folder for checkpoints, logs and plots [default: runs/bakenet]")
@click.option("--resume", "mode", flag_value="force", help="continue the run's checkpoint (error if none)")
@click.option("--restart", "mode", flag_value="restart", help="start again, ignoring any checkpoint")
@click.option("--steps", type=click.IntRange(1), help="stop after this many optimiser steps in total")
@click.option("--epochs", type=click.IntRange(1), help="stop after this many epochs (passes over the images)")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True),
              help="also stop after this much wall time (the last epoch is checkpointed)")
@click.option("--preset", help="model preset: global (one grade per frame from the whole frame, the "
                                  "default model), v5 (reference) or cpu; colorize: small, base or tiny")
@click.option("--loss", type=click.Choice(["heo", "hyper", "distance", "l1+ssim"]),
              help="bakenet v5/cpu: 3-ch HeoLoss or 96-ch Hyper-Baked projection; global: distance "
                   "(per-pixel OklabP distance); colorize: l1+ssim")
@click.option("--crop", type=click.IntRange(8), help="training crop size in pixels [reference: 256]")
@click.option("--batch", type=click.IntRange(1), help="crops per batch [reference: 4]")
@click.option("--accum", type=click.IntRange(1), help="batches per optimiser step (gradient accumulation)")
@click.option("--lr", type=click.FloatRange(0, min_open=True), help="peak learning rate [reference: 1e-4]")
@click.option("--seed", type=int, help="random seed [reference: 42]")
@click.option("--init", type=click.Path(dir_okay=False),
              help="start from this checkpoint's weights (same model and preset; fine-tuning on new data)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="training device [default: auto]")
@click.option("--threads", type=click.IntRange(0), help="torch CPU threads (0 = torch's default)")
@click.option("--val-every", type=click.IntRange(0), help="optimiser steps between validations")
@click.option("--sample-every", type=click.IntRange(0), help="optimiser steps between before/after grids")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary on stdout at the end")
def command(config_path, mode, bundled_data, as_json, **flags):
    """Train BakeNet with the reference recipe: darkroom degradations in OklabP, AdamW, EMA.
    --model colorize trains the colorize operator's network instead: greyscale + synthetic
    damage from the same clean images, L1 + SSIM (+ BCE for the damage head), same loop.

    Checkpoints go to RUN/checkpoints/last every epoch (an epoch = one pass over the images);
    a run continues from there automatically unless --restart. The EMA weights in
    RUN/checkpoints/{last,best}/model.safetensors render directly: bake-seq render --checkpoint.
    """
    from bake_seq.train.config import load_config
    from bake_seq.train.loop import Trainer

    if bundled_data:
        from bake_seq.train.bundled import export

        train_dir, holdout_dir = export(bundled_data)
        flags["data"] = flags["data"] or str(train_dir)
        flags["val_data"] = flags["val_data"] or str(holdout_dir)
    cfg = load_config(config_path, **flags)
    if cfg.model == "colorize" and cfg.run == "runs/bakenet":  # the default run folder, per model
        cfg.run = "runs/colorize"
    trainer = Trainer(cfg, resume=mode or "auto", echo=lambda text: click.echo(text, err=True))
    click.echo(f"training {cfg.model} {cfg.preset} on {len(trainer.images)} images ({trainer.steps_per_epoch} steps/epoch), "
               f"{len(trainer.val_cases)} validation cases, loss {cfg.loss}, device {trainer.device}; "
               f"step {trainer.step} -> {trainer.total_steps}", err=True)
    summary = trainer.fit()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"done: {summary['steps']} steps; model {summary['model']}"
                   + (f"; best validation CIEDE2000 {summary['best_val_de2000']:.3f} -> {summary['best']}"
                      if summary["best_val_de2000"] is not None else ""), err=True)
