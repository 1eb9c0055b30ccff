"""Colorize fixtures: a tiny randomly initialised checkpoint (no shipped model needed) and a small
greyscale plate sequence with alpha on disk."""
import numpy as np
import pytest
import torch

from bake_node.colorize_checkpoint import ColorizeInfo, save_colorize
from bake_node.models.colorize import PRESETS, ColorizeNet

TINY = PRESETS["tiny"]  # width 4, 2 levels, 1 conv per level: 20 px halo


def make_colorize_checkpoint(path, config=TINY, seed=0, gentle=False):
    """gentle: small a, b, so colours stay inside the sRGB gamut (nothing clamped; lightness
    checks hold); else strong colour and a damage head that fires somewhere."""
    torch.manual_seed(seed)
    model = ColorizeNet(config)
    with torch.no_grad():
        model.head.weight.mul_(3.0)
        if gentle:
            model.head.weight[1:3].mul_(0.02)
            model.head.bias[1:3].zero_()
    save_colorize(path, model, ColorizeInfo(preset="tiny-test", config=config, training={"note": "random test weights"}))
    return path


@pytest.fixture(scope="session")
def colorize_checkpoint(tmp_path_factory):
    return str(make_colorize_checkpoint(tmp_path_factory.mktemp("colorize") / "tiny.safetensors"))


@pytest.fixture(scope="session")
def gentle_checkpoint(tmp_path_factory):
    return str(make_colorize_checkpoint(tmp_path_factory.mktemp("colorize") / "gentle.safetensors", gentle=True))


def grey_frames(height=40, width=56, frames=2, seed=0):
    """Grey RGBA float frames (R = G = B) with a gradient and some texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for f in range(frames):
        grey = 0.2 + 0.6 * (x / width) * (0.5 + 0.5 * np.sin(y / 5.0 + f)) + rng.normal(0, 0.02, (height, width))
        grey = np.clip(grey, 0, 1).astype(np.float32)
        alpha = np.where(x < width // 2, 1.0, 0.5).astype(np.float32)
        out.append(np.stack([grey, grey, grey, alpha], axis=-1))
    return out
