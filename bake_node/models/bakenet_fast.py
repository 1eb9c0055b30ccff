"""BakeNet's inference form: the same function with fewer passes over memory.

Two exact rewrites (up to float rounding) make the render path faster than the plain model:

* GELU(x) - GELU(-x) = x for the exact (erf) GELU, so HeLU collapses to A*GELU(x) + B*x with
  per-channel constants A = T(a)(T(r) - T(u))/2 and B = (T(a)T(u) + T(b))/2.
* Gates are per-channel linear blends, so a mix stage followed by its gate (and, for the last
  stage of a block, the block's own gate) is  out = P*GELU(z) + Q*z + R*x (+ S*feat)  with
  z = conv(x): four fused elementwise passes instead of about fifteen.

Weights are stored channels-last, which lets oneDNN run the 30-channel convolutions without
reordering every call (about 2x on CPU). Built from a trained BakeNet; never trained itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .bakenet import BakeNet, HeLU, MixStage, squash


def _const(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone(), requires_grad=False)


def helu_coefficients(act: HeLU) -> tuple[torch.Tensor, torch.Tensor]:
    half_alpha = squash(act.alpha) / 2
    return half_alpha * (squash(act.r) - squash(act.u)), half_alpha * squash(act.u) + squash(act.beta) / 2


def _conv(conv: nn.Conv2d) -> nn.Conv2d:
    fast = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
    fast.weight = _const(conv.weight.contiguous(memory_format=torch.channels_last))
    fast.bias = _const(conv.bias)
    return fast


class FusedStage(nn.Module):
    """conv -> HeLU -> gate(., x) [-> outer gate(., feat)] as one affine-GELU expression."""

    def __init__(self, stage: MixStage, outer=None):
        super().__init__()
        a, b = helu_coefficients(stage.act)
        ga, gb = squash(stage.gate.alpha) / 2, squash(stage.gate.beta) / 2
        p, q, r, s = ga * a, ga * b, gb, None
        if outer is not None:
            oa = squash(outer.alpha) / 2
            p, q, r, s = oa * p, oa * q, oa * r, squash(outer.beta) / 2
        self.conv = _conv(stage.conv)
        self.p, self.q, self.r = _const(p), _const(q), _const(r)
        self.s = None if s is None else _const(s)

    def forward(self, x: torch.Tensor, feat: torch.Tensor | None = None) -> torch.Tensor:
        z = self.conv(x)
        y = torch.addcmul(torch.addcmul(self.r * x, self.q, z), self.p, F.gelu(z))
        return y if self.s is None else torch.addcmul(y, self.s, feat)


def _fused(stages, outer=None) -> nn.ModuleList:
    return nn.ModuleList(FusedStage(st, outer if i == len(stages) - 1 else None) for i, st in enumerate(stages))


def _run(stages: nn.ModuleList, x: torch.Tensor, feat: torch.Tensor | None = None) -> torch.Tensor:
    for i, stage in enumerate(stages):
        x = stage(x, feat) if i == len(stages) - 1 else stage(x)
    return x


class FastBakeNet(nn.Module):
    """Same input/output as BakeNet (N,3,H,W OklabP); inference only."""

    def __init__(self, model: BakeNet):
        super().__init__()
        self.config = model.config
        self.stem = model.stem
        self.context = _fused(model.context, model.context_gate)
        self.blocks = nn.ModuleList(_fused(block, gate) for block, gate in zip(model.blocks, model.block_gates))
        self.head_embedding = _fused(model.head_embedding)
        self.head_in = _conv(model.head_in)
        self.head_a, self.head_b = (_const(t) for t in helu_coefficients(model.head_act))
        self.head = _fused(model.head)
        self.head_out = _conv(model.head_out)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        base = self.stem(x).contiguous(memory_format=torch.channels_last)
        feat = _run(self.context, base, base)
        for block in self.blocks:
            feat = _run(block, feat, feat)
        z = self.head_in(torch.cat([feat, _run(self.head_embedding, base)], dim=1))
        h = torch.addcmul(self.head_b * z, self.head_a, F.gelu(z))
        h = self.head_out(_run(self.head, h))
        return (x + 0.25 * h).contiguous()
