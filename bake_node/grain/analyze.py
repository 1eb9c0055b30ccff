"""Measure a plate's grain: per channel, noise std against intensity and the noise spectrum.

The frame is cut into 32 x 32 blocks. In each block a plane (mean + slope) is removed, so smooth
gradients do not count as grain; what is left is grain plus whatever structure a plane cannot
follow (edges, texture, curvature). Structure is rejected twice:

1. *Scale consistency.* For grain, the residual's variance and the spread of differences of
   neighbouring pixels keep a fixed ratio (set by the grain's correlation), whatever the grain
   level. Texture adds far more to the variance than to the differences, and an edge adds to
   only a few differences, which the spread (a MAD) ignores; so blocks whose ratio is well
   above the plate's typical (5th-percentile) ratio are dropped.
2. *Lowest consistent level per intensity.* Blocks are binned by their mean intensity. Texture
   that passed (1) only adds variance, so in each bin the level is the mean of the blocks whose
   variances scatter like grain alone (chi-square) around it, found from the bin's lower
   quartile upwards (see ``grain_level``).

Grain size comes from the median lag-1 correlation of the kept blocks; the spectrum and the
correlation between channels from the same blocks. Clipped blocks (many pixels at the frame's
extreme value) are skipped. Needs flat areas: sky, walls, a grey card, defocused backgrounds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .linear import encoded_to_linear
from .profile import CHANNELS, MAX_SIZE, PAIRS, ChannelGrain, GrainProfile
from .synth import fast_lag1

BLOCK = 32
ENCODED_BINS = 16  # bins of equal width in the working (sRGB-encoded) space, 0..1
MIN_BLOCKS = 6  # per intensity bin
STRUCTURE_RATIO = 2.0  # times the plate's typical variance/difference ratio
REFERENCE_PERCENTILE = 5
BANDS = 8  # noise power spectrum bands, 0 .. 0.5 cycles per pixel


@dataclass
class Blocks:
    """Per-block measurements (N blocks x 3 channels unless said otherwise), from all frames."""

    mean: np.ndarray  # linear intensity
    var: np.ndarray  # residual variance after the plane fit
    lag1: np.ndarray  # lag-1 autocorrelation of the residual
    ratio: np.ndarray  # variance / robust variance of neighbour differences (1 / (1 - lag1) for grain)
    usable: np.ndarray  # bool: not clipped, not empty
    cross: np.ndarray  # N x 3: correlation of residuals between channel PAIRS
    bands: np.ndarray  # N x 3 x BANDS: share of residual power per frequency band

    @staticmethod
    def join(parts: list[Blocks]) -> Blocks:
        return Blocks(*(np.concatenate([getattr(p, f) for p in parts]) for f in Blocks.__dataclass_fields__))


def measure_blocks(linear: np.ndarray) -> Blocks:
    """Plane-fit residual statistics of every whole BLOCK x BLOCK block of one frame."""
    b = BLOCK
    ny, nx = linear.shape[0] // b, linear.shape[1] // b
    x = linear[:ny * b, :nx * b].astype(np.float64)
    x = x.reshape(ny, b, nx, b, 3).transpose(0, 2, 1, 3, 4).reshape(-1, b, b, 3)
    c = np.arange(b) - (b - 1) / 2  # centred coordinates: orthogonal to the mean and each other
    mean = x.mean(axis=(1, 2))
    slope_y = np.einsum("nyxc,y->nc", x, c) / (b * (c**2).sum())
    slope_x = np.einsum("nyxc,x->nc", x, c) / (b * (c**2).sum())
    res = x - mean[:, None, None] - slope_y[:, None, None] * c[None, :, None, None] \
        - slope_x[:, None, None] * c[None, None, :, None]
    power = (res**2).sum(axis=(1, 2))
    var = power / (b * b - 3)
    diffs = np.concatenate([np.diff(res, axis=1).reshape(-1, b * (b - 1), 3),
                            np.diff(res, axis=2).reshape(-1, b * (b - 1), 3)], axis=1)
    robust = (1.4826 * np.median(np.abs(diffs), axis=1)) ** 2  # var of differences, edges ignored
    with np.errstate(divide="ignore", invalid="ignore"):
        lag1 = 1 - (diffs**2).mean(axis=1) / (2 * var)
        ratio = 2 * var / robust
        cross = np.stack([(res[..., CHANNELS.index(a)] * res[..., CHANNELS.index(bb)]).sum(axis=(1, 2))
                          / np.sqrt(power[:, CHANNELS.index(a)] * power[:, CHANNELS.index(bb)])
                          for a, bb in PAIRS], axis=1)
    return Blocks(mean, var, lag1, ratio, (var > 0) & ~_clipped(x, linear), np.nan_to_num(cross), _band_shares(res))


def _clipped(blocks: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Blocks with over 2 % of their pixels at the frame's lowest or highest value."""
    lo = frame.reshape(-1, 3).min(axis=0)
    hi = frame.reshape(-1, 3).max(axis=0)
    at_extreme = ((blocks == lo) | (blocks == hi)).mean(axis=(1, 2))
    return at_extreme > 0.02


def _band_shares(res: np.ndarray) -> np.ndarray:
    """Share of each block's residual power in BANDS radial frequency bands."""
    b = res.shape[1]
    spectrum = np.abs(np.fft.rfft2(res, axes=(1, 2))) ** 2  # N x b x b//2+1 x 3
    weights = np.full(b // 2 + 1, 2.0)
    weights[0] = weights[-1] = 1.0  # the rfft half counts the other half twice
    radius = np.hypot(np.fft.fftfreq(b)[:, None], np.fft.rfftfreq(b)[None, :])
    band = np.minimum((radius / 0.5 * BANDS).astype(int), BANDS - 1)
    shares = np.zeros((res.shape[0], 3, BANDS))
    for k in range(BANDS):
        shares[:, :, k] = (spectrum * (weights * (band == k))[None, :, :, None]).sum(axis=(1, 2))
    total = shares.sum(axis=2, keepdims=True)
    return np.divide(shares, total, out=np.zeros_like(shares), where=total > 0)


def intensity_bins() -> np.ndarray:
    """Bin edges in linear light: equal steps of the encoded working space, then octaves above 1."""
    edges = encoded_to_linear(np.linspace(0, 1, ENCODED_BINS + 1)).astype(np.float64)
    edges[0], edges[-1] = 0.0, 1.0
    return np.concatenate([edges, 2.0 ** np.arange(1, 11)])


@dataclass
class ChannelMeasure:
    grain: ChannelGrain
    kept: np.ndarray  # bool per block
    blocks_per_point: list[int]


def measure_channel(blocks: Blocks, c: int) -> ChannelMeasure | None:
    usable = blocks.usable[:, c] & np.isfinite(blocks.ratio[:, c]) & (blocks.mean[:, c] > 0)
    if usable.sum() < MIN_BLOCKS:
        return None
    # 1. scale consistency: var / difference-variance = 1 / (1 - lag1) is fixed for grain
    ratio = blocks.ratio[:, c]
    candidates = usable & (ratio <= STRUCTURE_RATIO * np.percentile(ratio[usable], REFERENCE_PERCENTILE))
    # 2. the grain level per intensity bin, from the blocks that are grain only
    dof = degrees_of_freedom(size_for_lag1(float(np.median(blocks.lag1[candidates, c]))))
    kept = np.zeros_like(candidates)
    points, counts = [], []
    edges = intensity_bins()
    which = np.digitize(blocks.mean[:, c], edges) - 1
    for k in range(len(edges) - 1):
        in_bin = np.flatnonzero(candidates & (which == k))
        if len(in_bin) < MIN_BLOCKS:
            continue
        var, keep = grain_level(blocks.var[in_bin, c], dof)
        if keep.sum() < MIN_BLOCKS:
            continue
        kept[in_bin[keep]] = True
        points.append((float(blocks.mean[in_bin[keep], c].mean()), var))
        counts.append(int(keep.sum()))
    if not points:
        return None
    size = size_for_lag1(float(np.median(blocks.lag1[kept, c])))
    retained = plane_fit_retention(size)
    points = [(i, math.sqrt(v / retained)) for i, v in points]
    return ChannelMeasure(ChannelGrain(points, size), kept, counts)


def grain_level(var: np.ndarray, dof: float) -> tuple[float, np.ndarray]:
    """The variance of grain-only blocks among blocks of one intensity, and which they are.

    Grain-only block variances scatter as sigma^2 chi2(dof)/dof; texture only adds variance. So
    start from the lower quartile (right while a quarter of the blocks are grain only), then
    repeatedly keep the blocks below the 99.5 % point of that scatter and average them.
    """
    level = np.percentile(var, 25) / chi2_quantile(0.25, dof)
    keep = np.ones(len(var), bool)
    for _ in range(20):
        keep = var <= level * chi2_quantile(0.995, dof)
        if not keep.any():
            break
        level, previous = float(var[keep].mean()), level
        if abs(level - previous) <= 1e-6 * previous:
            break
    return level, keep


def chi2_quantile(p: float, dof: float) -> float:
    """Quantile of chi2(dof)/dof (Wilson-Hilferty; well within 1 % for dof > 20)."""
    h = 2 / (9 * dof)
    return (1 - h + NormalDist().inv_cdf(p) * math.sqrt(h)) ** 3


def _autocorrelation(size: float, n: int) -> np.ndarray:
    """Autocorrelation (n x n, circular lags) of fast-mode grain of this size, DC included."""
    f2 = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None, :] ** 2
    autocorrelation = np.fft.irfft2(np.exp(-4 * math.pi**2 * size**2 * f2), s=(n, n))
    return autocorrelation / autocorrelation[0, 0]


def degrees_of_freedom(size: float) -> float:
    """How many independent samples a block's variance is worth for grain of this size."""
    return (BLOCK * BLOCK - 3) / float((_autocorrelation(size, 4 * BLOCK) ** 2).sum())


def plane_fit_retention(size: float) -> float:
    """The share of grain variance a block keeps after its plane fit (divided by b^2 - 3):
    1 for independent pixels, less for coarse grain, whose slow part the plane absorbs.
    E[sum res^2] = sigma^2 (b^2 - sum_k phi_k' R phi_k) for the fit's orthonormal basis phi_k
    and the grain's autocorrelation R (that of fast-mode grain of this size)."""
    b, n = BLOCK, 4 * BLOCK
    autocorrelation = _autocorrelation(size, n)
    c = np.arange(b) - (b - 1) / 2
    absorbed = 0.0
    for basis in (np.ones((b, b)), np.repeat(c[:, None], b, 1), np.repeat(c[None, :], b, 0)):
        padded = np.zeros((n, n))
        padded[:b, :b] = basis / np.linalg.norm(basis)
        overlap = np.fft.irfft2(np.abs(np.fft.rfft2(padded)) ** 2, s=(n, n))  # basis autocorrelation
        absorbed += float((overlap * autocorrelation).sum())
    return (b * b - absorbed) / (b * b - 3)


def size_for_lag1(lag1: float) -> float:
    """The fast-mode grain size with this lag-1 autocorrelation (bisection; it is monotonic)."""
    lo, hi = 0.0, MAX_SIZE
    if lag1 <= fast_lag1(lo):
        return 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fast_lag1(mid) < lag1 else (lo, mid)
    return (lo + hi) / 2


def estimate_profile(blocks: Blocks, source: dict | None = None) -> GrainProfile:
    """A profile from the blocks of one or more frames; ValueError if no flat area is found."""
    measured = [measure_channel(blocks, c) for c in range(3)]
    missing = [name for name, m in zip(CHANNELS, measured) if m is None]
    if missing:
        raise ValueError(f"found no flat areas to measure the {', '.join(missing)} grain in "
                         f"({len(blocks.mean)} blocks of {BLOCK}x{BLOCK} pixels looked at)")
    correlation = {}
    for p, (a, b) in enumerate(PAIRS):
        both = measured[CHANNELS.index(a)].kept & measured[CHANNELS.index(b)].kept
        correlation[f"{a}_{b}"] = float(np.median(blocks.cross[both, p])) if both.any() else 0.0
    spectrum = {"band_edges_cycles_per_pixel": [round(k * 0.5 / BANDS, 4) for k in range(BANDS + 1)]}
    for c, (name, m) in enumerate(zip(CHANNELS, measured)):
        spectrum[name] = [round(float(v), 4) for v in blocks.bands[m.kept, c].mean(axis=0)]
    source = dict(source or {})
    source["blocks_per_point"] = {name: m.blocks_per_point for name, m in zip(CHANNELS, measured)}
    source["confidence"] = {name: point_confidence(m) for name, m in zip(CHANNELS, measured)}
    return GrainProfile({name: m.grain for name, m in zip(CHANNELS, measured)}, correlation, spectrum, source)


FEW_BLOCKS = 20  # a point measured on fewer flat blocks than this is easily structure, not grain
OUTLIER = 3.0  # a point this many times above or below its neighbours' std disagrees with them
GRAIN_FREE = 0.0025  # noise below 0.25 % of the signal (film grain: 2-5 %, the presets ~3 % at 18 % grey)


def point_confidence(measure: ChannelMeasure) -> list[str]:
    """Per sigma point: "ok", "few blocks", or "outlier": its std OUTLIER x above or below what
    the other points predict (a Theil-Sen line, std against intensity, which one bad point
    cannot pull: grain std grows smoothly, roughly linearly, with intensity)."""
    points = np.array(measure.grain.sigma, np.float64)
    found = []
    for k, blocks in enumerate(measure.blocks_per_point):
        others = np.delete(points, k, axis=0)
        ratio = 1.0
        if len(others) >= 2:
            dx = others[:, None, 0] - others[None, :, 0]
            dy = others[:, None, 1] - others[None, :, 1]
            pairs = np.abs(dx) > 1e-9
            slope = float(np.median(dy[pairs] / dx[pairs])) if pairs.any() else 0.0
            predicted = float(np.median(others[:, 1] - slope * others[:, 0])) + slope * points[k, 0]
            if predicted <= 0:
                predicted = float(np.median(others[:, 1]))
            ratio = points[k, 1] / predicted if predicted > 0 else 1.0
        if ratio > OUTLIER or ratio < 1 / OUTLIER:
            found.append("outlier")
        elif blocks < FEW_BLOCKS:
            found.append("few blocks")
        else:
            found.append("ok")
    return found


def profile_warnings(profile: GrainProfile) -> list[str]:
    """What a user must know before trusting the profile (printed by `grain analyze`)."""
    notes = []
    relative = [s / max(i, 1e-6) for c in profile.ordered() for i, s in c.sigma]
    if relative and float(np.median(relative)) < GRAIN_FREE:
        notes.append(f"the plate looks grain-free: its noise is {100 * float(np.median(relative)):.2f} % of the "
                     f"signal (film grain is 2-5 %): the profile describes quantisation or compression noise")
    flagged = {name: [k for k, v in enumerate(marks) if v != "ok"]
               for name, marks in profile.source.get("confidence", {}).items()}
    count = sum(len(v) for v in flagged.values())
    if count:
        where = "; ".join(f"{name} points {', '.join(map(str, v))}" for name, v in flagged.items() if v)
        notes.append(f"{count} sigma points rest on fewer than {FEW_BLOCKS} flat blocks or disagree with their "
                     f"neighbours ({where}; source.confidence in the profile): measure more or flatter frames")
    return notes
