"""`bake-seq bench`: measure the render path on this machine (numbers, not assertions)."""
from __future__ import annotations

import json

import click


@click.command("bench")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="model to measure (default: the shipped model)")
@click.option("--frames", default=3, show_default=True, help="frames in the timed render")
@click.option("--size", default="2048x1080", show_default=True, help="frame size WxH for the speed numbers")
@click.option("--rss-size", default="4096x2160", show_default=True, help="frame size for peak memory ('none' skips)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON on stdout (instead of the table)")
@click.option("--json-file", "json_path", type=click.Path(dir_okay=False), help="also write the results as JSON to this file")
@click.option("--overwrite", is_flag=True, help="replace --json-file if it exists")
def command(checkpoint, frames, size, rss_size, device, as_json, json_path, overwrite):
    """Time the render path against baselines measured in the same run.

    \b
    Example:
      bake-seq bench --json-file bench.json
      bake-seq bench --size 512x512 --rss-size none --frames 2
    """
    from bake_seq.sequences.safe_write import check_target, write_file

    from ..bench import format_table, run_bench
    from ..errors import SettingsError

    def parse(text):
        try:
            w, h = (int(v) for v in text.lower().split("x"))
            return w, h
        except ValueError:
            raise SettingsError(None, f"bad size {text!r}", "write WIDTHxHEIGHT, e.g. 2048x1080") from None

    if json_path:  # before minutes of timing; checked again as it is placed
        check_target(json_path, inputs=[checkpoint] if checkpoint else [], overwrite=overwrite, what="bench results")
    width, height = parse(size)
    rss = None if rss_size.lower() == "none" else parse(rss_size)
    result = run_bench(checkpoint, frames, width, height, rss, device,
                       progress=lambda text: click.echo(f"bench: {text}", err=True))
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))
    if json_path:
        write_file(json_path, json.dumps(result, indent=2) + "\n", inputs=[checkpoint] if checkpoint else [],
                   overwrite=overwrite, what="bench results")
