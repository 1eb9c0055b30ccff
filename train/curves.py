"""Learning curves of global BakeNet runs: each validation's scores against steps, as ratios.

    python -m bake_seq.train.curves runs/g53 runs/gfull --val-data data/debian/val \\
        --config train/configs/global-cpu.yaml [--plot curves.png]

For every validation a run logged (log.jsonl), prints the clean frames' CIEDE2000 and each
family's CIEDE2000 as a ratio to doing nothing, plus the worst family's distance from its target
(what picks the best checkpoint). "Doing nothing" is scored here on the same fixed-seed cases
the runs validated on (rebuilt from --val-data with the training's seed), so runs on different
training sets but one validation set compare directly: the effect of the data alone.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bake_node.errors import BakeError

from .config import load_config
from .data import load_folder
from .report import read_log, save_figure
from .restore import TARGETS, GlobalTask


def nothing_scores(val_data: str, config: str | None) -> dict[str, float]:
    """Doing nothing, on the cases GlobalTask.set_validation builds from the run's config."""
    cfg = load_config(config)
    task = GlobalTask(cfg)
    task.set_validation(load_folder(val_data, cfg.ocio, cfg.input_colorspace, cfg.bit_depth, cfg.downscale))
    return task.nothing


def curve(run: str | Path, nothing: dict[str, float]) -> list[dict]:
    """One row per validation: step, clean CIEDE2000, each family's ratio to doing nothing, worst."""
    rows = []
    for record in read_log(Path(run) / "log.jsonl"):
        if "val_clean" not in record:
            continue
        row = {"step": record["step"], "clean": record["val_clean"]}
        for name, value in nothing.items():
            if name != "clean" and f"val_{name}" in record:
                row[name] = record[f"val_{name}"] / max(value, 1e-9)
        row["worst"] = record["val_de2000"]  # the run's own selection value (GlobalTask.validate)
        rows.append(row)
    return rows


def markdown(name: str, rows: list[dict]) -> str:
    if not rows:
        return f"{name}: no validation logged yet\n"
    columns = [c for c in rows[0] if c != "step"]
    best = min(rows, key=lambda r: r["worst"])["step"]
    lines = [f"**{name}** (best by the selection rule: step {best})", "",
             "| step | " + " | ".join(c if c in ("clean", "worst") else f"{c} ×" for c in columns) + " |",
             "|---:|" + "---:|" * len(columns)]
    for row in rows:
        lines.append(f"| {row['step']} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def plot(curves: dict[str, list[dict]], out: str) -> None:
    import matplotlib.pyplot as plt  # report.py selected the headless backend

    names = [c for c in next(iter(r for r in curves.values() if r))[0] if c not in ("step", "worst")]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), dpi=100, squeeze=False)
    for ax, column in zip(axes[0], names):
        for run, rows in curves.items():
            ax.plot([r["step"] for r in rows], [r[column] for r in rows], "o-", ms=3, label=run)
        target = TARGETS["clean"] if column == "clean" else TARGETS.get(column, TARGETS["other"])
        ax.axhline(target, color="grey", ls="--", lw=0.8)
        ax.set_title(column if column == "clean" else f"{column} (x doing nothing)")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (with log.jsonl)")
    parser.add_argument("--val-data", required=True, help="the validation folder the runs used")
    parser.add_argument("--config", help="the runs' YAML (families, val_cases, how photos are read)")
    parser.add_argument("--plot", help="also write the curves as a PNG")
    args = parser.parse_args(argv)
    try:
        nothing = nothing_scores(args.val_data, args.config)
        print("doing nothing: " + ", ".join(f"{k} {v:.2f}" for k, v in nothing.items() if k != "clean") + "\n")
        curves = {run: curve(run, nothing) for run in args.runs}
        for run, rows in curves.items():
            print(markdown(run, rows))
        if args.plot and any(curves.values()):
            plot(curves, args.plot)
    except BakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
