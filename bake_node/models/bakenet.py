"""BakeNet v5, top to bottom (spec/bakenet.md sections 2-3).

Everything works on NCHW tensors in OklabP. One block class (``NeMO``) is parameterised by its
kernel size; the reference copied it five times.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..palette import MACBETH_OKLABP

KERNEL_SCHEDULE = (3, 5, 7, 9, 11, 11, 9, 7, 5, 3)
STEM_CHANNELS = 6 + len(MACBETH_OKLABP)  # x, x, 24 RBFs


@dataclass(frozen=True)
class BakeNetConfig:
    dim: int = 30
    depth: int = 30
    rbf_sigma: float = 0.5

    def __post_init__(self):
        if self.depth % len(KERNEL_SCHEDULE) or self.depth <= 0:
            raise ValueError(f"depth must be a positive multiple of {len(KERNEL_SCHEDULE)}, got {self.depth}")
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")

    @property
    def kernels(self) -> tuple[int, ...]:
        repeat = self.depth // len(KERNEL_SCHEDULE)
        return tuple(k for k in KERNEL_SCHEDULE for _ in range(repeat))

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel sees on every side (90 for v5)."""
        return sum((k - 1) // 2 for k in self.kernels)

    @property
    def macs_per_pixel(self) -> int:
        c, kernels = self.dim, self.kernels
        blocks = sum(c * c * (k * k + 2) for k in kernels)
        embeds = 2 * 3 * c * c
        head = 2 * c * c + 3 * c * c + 3 * c
        stem = 0 if c == STEM_CHANNELS else STEM_CHANNELS * c
        return blocks + embeds + head + stem

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    # The reference model: 1,625,793 parameters, ~1.6 M MACs per pixel, 90 px receptive radius.
    "v5": BakeNetConfig(dim=30, depth=30),
    # ~10x fewer MACs per pixel for CPU renders and CPU training; 30 px receptive radius.
    "cpu": BakeNetConfig(dim=24, depth=10),
}


def squash(p: torch.Tensor) -> torch.Tensor:
    """T(p) = tanh(sqrt(3) p) + 1, a smooth map to (0, 2)."""
    return torch.tanh(math.sqrt(3.0) * p) + 1.0  # inline: TorchScript cannot read module globals


def _per_channel(channels: int, value: float | None = None) -> nn.Parameter:
    if value is None:
        return nn.Parameter(torch.randn(1, channels, 1, 1) * 0.75)
    return nn.Parameter(torch.full((1, channels, 1, 1), float(value)))


class HeLU(nn.Module):
    """y = (T(a)(GELU(x)T(r) - GELU(-x)T(u)) + T(b)x) / 2, per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = _per_channel(channels, 1.0)
        self.beta = _per_channel(channels, -1.0)
        self.r = _per_channel(channels)
        self.u = _per_channel(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bent = F.gelu(x) * squash(self.r) - F.gelu(-x) * squash(self.u)
        return (squash(self.alpha) * bent + squash(self.beta) * x) * 0.5


class Gate(nn.Module):
    """gate(x, raw) = (T(a) x + T(b) raw) / 2: a learned per-channel residual blend."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = _per_channel(channels, 1.0)
        self.beta = _per_channel(channels, -1.0)

    def forward(self, x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        return (squash(self.alpha) * x + squash(self.beta) * raw) * 0.5


class MixStage(nn.Module):
    """conv -> HeLU -> gate against the stage's own input."""

    def __init__(self, channels: int, kernel: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.act = HeLU(channels)
        self.gate = Gate(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.act(self.conv(x)), x)


def mix_stages(channels: int, first_kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(MixStage(channels, first_kernel), MixStage(channels), MixStage(channels))


class NeMO(nn.Sequential):
    """A k x k mix stage then two 1x1 mix stages (k = 3, 5, 7, 9 or 11)."""

    def __init__(self, channels: int, kernel: int):
        super().__init__(*mix_stages(channels, kernel))
        self.kernel = kernel


class Embedding(nn.Sequential):
    """Three 1x1 mix stages."""

    def __init__(self, channels: int):
        super().__init__(*mix_stages(channels))


class Stem(nn.Module):
    """concat[x, x, RBF_24(x)] against the Macbeth patches; projected to dim when dim != 30."""

    def __init__(self, dim: int, sigma: float):
        super().__init__()
        self.register_buffer("macbeth", torch.tensor(MACBETH_OKLABP).view(1, -1, 3, 1, 1), persistent=False)
        self.inv_two_sigma2 = 1.0 / (2.0 * sigma * sigma)
        self.project = None if dim == STEM_CHANNELS else nn.Conv2d(STEM_CHANNELS, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dist2 = (x.unsqueeze(1) - self.macbeth).pow(2).sum(dim=2)
        base = torch.cat([x, x, torch.exp(-dist2 * self.inv_two_sigma2)], dim=1)
        return base if self.project is None else self.project(base)


class BakeNet(nn.Module):
    """OklabP (N,3,H,W) -> OklabP (N,3,H,W): out = x + 0.25 * h."""

    def __init__(self, config: BakeNetConfig = PRESETS["v5"]):
        super().__init__()
        c = config.dim
        self.config = config
        self.stem = Stem(c, config.rbf_sigma)
        self.context = Embedding(c)
        self.context_gate = Gate(c)
        self.blocks = nn.ModuleList(NeMO(c, k) for k in config.kernels)
        self.block_gates = nn.ModuleList(Gate(c) for _ in config.kernels)
        self.head_embedding = Embedding(c)
        self.head_in = nn.Conv2d(2 * c, c, 1)
        self.head_act = HeLU(c)
        self.head = mix_stages(c)
        self.head_out = nn.Conv2d(c, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.stem(x)
        feat = self.context_gate(self.context(base), base)
        for block, gate in zip(self.blocks, self.block_gates):
            feat = gate(block(feat), feat)
        h = self.head_act(self.head_in(torch.cat([feat, self.head_embedding(base)], dim=1)))
        h = self.head_out(self.head(h))
        return x + 0.25 * h


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
