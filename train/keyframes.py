"""Keyframe pairs for `bake-seq learn`: a plate frame and the artist's corrected version of it.

A pair is usable only if the key is the plate frame corrected in colour: same size, pixel for
pixel the same picture, finite, and not the plate itself. Each check here fails with one line
that names the key's frame and file (a PlateError: exit 3), never with a silent bad fit.

Alignment is tested on structure, which a colour correction keeps and a move does not: the
lightness gradients of plate and key are correlated at small shifts in each of 3 x 3 regions,
at full resolution (sub-pixel, from a parabola through the correlation peak) and on a 4x
reduced copy (whole pixels there: shifts up to 24 px). A key whose correlation peaks away from zero anywhere, or
whose structure barely matches the plate's, was moved, reframed or is another frame.
Measured in docs/keyframes.md (shifts, zooms, rotations; no false alarm on graded keys).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bake_node.palette import srgb_to_oklabp
from bake_seq.sequences.errors import PlateError

IDENTICAL = 0.5 / 65535  # below half a 16-bit code everywhere: the key is the plate
MAX_SHIFT = 0.5  # pixels: a structure peak further than this from zero is a moved key
MIN_MATCH = 0.3  # correlation of gradient structure below which the key is another picture
# Below this short side the alignment check has no room (3 x 3 regions searched at +-3 px need
# 60 px): measured on the held-out photos x 5 families x grain 0 / 0.02 (docs/keyframes.md), from
# 64 px up every shifted (0.5-16 px), zoomed, rotated and other-picture key was refused 30 of 30.
MIN_KEY_SIDE = 64


@dataclass
class KeyPair:
    """One key: the plate frame and the artist's version, working-space sRGB (H x W x 3 float32)."""

    frame: int
    plate: np.ndarray
    key: np.ndarray
    path: str
    sha256: str
    colorspace: str

    @property
    def label(self) -> str:
        return f"key for frame {self.frame}"


def check_pair(pair: KeyPair) -> dict:
    """Refuse a key that cannot teach this frame's correction; returns the alignment measurements."""
    ph, pw = pair.plate.shape[:2]
    kh, kw = pair.key.shape[:2]
    if (ph, pw) != (kh, kw):
        raise PlateError(pair.path, f"{pair.label} is {kw}x{kh} but plate frame {pair.frame} is {pw}x{ph}",
                         "export the corrected frame at the plate's size, without reformatting or cropping")
    if min(ph, pw) < MIN_KEY_SIDE:
        raise PlateError(pair.path, f"{pair.label} is {kw}x{kh}: below {MIN_KEY_SIDE} px on the short side a key's "
                         "alignment with the plate cannot be checked", f"learn on frames of at least {MIN_KEY_SIDE} px "
                         "(the plate at its delivery size, not a proxy)")
    if not np.isfinite(pair.key).all():
        raise PlateError(pair.path, f"{pair.label} holds NaN or infinite pixels", "fix the key and export it again")
    if float(np.abs(np.clip(pair.key, 0, 1) - np.clip(pair.plate, 0, 1)).max()) <= IDENTICAL:
        raise PlateError(pair.path, f"{pair.label} is the plate frame itself (no pixel differs): nothing to learn",
                         "give the artist's corrected version of that frame")
    found = alignment(pair.plate, pair.key)
    if found["match"] < MIN_MATCH:
        raise PlateError(pair.path, f"{pair.label} does not show the same picture as plate frame {pair.frame} "
                         f"(structure correlation {found['match']:.2f}, aligned keys measure > 0.8)",
                         "check the frame number after '=' and that the key is not reframed or retimed")
    if found["shift"] > MAX_SHIFT:
        dx, dy = found["worst"]
        raise PlateError(pair.path, f"{pair.label} is not pixel-aligned with plate frame {pair.frame}: part of it "
                         f"is moved by ({dx:+.1f}, {dy:+.1f}) px (x, y)",
                         "export the key without repositioning, scaling or stabilising it (same format, no transform)")
    return found


def structure(rgb: np.ndarray, factor: int) -> torch.Tensor:
    """Gradient magnitude of Oklab lightness, on a ``factor``x area-reduced copy (H', W')."""
    lab = srgb_to_oklabp(torch.from_numpy(np.ascontiguousarray(np.clip(rgb, 0, 1))).permute(2, 0, 1)[None].double())
    light = lab[:, :1].float()
    if factor > 1:
        light = F.avg_pool2d(light, factor)
    light = F.avg_pool2d(F.pad(light, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # grain is not structure
    gx = light[..., 1:-1, 2:] - light[..., 1:-1, :-2]
    gy = light[..., 2:, 1:-1] - light[..., :-2, 1:-1]
    return F.pad(torch.sqrt(gx * gx + gy * gy), (1, 1, 1, 1))[0, 0]


def _correlations(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised cross-correlation of region ``a`` against ``b`` shifted by -radius..radius (y, x)."""
    h, w = a.shape
    core = a[radius:h - radius, radius:w - radius]
    core = (core - core.mean()) / (core.std() + 1e-12)
    out = torch.empty(2 * radius + 1, 2 * radius + 1, dtype=torch.float64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            part = b[radius + dy:h - radius + dy, radius + dx:w - radius + dx]
            part = (part - part.mean()) / (part.std() + 1e-12)
            out[dy + radius, dx + radius] = float((core * part).double().mean())
    return out


def _peak(corr: torch.Tensor, subpixel: bool) -> tuple[float, float]:
    """(dx, dy) of the correlation peak; ``subpixel``: refined by a parabola along each axis."""
    r = corr.shape[0] // 2
    iy, ix = divmod(int(torch.argmax(corr)), corr.shape[1])
    if not subpixel:
        return float(ix - r), float(iy - r)

    def refine(left, mid, right):
        curve = left - 2 * mid + right
        return 0.0 if curve >= 0 else float(0.5 * (left - right) / curve)

    dx = ix - r + (refine(corr[iy, ix - 1], corr[iy, ix], corr[iy, ix + 1]) if 0 < ix < 2 * r else 0.0)
    dy = iy - r + (refine(corr[iy - 1, ix], corr[iy, ix], corr[iy + 1, ix]) if 0 < iy < 2 * r else 0.0)
    return dx, dy


def alignment(plate: np.ndarray, key: np.ndarray, regions: int = 3) -> dict:
    """{"match": structure correlation at zero shift (median over regions), "shift": the largest
    peak offset found (px, full resolution), "worst": that (dx, dy)}."""
    h, w = plate.shape[:2]
    best = {"shift": 0.0, "worst": (0.0, 0.0)}
    matches = []
    for factor, radius in ((1, 3), (4, 6)):
        if min(h, w) // factor < regions * (4 * radius + 8):
            continue
        sp, sk = structure(plate, factor), structure(key, factor)
        rh, rw = sp.shape[0] // regions, sp.shape[1] // regions
        energy = sp.mean()
        for i in range(regions):
            for j in range(regions):
                a = sp[i * rh:(i + 1) * rh, j * rw:(j + 1) * rw]
                if float(a.mean()) < 0.25 * float(energy):
                    continue  # sky, a flat wall: no structure to lock on to
                corr = _correlations(a, sk[i * rh:(i + 1) * rh, j * rw:(j + 1) * rw], radius)
                matches.append(float(corr[radius, radius]))
                # sub-pixel only at full resolution: on the reduced copy a tenth of a pixel of
                # noise would read as 0.4 px (aligned grainy keys measured up to 0.51 px that way)
                dx, dy = _peak(corr, subpixel=factor == 1)
                dx, dy = dx * factor, dy * factor
                if (dx * dx + dy * dy) ** 0.5 > best["shift"]:
                    best = {"shift": (dx * dx + dy * dy) ** 0.5, "worst": (dx, dy)}
    return {"match": float(np.median(matches)) if matches else 1.0, **best}
