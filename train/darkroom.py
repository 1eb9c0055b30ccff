"""The "darkroom": self-supervised colour degradations in OklabP (spec/bakenet.md section 5).

A clean crop is the target; the model's input is the target after three random operations
applied in a random order per sample: a tone curve with white balance, a polar HSL warp and
colour wheels (split toning). Every operation is conditioned on the *target's* colours, as in
the reference, and nothing is clamped (the model learns to undo out-of-gamut drift too).

Randomness is drawn up front for the whole batch (``draw``) from one ``torch.Generator`` on the
training device, then applied (``apply``). So a seed reproduces a batch exactly, the same
degradation can be applied to several frames (the demo plate), and strength 0 is the identity
(up to the spec's 1e-8 inside the chroma square root: at most 1e-4 on a, b).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

STRENGTH = 0.12
CURVE_POINTS = 401  # tone curve grid over L in [-1, 1]
WARP_GRID = 33  # the HSL warp's lookup table over the (a, b) plane
WALK_POINTS = 35  # colour-wheel random walk over L
WARP_RESOLUTIONS = (3, 4, 5)
OPS = ("tone", "warp", "wheels")


def _uniform(n, low, high, gen, device, *shape):
    return low + (high - low) * torch.rand(n, *shape, generator=gen, device=device)


def _standardise(walk: torch.Tensor) -> torch.Tensor:
    return (walk - walk.mean(-1, keepdim=True)) / walk.std(-1, keepdim=True).clamp_min(1e-12)


def draw(n: int, gen: torch.Generator, strength: float = STRENGTH, device=None) -> dict:
    """All random parameters for ``n`` samples, in a fixed draw order (resume needs that)."""
    device = device or gen.device
    s = strength
    # 1. tone curve + white balance
    d = _uniform(n, 0.0, s, gen, device)
    z = _standardise(torch.randn(n, CURVE_POINTS - 1, generator=gen, device=device).cumsum(-1))
    y = torch.cat([torch.zeros(n, 1, device=device), torch.exp(d[:, None] * z).cumsum(-1)], dim=-1)
    y = y / y[:, -1:]
    # b0, w0 ~ U(0, s/2 * d/s) = U(0, d/2): lifted blacks and lowered whites scale with d.
    black = torch.rand(n, generator=gen, device=device) * d / 2
    white = torch.rand(n, generator=gen, device=device) * d / 2
    curve = -1.0 + black[:, None] + y * (2.0 - black - white)[:, None]
    shift = _uniform(n, -s / 2, s / 2, gen, device, 2)
    # 2. polar HSL warp: per-sample control resolution, upsampled to one 33x33 table each
    res = torch.randint(len(WARP_RESOLUTIONS), (n,), generator=gen, device=device)
    tables = []
    for i in range(n):
        r = WARP_RESOLUTIONS[int(res[i])]
        control = _uniform(1, -s / 2, s / 2, gen, device, 3, r, r)
        tables.append(F.interpolate(control, size=(WARP_GRID, WARP_GRID), mode="bicubic", align_corners=True))
    warp = torch.cat(tables) if tables else torch.zeros(0, 3, WARP_GRID, WARP_GRID, device=device)
    # 3. colour wheels: one random walk over L for a, one for b, peak |value| = d ~ U(0, s/2)
    walk = torch.randn(n, 2, WALK_POINTS, generator=gen, device=device).cumsum(-1)
    walk = walk - walk.mean(-1, keepdim=True)
    peak = _uniform(n, 0.0, s / 2, gen, device, 2)
    wheels = walk / walk.abs().amax(-1, keepdim=True).clamp_min(1e-12) * peak[..., None]
    # random order of the three operations, per sample
    order = torch.argsort(torch.rand(n, len(OPS), generator=gen, device=device), dim=-1)
    return {"curve": curve, "shift": shift, "warp": warp, "wheels": wheels, "order": order}


def lookup(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear lookup of per-sample tables (N, P) on a uniform grid over [-1, 1] at
    x (N, H, W). Outside [-1, 1] the end values hold (target L stays within ~1e-3 of it)."""
    points = table.shape[-1]
    pos = ((x.clamp(-1.0, 1.0) + 1.0) * 0.5 * (points - 1)).flatten(1)
    lo = pos.floor().clamp(max=points - 2)
    frac = pos - lo
    lo = lo.long()
    left, right = table.gather(1, lo), table.gather(1, lo + 1)
    return (left + frac * (right - left)).view_as(x)


def tone(img: torch.Tensor, target: torch.Tensor, p: dict) -> torch.Tensor:
    L = target[:, 0]
    delta = lookup(p["curve"], L) - L
    # The reference doubles the curve's change of L; kept as specified.
    offset = torch.stack([2.0 * delta,
                          p["shift"][:, 0, None, None].expand_as(L),
                          p["shift"][:, 1, None, None].expand_as(L)], dim=1)
    return img + offset


def warp(img: torch.Tensor, target: torch.Tensor, p: dict) -> torch.Tensor:
    # grid_sample's x indexes the table's width (a), y its height (b); the 33 nodes span [-1, 1].
    where = target[:, 1:3].permute(0, 2, 3, 1)
    dL, scale, hue = F.grid_sample(p["warp"], where, mode="bilinear", padding_mode="border",
                                   align_corners=True).unbind(1)
    L, a, b = img.unbind(1)
    chroma = torch.sqrt(a * a + b * b + 1e-8) * (1.0 + scale)
    angle = torch.atan2(b, a) + math.pi * hue
    return torch.stack([L + dL, chroma * torch.cos(angle), chroma * torch.sin(angle)], dim=1)


def wheels(img: torch.Tensor, target: torch.Tensor, p: dict) -> torch.Tensor:
    L = target[:, 0]
    da = lookup(p["wheels"][:, 0], L)
    db = lookup(p["wheels"][:, 1], L)
    return img + torch.stack([torch.zeros_like(da), da, db], dim=1)


OPERATIONS = (tone, warp, wheels)


def subset(p: dict, index: torch.Tensor) -> dict:
    return {k: v[index] for k, v in p.items()}


def apply(target: torch.Tensor, p: dict) -> torch.Tensor:
    """Degrade a batch of OklabP targets (N, 3, H, W) with parameters from ``draw``."""
    img = target
    for slot in range(len(OPS)):
        out = img.clone()
        for op_index, op in enumerate(OPERATIONS):
            index = (p["order"][:, slot] == op_index).nonzero().squeeze(1)
            if index.numel():
                out[index] = op(img[index], target[index], subset(p, index))
        img = out
    return img


def degrade(target: torch.Tensor, gen: torch.Generator, strength: float = STRENGTH) -> torch.Tensor:
    return apply(target, draw(target.shape[0], gen, strength, target.device))
