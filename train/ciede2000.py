"""CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), in float64 torch.

Images are compared in CIELAB (D65 white, sRGB primaries), the usual setting for "how visible
is this colour error": 1.0 is about a just-noticeable difference.
"""
from __future__ import annotations

import torch

from bake_node.palette import srgb_eotf

SRGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
D65_WHITE = (0.95047, 1.0, 1.08883)


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) sRGB-encoded values in [0, 1] -> (..., 3) CIELAB (D65)."""
    lin = srgb_eotf(rgb.double().clamp(0.0, 1.0))
    xyz = lin @ torch.tensor(SRGB_TO_XYZ, dtype=torch.float64, device=rgb.device).T
    t = xyz / torch.tensor(D65_WHITE, dtype=torch.float64, device=rgb.device)
    delta = 6.0 / 29.0
    f = torch.where(t > delta ** 3, t.clamp_min(0.0) ** (1.0 / 3.0), t / (3 * delta ** 2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-1)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """Per-element CIEDE2000 between (..., 3) CIELAB tensors (kL = kC = kH = 1)."""
    L1, a1, b1 = lab1.double().unbind(-1)
    L2, a2, b2 = lab2.double().unbind(-1)
    c_mean = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    # Hue angles in degrees [0, 360); a zero-chroma colour has hue 0 by convention.
    h1p = torch.rad2deg(torch.atan2(b1, a1p)) % 360
    h2p = torch.rad2deg(torch.atan2(b2, a2p)) % 360
    chroma_zero = (c1p * c2p) == 0

    dL = L2 - L1
    dC = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(chroma_zero, torch.zeros_like(dh), dh)
    dH = 2 * torch.sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh) / 2)

    L_mean = (L1 + L2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = torch.where((h1p - h2p).abs() <= 180, h_sum / 2,
                         torch.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    h_mean = torch.where(chroma_zero, h_sum, h_mean)

    t = (1 - 0.17 * torch.cos(torch.deg2rad(h_mean - 30)) + 0.24 * torch.cos(torch.deg2rad(2 * h_mean))
         + 0.32 * torch.cos(torch.deg2rad(3 * h_mean + 6)) - 0.20 * torch.cos(torch.deg2rad(4 * h_mean - 63)))
    d_theta = 30 * torch.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(cp_mean ** 7 / (cp_mean ** 7 + 25.0 ** 7))
    s_l = 1 + 0.015 * (L_mean - 50) ** 2 / torch.sqrt(20 + (L_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -torch.sin(torch.deg2rad(2 * d_theta)) * r_c
    return torch.sqrt((dL / s_l) ** 2 + (dC / s_c) ** 2 + (dH / s_h) ** 2
                      + r_t * (dC / s_c) * (dH / s_h))


def delta_e_srgb(rgb1: torch.Tensor, rgb2: torch.Tensor) -> torch.Tensor:
    """Per-pixel CIEDE2000 between two (..., 3) sRGB images."""
    return ciede2000(srgb_to_lab(rgb1), srgb_to_lab(rgb2))

