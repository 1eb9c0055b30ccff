"""Synthesise film grain in linear light, deterministically per frame.

Every random number of a frame comes from one counter-based generator (Philox) keyed by
(seed, frame number), and grain is made over the whole frame at once: the same frame gets the
same grain in any run, chunk or tile layout, and each frame gets different grain.

fast      white Gaussian noise, mixed between channels to the profile's correlation, shaped per
          channel by a Gaussian filter of the profile's size (in the frequency domain), then
          scaled per pixel by the channel's noise std at that pixel's intensity: AV1's film
          grain idea (spectrally shaped noise x a piecewise-linear scaling function).
physical  Newson et al. 2017: grains are discs of one radius dropped as a Boolean model whose
          Poisson density makes the expected covered fraction equal the pixel value; the grain
          image is filtered by Monte-Carlo sampling with a Gaussian filter.
Both add zero-mean grain: the expected linear value of every pixel is unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .profile import GrainProfile

MODES = ("fast", "physical")
REFERENCE_GREY = 0.18  # where `response` pivots and where physical grain is matched to the profile
U_MAX = 0.99  # the Boolean model needs u < 1; a brighter pixel keeps its excess grain-free
FILTER_SIGMA = 0.5  # px: Newson's Gaussian filter (the pixel's footprint plus scanner blur)


@dataclass(frozen=True)
class GrainSettings:
    mode: str = "fast"
    seed: int = 0
    amount: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per channel, x the profile
    size: float = 1.0  # x the profile's grain size
    response: float = 1.0  # exponent on the intensity response around 18% grey (0 = flat)
    samples: int = 16  # Monte-Carlo filter samples (physical)
    radius: float = 0.0  # grain radius in px (physical); 0 = the radius that matches the size


def frame_rng(seed: int, frame: int, stream: int = 0) -> np.random.Generator:
    """A counter-based generator for one frame; frames may be negative numbers."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed % 2**64, frame % 2**64, stream])))


def add_grain(linear: np.ndarray, profile: GrainProfile, frame: int, settings: GrainSettings) -> np.ndarray:
    """Return linear H x W x 3 RGB with grain added."""
    rng = frame_rng(settings.seed, frame)
    channels = profile.ordered()
    out = np.array(linear, np.float32, copy=True)
    if settings.mode == "fast":
        sizes = [c.size * settings.size for c in channels]
        noise = shaped_noise(linear.shape[:2], sizes, profile.correlation_matrix(), rng)
        for i, channel in enumerate(channels):
            out[..., i] += settings.amount[i] * grain_sigma(channel, linear[..., i], settings.response) * noise[i]
        return out
    offsets = filter_offsets(settings.samples, settings.seed)
    for i, channel in enumerate(channels):
        size = round(channel.size * settings.size, 4)
        radius, std = physical_match(size, settings.samples, settings.seed, settings.radius)
        u = np.clip(linear[..., i], 0.0, U_MAX)
        grain = boolean_grain(u, radius, offsets, rng) - u
        out[..., i] += settings.amount[i] * channel.sigma_at(REFERENCE_GREY) / std * grain
    return out


def grain_sigma(channel, intensity: np.ndarray, response: float) -> np.ndarray:
    sigma = channel.sigma_at(intensity)
    if response == 1.0:
        return sigma
    pivot = float(channel.sigma_at(REFERENCE_GREY))
    if pivot <= 0:
        return sigma
    return (pivot * (sigma / pivot) ** response).astype(np.float32)


# --- fast: spectrally shaped Gaussian noise ---------------------------------------------------

def gaussian_transfer(shape: tuple[int, int], size: float) -> np.ndarray:
    """rfft2-domain amplitude of a Gaussian blur of std ``size`` px, without DC, scaled so
    filtered unit white noise keeps unit variance."""
    h, w = shape
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    amp = np.exp(-2 * math.pi**2 * size**2 * f2)
    amp[0, 0] = 0.0  # no DC: the grain of a frame sums to zero
    amp /= math.sqrt(_full_grid_mean(amp**2, w))
    return amp.astype(np.float32)


def _full_grid_mean(half: np.ndarray, width: int) -> float:
    """Mean over the full fft2 grid of a Hermitian-symmetric quantity given on rfft2's half."""
    weights = np.full(half.shape[1], 2.0)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    return float((half * weights).sum() / (half.shape[0] * width))


def shaped_noise(shape: tuple[int, int], sizes: list[float], correlation: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """3 x H x W unit-variance noise: channel c has a Gaussian spectrum of sizes[c] and the
    channels correlate as ``correlation`` says."""
    filters = [gaussian_transfer(shape, s) for s in sizes]
    white = rng.standard_normal((3, *shape), dtype=np.float32)
    mix = np.linalg.cholesky(_white_correlation(correlation, filters, shape[1]))
    white = np.tensordot(mix.astype(np.float32), white, axes=1)
    return np.stack([np.fft.irfft2(np.fft.rfft2(white[c]) * filters[c], s=shape) for c in range(3)])


def _white_correlation(target: np.ndarray, filters: list[np.ndarray], width: int) -> np.ndarray:
    """The correlation to give white noise so that it is ``target`` after the per-channel
    filters (two different filters keep only part of a correlation: their coherence)."""
    white = np.array(target, np.float64)
    for a in range(3):
        for b in range(a + 1, 3):
            coherence = _full_grid_mean(filters[a] * filters[b], width)  # filters have unit power
            white[a, b] = white[b, a] = np.clip(target[a, b] / max(coherence, 1e-6), -1, 1)
    values, vectors = np.linalg.eigh(white)  # nearest valid correlation matrix
    white = vectors @ np.diag(np.clip(values, 1e-6, None)) @ vectors.T
    scale = np.sqrt(np.diag(white))
    return white / np.outer(scale, scale)


# --- physical: Newson et al. 2017 Boolean model, Monte-Carlo filtered -------------------------

def filter_offsets(samples: int, seed: int) -> np.ndarray:
    """The Monte-Carlo filter's sample offsets (px). They depend on the seed only: every frame
    is filtered alike, so the grain level does not flicker with the draw of the offsets."""
    offsets = frame_rng(seed, 0, stream=2).normal(0.0, FILTER_SIGMA, (samples, 2))
    return np.clip(offsets, -3 * FILTER_SIGMA, 3 * FILTER_SIGMA)


def boolean_grain(u: np.ndarray, radius: float, offsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The filtered Boolean-model image of ``u`` (H x W, values in [0, U_MAX]).

    Grain centres: in each pixel, Poisson(lambda) of them, uniform in the pixel, with
    lambda = -log(1 - u) / (pi r^2) so that the expected covered fraction is u. Filter:
    the mean coverage at the Gaussian ``offsets`` from each pixel centre. The offsets are shared
    by all pixels (a random N-tap Gaussian filter) rather than drawn per pixel as in the paper,
    which needs ~800 samples to hide its own sampling noise.
    """
    h, w = u.shape
    reach = radius + 3 * FILTER_SIGMA
    margin = int(math.ceil(reach)) + 1
    padded = np.pad(u, margin, mode="edge")  # grains just outside the frame cover its border
    lam = -np.log1p(-padded.astype(np.float64)) / (math.pi * radius**2)
    counts = rng.poisson(lam).ravel()
    cells = np.repeat(np.arange(counts.size), counts)
    gy = cells // padded.shape[1] + rng.random(cells.size) - margin
    gx = cells % padded.shape[1] + rng.random(cells.size) - margin
    span = int(math.floor(2 * radius)) + 1  # pixel rows (columns) a disc can reach
    out = np.zeros((h, w), np.float32)
    covered = np.zeros((h, w), bool)
    for dy, dx in offsets:
        # Pixel (i, j) samples the point (i + 0.5 + dy, j + 0.5 + dx): it is covered by a grain
        # at (gy, gx) when (i - ty)^2 + (j - tx)^2 < r^2.
        ty, tx = gy - 0.5 - dy, gx - 0.5 - dx
        y0 = np.floor(ty - radius).astype(np.int64) + 1
        x0 = np.floor(tx - radius).astype(np.int64) + 1
        covered[:] = False
        for oy in range(span):
            iy = y0 + oy
            ey = np.where((iy >= 0) & (iy < h), (iy - ty) ** 2, np.inf)
            for ox in range(span):
                ix = x0 + ox
                hit = (ey + (ix - tx) ** 2 < radius**2) & (ix >= 0) & (ix < w)
                covered[iy[hit], ix[hit]] = True
        out += covered
    return out / len(offsets)


def lag1_correlation(noise: np.ndarray) -> float:
    """Mean of the horizontal and vertical lag-1 autocorrelation of a zero-mean field."""
    noise = noise - noise.mean()
    across = (noise[:, 1:] * noise[:, :-1]).mean() + (noise[1:] * noise[:-1]).mean()
    return float(across / (2 * noise.var()))


def fast_lag1(size: float) -> float:
    """Lag-1 autocorrelation of fast-mode grain of this size."""
    amp2 = gaussian_transfer((64, 64), size) ** 2
    return _full_grid_mean(amp2 * np.cos(2 * math.pi * np.fft.rfftfreq(64))[None, :], 64)


@lru_cache(maxsize=64)
def physical_match(size: float, samples: int, seed: int, radius: float = 0.0) -> tuple[float, float]:
    """(grain radius, grain std at 18% grey) of the Boolean model. Without a ``radius``, the one
    whose grain correlates like fast-mode grain of ``size`` (a profile's size then means the same
    grain in both modes), found by bisection. Measured on a fixed-seed flat patch (about 1-2 %
    statistical error)."""
    patch = np.full((128, 128), REFERENCE_GREY, np.float32)
    offsets = filter_offsets(samples, seed)

    def grain(radius):
        return boolean_grain(patch, radius, offsets, frame_rng(seed, 0, stream=1)) - REFERENCE_GREY

    if not radius:
        target = fast_lag1(size)
        lo, hi = math.log(0.1), math.log(8.0)
        for _ in range(12):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if lag1_correlation(grain(math.exp(mid))) < target else (lo, mid)
        radius = math.exp((lo + hi) / 2)
    return radius, float(grain(radius).std())
