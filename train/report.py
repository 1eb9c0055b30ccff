"""Pictures of a run: the loss curve and before/after grids (matplotlib, no display needed)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: farm nodes and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path: str | Path) -> None:
    """A figure through the safe writer (rendered in memory, a few hundred kB), replacing this
    run's or report's own earlier picture."""
    from bake_seq.sequences.safe_write import write_file

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=Path(path).suffix[1:] or "png")
    finally:
        plt.close(fig)
    write_file(path, buffer.getvalue(), overwrite=True, what="picture")


def read_log(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_losses(log_path: str | Path, out_png: str | Path) -> None:
    records = read_log(log_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r and r["loss"] is not None]
    val = [(r["step"], r["val_de2000"]) for r in records if "val_de2000" in r]
    if not train:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    steps, losses = np.array(train).T
    ax.plot(steps, losses, color="tab:blue", alpha=0.3, lw=0.8, label="training loss")
    if len(losses) >= 10:  # a running mean shows the trend through per-batch noise
        window = max(5, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="tab:blue", lw=1.5, label=f"mean of {window}")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if val:
        twin = ax.twinx()
        vs, vd = np.array(val).T
        twin.plot(vs, vd, "o-", color="tab:red", label="validation CIEDE2000")
        twin.set_ylabel("validation mean CIEDE2000")
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right")
    fig.tight_layout()
    save_figure(fig, out_png)


def save_grid(rows: list[list[np.ndarray]], columns: list[str], out_png: str | Path,
              row_labels: list[str] | None = None) -> None:
    """A grid of H x W x 3 sRGB images in [0, 1]: one row per example, one column per version."""
    n_rows, n_cols = len(rows), len(columns)
    height, width = rows[0][0].shape[:2]
    scale = 3.2 / max(height, width)
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, dpi=100,
                             figsize=(n_cols * width * scale + 0.4, n_rows * height * scale + 0.5))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_png)
