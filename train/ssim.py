"""SSIM (Wang et al. 2004) in torch: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, computed
per channel and averaged over channels, as the usual reference implementations do.

``ssim_map`` keeps the per-pixel map (same size as the input: the window is applied with
reflect padding) so SSIM can also be averaged over a region such as the damaged pixels.
Differentiable, so it is also a training loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, dtype=torch.float32, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian of (N, C, H, W), reflect-padded so the map has the input's size."""
    c, pad = x.shape[1], g.numel() // 2
    if min(x.shape[-2:]) > pad:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    else:
        x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """(N, C, H, W) x 2 -> (N, H, W): SSIM per pixel, averaged over channels."""
    g = gaussian_window(dtype=a.dtype, device=a.device)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    var_a = _blur(a * a, g) - mu_a ** 2
    var_b = _blur(b * b, g) - mu_b ** 2
    cov = _blur(a * b, g) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=1)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM over the frame (a scalar tensor)."""
    return ssim_map(a, b, data_range).mean()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``values`` where ``mask`` > 0.5 (NaN when the mask is empty)."""
    keep = mask > 0.5
    return float(values[keep].double().mean()) if bool(keep.any()) else float("nan")
