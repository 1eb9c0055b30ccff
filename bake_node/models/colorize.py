"""ColorizeNet, top to bottom: a small U-Net that colourises a greyscale frame and repairs its
damaged regions, in OklabP (issue 9; spec/seed-systems.md section A).

Input (N, 3, H, W):
    0  L     the grey frame's OklabP lightness (2 Lok - 1), damage included
    1  mask  1 = damaged, 0 = intact (all 0 when no mask is given)
    2  given 1 everywhere when channel 1 is a real mask, 0 when the net must find the damage
Output (N, 4, H, W):
    0-2  OklabP (L, a, b): a and b predicted everywhere; L is the input's outside the damage and
         the network's inside it (so intact lightness is kept exactly)
    3    damage logit (trained with BCE against the synthetic masks)

a and b are scaled by ``config.chroma``, a saturation calibrated after training (1 while
training), so that an unsure prediction stays near neutral instead of a confident wrong colour.

When no mask is given the damage used for the L composite is sigmoid(logit): soft while
training (so the composite's loss reaches the mask head), thresholded at 0.5 in eval mode, so an
intact pixel keeps its lightness bit for bit.

Fully convolutional, no normalisation layers (batch/instance/group statistics would make a tile's
result depend on what else is in the tile). Frames are padded (replicate, bottom/right) to a
multiple of 2**levels; with tiles and halos that are multiples of 2**levels every tile's pooling
grid lines up with the whole frame's, so tiling changes results only by float rounding.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..palette import srgb_to_oklabp

IN_CHANNELS = 3
OUT_CHANNELS = 4


@dataclass(frozen=True)
class ColorizeConfig:
    width: int = 24  # channels at full resolution, doubled at every level down
    levels: int = 3  # 2x down-samplings; the bottleneck works at 1 / 2**levels
    convs: int = 2  # 3x3 convolutions per level
    slope: float = 0.2  # LeakyReLU
    # Calibrated saturation: the predicted a/b are multiplied by this (1 = as trained). Chosen
    # after training on held-out photos so that no photo comes back further from its colour
    # original than its grey input (`python -m bake_seq.train.calibrate_colorize`).
    chroma: float = 1.0

    def __post_init__(self):
        if self.width <= 0 or self.levels < 1 or self.convs < 1:
            raise ValueError(f"width, levels and convs must be positive, got {self}")
        if not 0.0 <= self.chroma <= 2.0:  # also refuses NaN
            raise ValueError(f"chroma must be within [0, 2], got {self.chroma}")

    @property
    def multiple(self) -> int:
        """Frame sizes, tile sizes and halos are kept to multiples of this."""
        return 2 ** self.levels

    @property
    def receptive_radius(self) -> int:
        """Pixels of context an output pixel sees on each side (an upper bound: each 3x3 conv
        adds its stride, each 2x2 pooling and 2x2 transposed conv adds its stride)."""
        radius, stride = 0, 1
        for _ in range(self.levels):
            radius += self.convs * stride + stride  # convs, then 2x2 average pooling
            stride *= 2
        radius += self.convs * stride  # bottleneck
        for _ in range(self.levels):
            radius += stride  # 2x2 transposed conv (conservative)
            stride //= 2
            radius += self.convs * stride
        return radius

    @property
    def halo(self) -> int:
        """The receptive radius rounded up to ``multiple`` (tile alignment)."""
        return -(-self.receptive_radius // self.multiple) * self.multiple

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    # ~0.48 M parameters, ~40 k MACs per pixel: trains on a 2-core CPU (the shipped model).
    "small": ColorizeConfig(width=16, levels=3),
    # ~1.1 M parameters: the same design a step wider.
    "base": ColorizeConfig(width=24, levels=3),
    # ~1.1 M parameters, one level deeper: 137 px receptive radius, so a frame of a few hundred
    # pixels is seen nearly whole (sky, water and foliage told apart by where they are).
    "context": ColorizeConfig(width=12, levels=4),
    # For tests.
    "tiny": ColorizeConfig(width=4, levels=2, convs=1),
}


def conv_stack(cin: int, cout: int, convs: int, slope: float) -> nn.Sequential:
    layers = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.LeakyReLU(slope)]
    return nn.Sequential(*layers)


class ColorizeNet(nn.Module):
    def __init__(self, config: ColorizeConfig = PRESETS["small"]):
        super().__init__()
        self.config = config
        w, n, c = config.width, config.levels, config.convs
        widths = [w * 2 ** i for i in range(n + 1)]
        self.down = nn.ModuleList(conv_stack(IN_CHANNELS if i == 0 else widths[i - 1], widths[i], c, config.slope)
                                  for i in range(n))
        self.bottleneck = conv_stack(widths[n - 1], widths[n], c, config.slope)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(n))
        self.merge = nn.ModuleList(conv_stack(2 * widths[i], widths[i], c, config.slope) for i in range(n))
        self.head = nn.Conv2d(w, OUT_CHANNELS, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2)
        x = self.bottleneck(x)
        for i in reversed(range(self.config.levels)):
            x = self.merge[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        m = self.config.multiple
        padded = F.pad(x, (0, -width % m, 0, -height % m), mode="replicate")
        raw = self.features(padded)[..., :height, :width]
        grey, mask, given = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        logit = raw[:, 3:4]
        found = torch.sigmoid(logit)
        if not self.training:
            found = (found > 0.5).to(x.dtype)
        damage = given * mask + (1.0 - given) * found
        lightness = grey + damage * (raw[:, 0:1] - grey)
        return torch.cat([lightness, raw[:, 1:3] * self.config.chroma, logit], dim=1)


def grey_lightness(srgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB -> (N, 1, H, W) OklabP L: the greyscale the model is trained on and the
    operator computes from a plate. Float64 colour maths, float32 result."""
    return srgb_to_oklabp(srgb.double())[:, :1].float()


def model_input(lightness: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """OklabP L (N, 1, H, W) and a mask (N, 1, H, W) or None (the net finds the damage) -> the
    network's 3-channel input."""
    if mask is None:
        zeros = torch.zeros_like(lightness)
        return torch.cat([lightness, zeros, zeros], dim=1)
    return torch.cat([lightness, mask.to(lightness.dtype), torch.ones_like(lightness)], dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
