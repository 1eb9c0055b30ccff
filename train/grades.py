"""Global colour degradations users meet on real plates, beside the spec's darkroom family.

Each family maps a clean sRGB batch (N,3,H,W) in [0, 1] to what a plate would hold after it:
the same colour-to-colour function for every pixel of a frame, clamped to [0, 1] as a 16-bit
file would keep it. Randomness comes from one ``torch.Generator``; parameters are drawn per
sample in a fixed order, so a seed reproduces a batch exactly.

    darkroom       spec section 5 exactly (tone curve + WB, polar HSL warp, colour wheels)
    cdl            ASC CDL v1.2 as OCIO applies it (slope, offset, power per channel, then
                   saturation with Rec.709 luma; clamped after each stage) on the encoded values
    white_balance  a wrong camera white: Bradford chromatic adaptation in linear light from D65
                   to a random illuminant (2800-12000 K on the daylight/Planckian locus, +- tint)
    exposure       a linear gain of 2^ev, ev in [-1, 1] stops (highlights clip)
    fade           faded print/film: lifted blacks, lowered whites and contrast, lost
                   saturation and a colour cast that differs between shadows and highlights
    combo          two different families above (not exposure), one after the other
    clean          nothing: a restorer must leave a clean frame alone

Ranges are what a grade or a wrong camera setting does to a plate, not the worst case; each
family's strength is measured as "do nothing" CIEDE2000 by `bake-seq eval`.
"""
from __future__ import annotations

import math

import torch

from bake_node.palette import oklabp_to_srgb, srgb_eotf, srgb_oetf, srgb_to_oklabp

from . import darkroom

FAMILIES = ("darkroom", "cdl", "white_balance", "exposure", "fade", "combo", "clean")
EVAL_FAMILIES = ("darkroom", "cdl", "white_balance", "fade", "exposure", "combo")
REC709_LUMA = (0.2126, 0.7152, 0.0722)

# sRGB primaries / D65 (IEC 61966-2-1) and the Bradford cone response.
RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))
D65_XY = (0.31270, 0.32900)


def _u(gen, n, low, high, *shape) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, *shape, generator=gen, dtype=torch.float64)


def _per_pixel(matrix_or_vec: torch.Tensor) -> torch.Tensor:
    return matrix_or_vec[..., None, None]


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(REC709_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def saturate(x: torch.Tensor, sat: torch.Tensor) -> torch.Tensor:
    """Scale each sample's distance from Rec.709 luma by ``sat`` (N,), as OCIO's CDL does."""
    luma = _luma(x)
    return luma + _per_pixel(sat[:, None]) * (x - luma)


def darkroom_family(srgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    target = srgb_to_oklabp(srgb.float())
    p = darkroom.draw(srgb.shape[0], gen, darkroom.STRENGTH, torch.device("cpu"))
    return oklabp_to_srgb(darkroom.apply(target, {k: v.to(srgb.device) for k, v in p.items()}).double())


def cdl(srgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = srgb.shape[0]
    slope = torch.exp(_u(gen, n, math.log(0.75), math.log(1.33), 3))
    offset = _u(gen, n, -0.06, 0.06, 3)
    power = torch.exp(_u(gen, n, math.log(0.75), math.log(1.33), 3))
    sat = _u(gen, n, 0.6, 1.4)
    x = srgb.double()
    x = (x * _per_pixel(slope) + _per_pixel(offset)).clamp(0.0, 1.0)
    x = x ** _per_pixel(power)
    return saturate(x, sat).clamp(0.0, 1.0)


def cct_to_xy(kelvin: torch.Tensor) -> torch.Tensor:
    """Chromaticity of the CIE daylight locus (>= 4000 K) or the Planckian locus (Kim et al. cubic)."""
    t = kelvin
    x_day = torch.where(t <= 7000, -4.6070e9 / t**3 + 2.9678e6 / t**2 + 0.09911e3 / t + 0.244063,
                        -2.0064e9 / t**3 + 1.9018e6 / t**2 + 0.24748e3 / t + 0.237040)
    x_planck = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    x = torch.where(t >= 4000, x_day, x_planck)
    y_day = -3.0 * x**2 + 2.87 * x - 0.275
    y_planck = torch.where(t < 2222, -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683,
                           -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867)
    y = torch.where(t >= 4000, y_day, y_planck)
    return torch.stack([x, y], dim=-1)


def adaptation_matrix(src_xy: torch.Tensor, dst_xy: torch.Tensor) -> torch.Tensor:
    """(N,3,3) linear-sRGB matrices: Bradford von Kries adaptation from white src to white dst."""
    def xyz(xy):
        return torch.stack([xy[..., 0] / xy[..., 1], torch.ones_like(xy[..., 0]),
                            (1 - xy[..., 0] - xy[..., 1]) / xy[..., 1]], dim=-1)
    m = torch.tensor(BRADFORD, dtype=torch.float64)
    to_xyz = torch.tensor(RGB_TO_XYZ, dtype=torch.float64)
    gain = (xyz(dst_xy) @ m.T) / (xyz(src_xy) @ m.T)  # N,3 cone gains
    cat = torch.linalg.inv(m) @ torch.diag_embed(gain) @ m
    return torch.linalg.inv(to_xyz) @ cat @ to_xyz


def white_balance(srgb: torch.Tensor, gen: torch.Generator, kelvin_range=(2800.0, 12000.0),
                  max_tint: float = 0.012) -> torch.Tensor:
    """The scene was lit by a random illuminant but the camera was balanced for D65."""
    n = srgb.shape[0]
    kelvin = torch.exp(_u(gen, n, math.log(kelvin_range[0]), math.log(kelvin_range[1])))
    tint = _u(gen, n, -max_tint, max_tint)
    xy = cct_to_xy(kelvin)
    xy = xy + tint[:, None] * torch.tensor([-0.5, 1.0], dtype=torch.float64)  # towards green / magenta
    d65 = torch.tensor(D65_XY, dtype=torch.float64).expand(n, 2)
    m = adaptation_matrix(d65, xy)
    # Keep the frame's brightness: an auto-exposed camera would (green row sums to the gain on Y).
    m = m / (torch.tensor(REC709_LUMA, dtype=torch.float64) @ m).sum(-1)[:, None, None]
    lin = srgb_eotf(srgb.double())
    out = torch.einsum("nij,njhw->nihw", m, lin)
    return srgb_oetf(out.clamp(0.0, 1.0))


def exposure(srgb: torch.Tensor, gen: torch.Generator, stops: float = 1.0) -> torch.Tensor:
    ev = _u(gen, srgb.shape[0], -stops, stops)
    return srgb_oetf((srgb_eotf(srgb.double()) * _per_pixel((2.0 ** ev)[:, None])).clamp(0.0, 1.0))


def fade(srgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = srgb.shape[0]
    black = _u(gen, n, 0.03, 0.15)[:, None] + _u(gen, n, -0.04, 0.04, 3)  # lifted, tinted blacks
    white = _u(gen, n, 0.80, 1.0)[:, None] + _u(gen, n, -0.06, 0.04, 3)  # dimmer, tinted whites
    sat = _u(gen, n, 0.4, 0.9)
    x = saturate(srgb.double(), sat)
    x = _per_pixel(black) + (_per_pixel(white) - _per_pixel(black)) * x
    return x.clamp(0.0, 1.0)


def natural(srgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A version of a clean photo that is just as clean: another camera's white balance
    (5000-8000 K, small tint), exposure (+-0.3 stop) and saturation (0.9-1.1). Training uses it
    as the *target*, so the model learns a band of normal looks instead of the exact palettes of
    its few dozen photos, and leaves frames inside that band alone."""
    x = white_balance(srgb, gen, (5000.0, 8000.0), 0.004)
    x = exposure(x, gen, 0.3)
    return saturate(x, _u(gen, srgb.shape[0], 0.9, 1.1)).clamp(0.0, 1.0)


def clean(srgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return srgb.double()


SINGLE = {"darkroom": darkroom_family, "cdl": cdl, "white_balance": white_balance, "exposure": exposure,
          "fade": fade}


def combo(srgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Two different families in a random order, per sample (exposure is left out: see DEFAULT_MIX
    in train/restore.py)."""
    names = [name for name in SINGLE if name != "exposure"]
    out = []
    for i in range(srgb.shape[0]):
        first, second = torch.randperm(len(names), generator=gen)[:2].tolist()
        x = SINGLE[names[first]](srgb[i:i + 1], gen)
        out.append(SINGLE[names[second]](x, gen))
    return torch.cat(out)


def secondary(srgb: torch.Tensor, gen: torch.Generator, reference: torch.Tensor | None = None) -> torch.Tensor:
    """A hue-keyed secondary, as a colourist keys one colour range: the hues within a soft window
    (30-50 degrees wide) around the hue of a random coloured pixel of ``reference`` (default: the
    frame itself; a shot passes its whole photo, so every frame gets the same secondary) are turned
    (15-35 degrees either way), saturated or desaturated (+-40 %) and lightened or darkened
    (+-0.05 OklabP); neutral colours are left alone. Not one of the training families: a global
    grade cannot express it (the keyframe eval's test of the colour lattice)."""
    n = srgb.shape[0]
    lab = srgb_to_oklabp(srgb.double())
    a, b = lab[:, 1], lab[:, 2]
    chroma = torch.sqrt(a * a + b * b)
    hue = torch.atan2(b, a)
    out = []
    ref = srgb_to_oklabp((srgb if reference is None else reference).double())
    ref_chroma, ref_hue = torch.sqrt(ref[:, 1] ** 2 + ref[:, 2] ** 2), torch.atan2(ref[:, 2], ref[:, 1])
    for i in range(n):
        r = i if reference is None else 0
        weights = (ref_chroma[r] - 0.04).clamp_min(0).flatten()
        pick = torch.multinomial(weights + 1e-12, 1, generator=gen)
        centre = ref_hue[r].flatten()[pick]
        width = math.radians(float(_u(gen, 1, 30.0, 50.0))) / 2
        turn = math.radians(float(_u(gen, 1, 15.0, 35.0))) * (1 if float(_u(gen, 1, -1, 1)) > 0 else -1)
        scale, lift = float(_u(gen, 1, -0.4, 0.4)), float(_u(gen, 1, -0.05, 0.05))
        offset = torch.remainder(hue[i] - centre + math.pi, 2 * math.pi) - math.pi
        w = torch.exp(-0.5 * (offset / width) ** 2) * ((chroma[i] - 0.02) / 0.06).clamp(0, 1)
        h = hue[i] + turn * w
        c = chroma[i] * (1 + scale * w)
        out.append(torch.stack([lab[i, 0] + lift * w, c * torch.cos(h), c * torch.sin(h)]))
    return oklabp_to_srgb(torch.stack(out))


FUNCTIONS = {**SINGLE, "combo": combo, "clean": clean, "secondary": secondary}


def degrade(family: str, srgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A batch of clean sRGB images (N,3,H,W) -> degraded sRGB in [0, 1], float64."""
    return FUNCTIONS[family](srgb, gen).clamp(0.0, 1.0)
