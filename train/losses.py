"""Training losses (spec/bakenet.md section 4): HeoLoss on OklabP, or on its 96-ch projection.

HeoLoss is log-like for |d| <= 0.001 and quadratic above (per element, then /1000 and mean):
the two branches meet at |d| = 0.001 because ln(1 + 1000|d|/eps) = ln(e) = 1 there when
eps = 1/(e-1). It is computed in float32 whatever the training precision.
"""
from __future__ import annotations

import math

import torch

from bake_node.palette import MACBETH_OKLABP

HEO_EPS = 1.0 / (math.e - 1.0)
HEO_KNEE = 1e-3
PROJECTION_SIGMAS = (0.1, 0.4, 1.6)
LOSSES = ("heo", "hyper")  # 3-ch HeoLoss, 96-ch Hyper-Baked projection


def heo_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = pred.float() - target.float()
    c = torch.sqrt(d * d + 1e-16)
    small = torch.log1p(1000.0 * c / HEO_EPS) / 1000.0
    large = (1000.0 * d) ** 2 / 1000.0
    return (torch.where(d.abs() <= HEO_KNEE, small, large) / 1000.0).mean()


def hyper_projection(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) OklabP -> (N, 96, H, W): x repeated 8x, then 24 Macbeth RBFs at each sigma."""
    macbeth = torch.tensor(MACBETH_OKLABP, dtype=x.dtype, device=x.device).view(1, -1, 3, 1, 1)
    dist2 = (x.unsqueeze(1) - macbeth).pow(2).sum(dim=2)
    rbfs = [torch.exp(-dist2 / (2.0 * sigma * sigma)) for sigma in PROJECTION_SIGMAS]
    return torch.cat([x.repeat(1, 8, 1, 1), *rbfs], dim=1)


def hyper_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        projected_target = hyper_projection(target.float())
    return heo_loss(hyper_projection(pred.float()), projected_target)


def make_loss(name: str):
    return {"heo": heo_loss, "hyper": hyper_loss}[name]
