"""A plate's own colour change, measured from frame to frame (issue 31, item 1).

Consecutive frames show mostly the same scene, so the colour transform between two frames can be
measured from the plate itself, on what both frames show. This module does that on small
thumbnails, streaming through a shot, and keeps only small per-frame records:

    thumbnail(pixels)        a frame's area means (long side ~256 px): one pass over the frame
    analyse(frames)          per frame: the change to its predecessor (``step``), the change to its
                             segment's first frame (``state``), the camera move, a confidence;
                             cuts start a new segment and are never bridged
    Analysis.to_reference    frame i's colour brought to frame ref's (same segment)
    Analysis.deflicker       frame i's colour brought to a temporally smoothed state of its
                             neighbours (fast flicker removed, slow ramps kept)
    apply(change, pixels)    a change applied to full-resolution working-space pixels

The form of a change (chosen by measurement, see below): per channel, affine in log2 of linear
light around mid-grey,

    log2(y / 0.18) = stops + contrast * log2(x / 0.18)        (x, y linear Rec.709 values)

i.e. y = 0.18 * 2^stops * (x / 0.18)^contrast: an exposure in stops at mid-grey per channel
(exposure, white balance) and a power per channel (gamma/contrast, film density). It composes and
inverts in closed form, it is a linear-light ASC CDL exactly (``cdl``), and an affine average of
changes is a change (deflicker averages neighbours' states).

Why this form: per channel it follows exposure and white balance (stops) and gamma or film
density (contrast); it composes and inverts in closed form (chaining through neighbours and the
deflicker's averages of states stay in the form); it is an ASC CDL exactly, so it can be written
out. Gain only (3 numbers) cannot follow a gamma or density change; a 3x3 matrix plus offset (12)
is not closed under the power a density change needs and fits content changes (moving objects,
parts entering) as colour when the overlap shows few colours. The three were not measured
against each other here (a later session's job); what this form reaches is measured end to end
by `bake-seq eval --temporal` (README).

How a pair of frames is measured (``measure``):
  1. registration: phase correlation of log-luminance (whitened, so exposure, white balance and
     gamma do not matter) gives the translation; then Gauss-Newton on a pyramid refines a
     similarity (shift, zoom, roll: pans, push-ins, handheld) together with an affine change of
     log-luminance, with Tukey weights so moving objects do not pull it;
  2. the overlap: reference pixels the other frame also shows, neither clipped nor near black,
     down-weighted on edges (where a tenth of a pixel of misregistration is a colour error);
  3. the colour fit: per channel least squares in log2, iteratively reweighted (Tukey on the
     pixel's residual over the three channels), contrast gently held towards 1 when the overlap
     has little tonal range;
  4. structure: the correlation of log-luminance gradients after registration (1 = the same
     picture). A cut is a pair whose structure, overlap or inlier fraction is too low.

Drift: each frame is measured against its predecessor and, while the camera still shows enough of
it, directly against an anchor frame of its segment (the segment's first frame, then the frame
before the overlap ran out). ``state`` comes from the direct measurement when it is trusted, so
errors accumulate per anchor hop, not per frame.

Determinism: all maths in numpy float64 with fixed-order reductions (no BLAS over pixels, no
threads); the same thumbnails give bit-identical parameters. ``apply`` runs in torch float32
(elementwise: no reduction).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Iterable

import numpy as np
import torch

from .palette import srgb_eotf, srgb_oetf

PIVOT = 0.18  # linear mid-grey: stops and contrast are measured around it
LONG_SIDE = 256  # thumbnail long side: ~8x8 px blocks of a 2K frame average grain away
CLIPPED = 0.99  # sRGB-encoded: at or above, a channel may be clipped (no information)
BLACK = 0.003  # linear: below, grain and the black level dominate the log
LUMA = (0.2126, 0.7152, 0.0722)  # Rec.709 luminance weights
DEFLICKER_WINDOW = 6.0  # frames (Gaussian sigma): measured on held-out flicker (README, eval --temporal)
RECORD_FORMAT = "bake-seq-temporal"
RECORD_VERSION = 1


# --- the colour change ------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """log2(y / PIVOT) = stops + contrast * log2(x / PIVOT) per channel (R, G, B), linear light."""
    stops: tuple[float, float, float] = (0.0, 0.0, 0.0)
    contrast: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @staticmethod
    def of(stops, contrast) -> "Change":
        return Change(tuple(float(v) for v in stops), tuple(float(v) for v in contrast))

    def then(self, other: "Change") -> "Change":
        """This change followed by ``other``."""
        s, c = np.array(self.stops), np.array(self.contrast)
        return Change.of(np.array(other.stops) + np.array(other.contrast) * s, np.array(other.contrast) * c)

    def inverse(self) -> "Change":
        c = np.array(self.contrast)
        return Change.of(-np.array(self.stops) / c, 1.0 / c)

    def as_dict(self) -> dict:
        return {"stops": list(self.stops), "contrast": list(self.contrast)}

    @staticmethod
    def from_dict(data: dict) -> "Change":
        stops, contrast = (_floats(data.get(k), 3, k) for k in ("stops", "contrast"))
        if min(contrast) <= 0:
            raise ValueError(f"contrast must be positive, got {contrast}")
        return Change(stops, contrast)


IDENTITY = Change()


def _floats(values, count: int, what: str) -> tuple[float, ...]:
    if (not isinstance(values, list) or len(values) != count
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
        raise ValueError(f"{what}: expected {count} finite numbers, got {values!r}")
    return tuple(float(v) for v in values)


def cdl(change: Change) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """The same change as an ASC CDL (slope, offset, power; saturation 1) applied to linear
    Rec.709 values: y = (slope * x)^power, so slope = (2^stops * PIVOT^(1 - contrast))^(1/contrast)."""
    s, c = np.array(change.stops), np.array(change.contrast)
    slope = (2.0 ** s * PIVOT ** (1.0 - c)) ** (1.0 / c)
    return tuple(slope.tolist()), (0.0, 0.0, 0.0), tuple(c.tolist())


def apply(change: Change, pixels: np.ndarray, range_policy: str = "preserve") -> np.ndarray:
    """``change`` applied to (..., 3) float32 sRGB-encoded working-space pixels.

    The sRGB curves are palette's (linear below the toe, so negative values stay negative; the
    power continues above 1) and the power is odd (sign kept), so every finite value has a finite
    result: 'preserve' (the render's default) keeps what lies outside [0, 1] transformed like
    the rest (a highlight at 1.2 follows the exposure); 'clip' returns [0, 1]."""
    if range_policy not in ("preserve", "clip"):
        raise ValueError(f"unknown range policy {range_policy!r}")
    result = apply_tensor(change, torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)), channel=-1)
    return (result.clamp(0.0, 1.0) if range_policy == "clip" else result).numpy()


def apply_tensor(change: Change, rgb: torch.Tensor, channel: int = 1) -> torch.Tensor:
    """``apply`` on a float32 tensor whose ``channel`` axis holds R, G, B (1: N x 3 x H x W tiles)."""
    shape = [1] * rgb.dim()
    shape[channel] = 3
    stops = torch.tensor(change.stops, dtype=torch.float32).view(shape)
    contrast = torch.tensor(change.contrast, dtype=torch.float32).view(shape)
    lin = srgb_eotf(rgb) / PIVOT
    return srgb_oetf(lin.sign() * lin.abs().pow(contrast) * (PIVOT * torch.exp2(stops)))


# --- thumbnails and what the measurement keeps of them ------------------------------------------

def thumbnail(pixels: np.ndarray, long_side: int = LONG_SIDE) -> np.ndarray:
    """(H, W, C>=3) working-space pixels -> area means of RGB over square blocks of
    ceil(max(H, W) / long_side) px (the last partial row and column of blocks dropped), float32.

    Means of the sRGB-encoded values: one pass over the frame (~10 ms at 2K), and for the pure
    power part of the curve a gain in linear light commutes with it."""
    height, width = pixels.shape[:2]
    block = max(1, min(-(-max(height, width) // long_side), height // 2, width // 2))
    rows, cols = height // block, width // block
    # rows of blocks first: a contiguous reduction over whole image rows, then blocks of columns
    strips = pixels[:rows * block].reshape(rows, block, width, pixels.shape[2]).sum(1, dtype=np.float64)
    blocks = strips[:, :cols * block, :3].reshape(rows, cols, block, 3).sum(2)
    return np.nan_to_num(blocks / (block * block)).astype(np.float32)


@dataclass
class _Level:
    """One pyramid level of a view: what registration samples and the reference pixels it uses."""
    scale: int  # one pixel here = scale x scale thumbnail pixels
    planes: np.ndarray  # (4, h, w): log-luminance L, dL/dx, dL/dy, usable (0/1)
    where: np.ndarray  # flat indices of usable pixels with usable neighbours
    z: np.ndarray  # their centres in normalised coordinates (complex)


@dataclass
class _View:
    """A thumbnail prepared for measuring: log2 linear colour, log-luminance pyramid, masks."""
    log_rgb: np.ndarray  # (3, h, w) log2(linear / PIVOT), floored at BLACK
    usable: np.ndarray  # (h, w) bool: no channel clipped, none near black
    edge: np.ndarray  # (h, w) colour-fit weight: small on strong edges
    spectrum: np.ndarray  # windowed log-luminance, Fourier transformed (phase correlation)
    levels: list[_Level] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return self.usable.shape


EDGE_STOPS = 0.3  # log-luminance step per thumbnail pixel at which a pixel's colour weight halves
MIN_LEVEL_SIDE = 24  # coarsest pyramid level's short side, at least


def _coordinates(shape: tuple[int, int], scale: int = 1) -> np.ndarray:
    """Normalised centres (complex x + iy) of a level's pixels: units of the thumbnail's long side
    from its centre, so all levels and all thumbnail sizes share one frame of reference."""
    h, w = shape
    full_h, full_w = h * scale, w * scale
    offset = (scale - 1) / 2.0
    x = (np.arange(w) * scale + offset - (full_w - 1) / 2.0) / max(full_w, full_h)
    y = (np.arange(h) * scale + offset - (full_h - 1) / 2.0) / max(full_w, full_h)
    return (x[None, :] + 1j * y[:, None]).ravel()


def _erode(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is all usable (their gradients see no clipped pixel)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    rows = out.copy()
    out[:, 1:] &= rows[:, :-1]
    out[:, :-1] &= rows[:, 1:]
    out[[0, -1]] = False
    out[:, [0, -1]] = False
    return out


def _level(lum: np.ndarray, usable: np.ndarray, scale: int) -> _Level:
    gy, gx = np.gradient(lum)
    where = np.flatnonzero(_erode(usable))
    return _Level(scale, np.stack([lum, gx, gy, usable.astype(np.float64)]), where,
                  _coordinates(lum.shape, scale)[where])


def _halve(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))


def prepare(thumb: np.ndarray) -> _View:
    """What measuring needs of a ``thumbnail`` (~3 MB at 256 px; kept for two frames at a time)."""
    srgb = np.moveaxis(np.asarray(thumb, dtype=np.float64)[..., :3], -1, 0)
    lin = srgb_eotf(torch.from_numpy(np.ascontiguousarray(srgb))).numpy()
    usable = (srgb.max(0) < CLIPPED) & (lin.min(0) > BLACK)
    lum = np.log2(np.maximum(LUMA[0] * lin[0] + LUMA[1] * lin[1] + LUMA[2] * lin[2], BLACK) / PIVOT)
    gy, gx = np.gradient(lum)
    h, w = lum.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    view = _View(np.log2(np.maximum(lin, BLACK) / PIVOT), usable, 1.0 / (1.0 + (gx * gx + gy * gy) / EDGE_STOPS ** 2),
                 np.fft.rfft2((lum - lum.mean()) * window))
    # registration looks at everything not clipped: near-black areas (floored, flat in the log) add
    # no gradient, and leaving them out can leave a bright moving object most of what is usable
    scale, mask = 1, (srgb.max(0) < CLIPPED).astype(np.float64)
    while min(lum.shape) >= 2 * MIN_LEVEL_SIDE:  # coarser levels: a wider catch for Gauss-Newton
        view.levels.append(_level(lum, mask > 0.999, scale))
        lum, mask, scale = _halve(lum), _halve(mask), scale * 2
    view.levels.append(_level(lum, mask > 0.999, scale))
    return view


# --- the camera move ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Motion:
    """A similarity of the picture, z -> a z + b on normalised coordinates (complex x + iy, units of
    the thumbnail's long side, origin at its centre): |a| the zoom, arg a the roll, b the shift."""
    a: complex = 1 + 0j
    b: complex = 0j

    def then(self, other: "Motion") -> "Motion":
        return Motion(other.a * self.a, other.a * self.b + other.b)

    def inverse(self) -> "Motion":
        return Motion(1 / self.a, -self.b / self.a)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.a * z + self.b

    @property
    def zoom(self) -> float:
        return abs(self.a)

    def as_list(self) -> list[float]:
        return [self.a.real, self.a.imag, self.b.real, self.b.imag]

    @staticmethod
    def from_list(values) -> "Motion":
        ar, ai, br, bi = _floats(values, 4, "motion")
        if ar == 0 and ai == 0:
            raise ValueError("motion: zero scale")
        return Motion(complex(ar, ai), complex(br, bi))


def _pixel(z: np.ndarray, level: _Level, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised coordinates -> (x, y) pixel coordinates of ``level`` of a thumbnail of ``shape``."""
    h, w = shape
    long_side = max(h, w)
    offset = (level.scale - 1) / 2.0
    x = (z.real * long_side + (w - 1) / 2.0 - offset) / level.scale
    y = (z.imag * long_side + (h - 1) / 2.0 - offset) / level.scale
    return x, y


def _sample(planes: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples (C, N) of (C, h, w) ``planes`` at pixel coordinates, and which lie inside
    (one 1-D gather per plane: ~4x faster than gathering (C,)-rows)."""
    h, w = planes.shape[1:]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.minimum(x.astype(np.intp), w - 2), np.minimum(y.astype(np.intp), h - 2)
    fx, fy = x - x0, y - y0
    i = y0 * w + x0
    out = np.empty((len(planes), len(i)))
    for c, plane in enumerate(planes.reshape(len(planes), -1)):
        top = plane.take(i)
        top += (plane.take(i + 1) - top) * fx
        bottom = plane.take(i + w)
        bottom += (plane.take(i + w + 1) - bottom) * fx
        out[c] = top + (bottom - top) * fy
    return out, inside


PEAKS = 3  # phase-correlation peaks tried: a moving object's sharp edges can win the first


def _phase_correlation(ref: _View, cur: _View, peaks: int = PEAKS) -> list[Motion]:
    """Shifts that may map ``ref``'s picture onto ``cur``'s (sampling maps ref -> cur), from the
    whitened cross-power spectrum of log-luminance (blind to exposure and contrast): the highest
    ``peaks`` local maxima, best first (each 5 x 5 neighbourhood gives one)."""
    h, w = ref.shape
    cross = cur.spectrum * np.conj(ref.spectrum)
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-12), s=(h, w))

    def vertex(minus, centre, plus):  # sub-pixel peak of a parabola through three samples
        bend = minus - 2 * centre + plus
        return 0.0 if bend >= 0 else 0.5 * (minus - plus) / bend

    found, work = [], surface.copy()
    for _ in range(peaks):
        py, px = np.unravel_index(int(np.argmax(work)), work.shape)
        dy = py + vertex(surface[py - 1, px], surface[py, px], surface[(py + 1) % h, px])
        dx = px + vertex(surface[py, px - 1], surface[py, px], surface[py, (px + 1) % w])
        dy, dx = (dy + h / 2) % h - h / 2, (dx + w / 2) % w - w / 2  # wrap to signed shifts
        found.append(Motion(1 + 0j, complex(dx, dy) / max(h, w)))
        rows, cols = np.arange(py - 2, py + 3) % h, np.arange(px - 2, px + 3) % w
        work[np.ix_(rows, cols)] = -np.inf
    return found


def _agreement(ref: _View, cur: _View, sampling: Motion) -> float:
    """How well a sampling map ref -> cur lines the two pictures up: the gradient correlation
    (``_structure``) on the coarsest pyramid level (cheap: it only ranks candidates)."""
    r_level, c_level = ref.levels[-1], cur.levels[-1]
    x, y = _pixel(sampling(r_level.z), c_level, cur.shape)
    (_, gx, gy, usable), inside = _sample(c_level.planes, x, y)
    ok = inside & (usable > 0.999)
    g_ref = (r_level.planes[1] + 1j * r_level.planes[2]).ravel()[r_level.where][ok]
    g_cur = np.conj(sampling.a) * (gx + 1j * gy)[ok]
    energy = math.sqrt(float(np.sum(np.abs(g_ref) ** 2)) * float(np.sum(np.abs(g_cur) ** 2)))
    return float(np.sum((g_ref * np.conj(g_cur)).real)) / energy if energy > 0 else 0.0


def _biweight(deviation: np.ndarray, sigma: float) -> np.ndarray:
    """Tukey's biweight at c = 4.685 sigma: full weight near 0, none beyond c."""
    u = deviation / (4.685 * sigma)
    return np.where(u < 1.0, (1.0 - u * u) ** 2, 0.0)


def _gram(jacobian: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """J^T W J with einsum's own loops (a BLAS product's summation order depends on its threads)."""
    return np.einsum("ni,nj->ij", jacobian * weights[:, None], jacobian)


def _register(ref: _View, cur: _View, guess: Motion, iterations=(3, 4, 6)) -> Motion:
    """Gauss-Newton, coarse to fine (``iterations`` from the finest level up), from ``guess`` (a
    sampling map ref -> cur), fitting with it an affine change of log-luminance,
    ref_L(z) ~ gain * cur_L(map(z)) + lift, so light changes do not read as motion."""
    a, b, gain, lift = guess.a, guess.b, 1.0, 0.0
    for depth in reversed(range(len(ref.levels))):
        r_level, c_level = ref.levels[depth], cur.levels[depth]
        target, z = r_level.planes[0].ravel()[r_level.where], r_level.z
        unit = max(ref.shape) / r_level.scale  # pixels of this level per normalised unit
        for _ in range(iterations[min(depth, len(iterations) - 1)] if len(z) >= 16 else 0):
            x, y = _pixel(a * z + b, c_level, cur.shape)
            (lum, gx, gy, usable), inside = _sample(c_level.planes, x, y)
            ok = inside & (usable > 0.999)
            if ok.sum() < 16:
                break
            residual = gain * lum + lift - target
            deviation = np.abs(residual - np.median(residual[ok]))
            weights = ok * _biweight(deviation, max(1.4826 * float(np.median(deviation[ok])), 0.02))
            gx, gy = gain * gx * unit, gain * gy * unit
            jacobian = np.stack([gx, gy, gx * z.real + gy * z.imag, gy * z.real - gx * z.imag, lum, np.ones_like(gx)],
                                axis=1)
            normal = _gram(jacobian, weights)
            normal += np.diag(np.diag(normal) * 1e-3 + 1e-9)  # Levenberg: flat pictures stay put
            step = np.linalg.solve(normal, -np.einsum("ni,n->i", jacobian, weights * residual))
            if not np.all(np.isfinite(step)):
                break
            b, a = b + complex(step[0], step[1]), a + complex(step[2], step[3])
            gain, lift = gain + step[4], lift + step[5]
            if abs(step[0]) + abs(step[1]) < 0.01 / unit:  # a hundredth of a pixel: converged
                break
        if not 0.5 < abs(a) < 2.0:  # diverged (no structure to hold on to): back to the guess
            a, b, gain, lift = guess.a, guess.b, 1.0, 0.0
    return Motion(a, b)


# --- one pair of frames ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Measurement:
    """What one frame (current) shares with another (reference)."""
    change: Change  # current frame's colour -> reference frame's
    motion: Motion  # current frame's picture -> reference frame's
    structure: float  # gradient correlation after registration: 1 the same picture, ~0 another
    overlap: float  # fraction of the reference picture the current frame also shows
    inliers: float  # fraction of the usable overlap the colour fit kept
    residual: float  # RMS colour-fit error on the kept pixels, stops

    @property
    def confidence(self) -> float:
        return max(0.0, self.structure) * self.inliers


def _structure(g_ref: np.ndarray, g_cur: np.ndarray) -> float:
    """Correlation of log-luminance gradients (complex gx + i gy, both in the reference's axes)
    over the overlap: 1 the same picture, ~0 another."""
    energy = math.sqrt(float(np.sum(np.abs(g_ref) ** 2)) * float(np.sum(np.abs(g_cur) ** 2)))
    return float(np.sum((g_ref * np.conj(g_cur)).real)) / energy if energy > 0 else 0.0


CONTRAST_PRIOR = 1e-3  # stops^2 per unit of contrast: matters only when the overlap is nearly flat


def fit_change(x: np.ndarray, y: np.ndarray, weights: np.ndarray, iterations: int = 6) -> tuple[Change, float, float]:
    """Robust fit of y = stops + contrast * x per channel ((3, N) log2 values, weights (N,)):
    (change, inlier fraction, RMS residual in stops). Pixels are kept or dropped for all three
    channels together (a moving object is wrong in all of them)."""
    used = weights > 0
    x, y, prior = x[:, used], y[:, used], weights[used]
    total = float(np.sum(prior))
    if total <= 0:
        return IDENTITY, 0.0, math.inf
    moments = np.concatenate([x, y, x * x, x * y])  # (12, N): what the weighted sums need
    stops, contrast = np.median(y - x, axis=1), np.ones(3)  # a start outliers cannot pull: exposure only
    for _ in range(iterations):
        residual = y - (stops[:, None] + contrast[:, None] * x)
        error = np.sqrt(np.mean(residual * residual, axis=0))
        # the median of sqrt(mean of 3 squared normal errors) is 0.888 sigma
        w = prior * _biweight(error, max(float(np.median(error)) / 0.888, 0.02))
        sw = float(np.sum(w))
        if sw <= 0:
            return IDENTITY, 0.0, math.inf
        sx, sy, sxx, sxy = np.einsum("kn,n->k", moments, w).reshape(4, 3)
        k = CONTRAST_PRIOR * sw
        contrast = np.clip((sw * (sxy + k) - sx * sy) / (sw * (sxx + k) - sx * sx), 0.2, 5.0)
        stops = (sy - contrast * sx) / sw
    residual = y - (stops[:, None] + contrast[:, None] * x)
    error = np.mean(residual * residual, axis=0)
    inliers = float(np.sum(prior[w > 0])) / total
    return Change.of(stops, contrast), inliers, math.sqrt(float(np.sum(w * error)) / sw)


def _registered(ref: _View, cur: _View, guess: Motion | None) -> tuple[Motion, np.ndarray, np.ndarray, np.ndarray]:
    """Registration, then both frames sampled half way: on a grid q, the reference at h^-1(q) and
    the current frame at h(q), where h o h is the registered map ref -> cur. Both are then
    interpolated by the same sub-pixel amount, so interpolation blurs them alike (sampling only
    the current frame softens it and biases contrast up by ~2 % on a plain pan). Returns (the
    map ref -> cur, reference samples (9, N): L, dL/dx, dL/dy, not clipped, log2 R, G, B, edge
    weight, usable for colour; current samples (8, N) the same without the edge weight; which grid
    points both frames show).
    ``guess``: the current frame's picture -> the reference's; None: by phase correlation."""
    if ref.shape != cur.shape:
        raise ValueError(f"thumbnails differ in size: {ref.shape} and {cur.shape}")
    if guess is not None:
        start = guess.inverse()
    else:  # the candidate that lines up most of the picture (not a moving object's edges)
        start = max(_phase_correlation(ref, cur), key=lambda m: _agreement(ref, cur, m))
    sampling = _register(ref, cur, start)
    alpha = complex(np.sqrt(sampling.a))
    half = Motion(alpha, sampling.b / (alpha + 1))
    grid = _coordinates(ref.shape)
    r_level, c_level = ref.levels[0], cur.levels[0]
    x, y = _pixel(half.inverse()(grid), r_level, ref.shape)
    r_got, r_inside = _sample(np.concatenate([r_level.planes, ref.log_rgb, ref.edge[None],
                                              ref.usable[None].astype(np.float64)]), x, y)
    x, y = _pixel(half(grid), c_level, cur.shape)
    c_got, c_inside = _sample(np.concatenate([c_level.planes, cur.log_rgb, cur.usable[None].astype(np.float64)]), x, y)
    return sampling, r_got, c_got, r_inside & c_inside


def _measure(ref: _View, cur: _View, guess: Motion | None = None) -> Measurement:
    sampling, r_got, c_got, inside = _registered(ref, cur, guess)
    # gradients: the reference's turned by h^-1, the current frame's by h, into the grid's axes
    alpha = complex(np.sqrt(sampling.a))
    g_ref = (r_got[1] + 1j * r_got[2]) / alpha
    g_cur = np.conj(alpha) * (c_got[1] + 1j * c_got[2])
    structure = _structure(g_ref[inside], g_cur[inside])
    weights = (inside & (r_got[8] > 0.999) & (c_got[7] > 0.999)) * r_got[7]  # usable in both, off edges
    change, inliers, residual = fit_change(c_got[4:7], r_got[4:7], weights)
    return Measurement(change, sampling.inverse(), structure, float(np.mean(inside)), inliers, residual)


def measure(reference: np.ndarray, current: np.ndarray, guess: Motion | None = None) -> Measurement:
    """The colour change and camera move from thumbnail ``current`` to thumbnail ``reference``."""
    return _measure(prepare(reference), prepare(current), guess)


# --- a shot ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """When a pair is a cut, and when an anchor is too far away to measure against directly."""
    min_structure: float = 0.3  # gradient correlation below which two frames are different pictures
    min_inliers: float = 0.3  # fraction of the overlap the colour fit must keep
    min_overlap: float = 0.3  # fraction of the previous frame the next must show
    anchor_overlap: float = 0.6  # measure directly against the anchor while it shows this much


@dataclass(frozen=True)
class FrameChange:
    """One frame's record in an analysis."""
    frame: int
    segment: int  # frames between two cuts share a segment; 0, 1, ... in shot order
    step: Change  # this frame's colour -> the previous frame's (identity where a segment starts)
    state: Change  # this frame's colour -> its segment's first frame
    motion: Motion  # this frame's picture -> the previous frame's
    confidence: float  # 0..1, of the measurement ``state`` comes from
    residual: float  # its colour-fit RMS error, stops

    def as_dict(self) -> dict:
        return {"frame": self.frame, "segment": self.segment, "step": self.step.as_dict(),
                "state": self.state.as_dict(), "motion": self.motion.as_list(),
                "confidence": self.confidence, "residual": self.residual}

    @staticmethod
    def from_dict(data: dict) -> "FrameChange":
        frame, segment = data.get("frame"), data.get("segment")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (frame, segment)):
            raise ValueError(f"frame and segment must be integers, got {frame!r}, {segment!r}")
        confidence, residual = _floats([data.get("confidence"), data.get("residual")], 2, "confidence, residual")
        return FrameChange(frame, segment, Change.from_dict(data.get("step") or {}),
                           Change.from_dict(data.get("state") or {}), Motion.from_list(data.get("motion")),
                           confidence, residual)


@dataclass(frozen=True)
class Analysis:
    """Every frame's colour change, in shot order."""
    frames: tuple[FrameChange, ...]
    settings: Settings = Settings()

    @cached_property
    def _position(self) -> dict[int, int]:
        return {f.frame: i for i, f in enumerate(self.frames)}

    def record(self, frame: int) -> FrameChange:
        if frame not in self._position:
            raise KeyError(f"frame {frame} was not analysed")
        return self.frames[self._position[frame]]

    @property
    def cuts(self) -> list[int]:
        """Frames that start a new segment (not counting the first frame)."""
        return [f.frame for prev, f in zip(self.frames, self.frames[1:]) if f.segment != prev.segment]

    def to_reference(self, frame: int, ref: int) -> Change:
        """The change that brings ``frame``'s colour to ``ref``'s; both in one segment (a cut is
        never bridged: ValueError)."""
        here, there = self.record(frame), self.record(ref)
        if here.segment != there.segment:
            raise ValueError(f"frames {frame} and {ref} are on different sides of a cut")
        return here.state.then(there.state.inverse())

    def deflicker(self, sigma: float, rounds: int = 2) -> list[Change]:
        """Per frame, the change to a smoothed state of its segment: a Gaussian-weighted (``sigma``
        frames, weighted by confidence too) local *linear* fit over time of the neighbours' states,
        so changes faster than ~sigma frames are removed and linear ramps are kept exactly, also
        at a segment's ends; a slope the neighbours do not show beyond their scatter is shrunk
        towards the local mean (``SLOPE_T``: random flicker that happens to trend over a short
        window is flicker, not a ramp). 0 returns identities.

        Robust over time: after each fit, frames far off the smoothed curve (a single flash among
        steady frames) lose their weight (Tukey, scaled by the segment's median distance), so one
        bad frame is corrected fully and does not pull its neighbours. States are averaged as maps
        (segment start -> frame), with weights summing to 1, so the result does not depend on
        which frame a segment is measured against."""
        if sigma <= 0:
            return [IDENTITY] * len(self.frames)
        out: list[Change] = [IDENTITY] * len(self.frames)
        segments: dict[int, list[int]] = {}
        for i, record in enumerate(self.frames):
            segments.setdefault(record.segment, []).append(i)
        for members in segments.values():
            maps = np.array([[*m.stops, *m.contrast] for m in (self.frames[j].state.inverse() for j in members)])
            confidence = np.array([max(self.frames[j].confidence, 1e-3) for j in members])
            robust = np.ones(len(members))
            for round_ in range(rounds + 1):
                smooth = _local_line(maps, confidence * robust, sigma)
                if round_ == rounds:
                    break
                off = np.abs(maps - smooth)
                distance = off[:, :3].max(1) + off[:, 3:].max(1)
                robust = np.maximum(_biweight(distance, max(1.4826 * float(np.median(distance)), 0.02)), 1e-3)
            for k, j in enumerate(members):
                out[j] = self.frames[j].state.then(Change.of(smooth[k, :3], np.maximum(smooth[k, 3:], 0.2)))
        return out

    def as_dict(self) -> dict:
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION,
                "form": "per channel: log2(y/0.18) = stops + contrast * log2(x/0.18), linear Rec.709",
                "settings": asdict(self.settings), "frames": [f.as_dict() for f in self.frames]}

    @staticmethod
    def from_dict(data: dict) -> "Analysis":
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise ValueError("not a bake-seq temporal analysis")
        if data.get("version") != RECORD_VERSION:
            raise ValueError(f"unsupported temporal analysis version {data.get('version')!r}")
        names = {f for f in Settings.__dataclass_fields__}
        given = data.get("settings") or {}
        if not isinstance(given, dict) or set(given) - names:
            raise ValueError(f"unknown settings {sorted(set(given) - names) if isinstance(given, dict) else given!r}")
        settings = Settings(**dict(zip(given, _floats(list(given.values()), len(given), "settings"))))
        frames = tuple(FrameChange.from_dict(f) for f in data.get("frames") or [] if isinstance(f, dict))
        if len(frames) != len(data.get("frames") or []):
            raise ValueError("frames must be a list of records")
        segments = [f.segment for f in frames]
        if segments and (segments[0] != 0 or any(b - a not in (0, 1) for a, b in zip(segments, segments[1:]))):
            raise ValueError("segments must count 0, 1, ... in shot order")
        if len({f.frame for f in frames}) != len(frames):
            raise ValueError("a frame appears twice")
        return Analysis(frames, settings)


def _local_line(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """(n, k) values over n consecutive frames -> each frame's value of a weighted local line fit
    (Gaussian of ``sigma`` frames x ``weights``), in a fixed order (deterministic)."""
    n = len(values)
    reach = int(math.ceil(3 * sigma))
    out = np.empty_like(values)
    for i in range(n):
        lo, hi = max(0, i - reach), min(n, i + reach + 1)
        t = np.arange(lo, hi, dtype=np.float64) - i
        g = np.exp(-0.5 * (t / sigma) ** 2) * weights[lo:hi]
        s0, s1, s2 = float(np.sum(g)), float(np.sum(g * t)), float(np.sum(g * t * t))
        det = s0 * s2 - s1 * s1
        level = np.einsum("j,jk->k", g / s0, values[lo:hi])  # the local mean
        if det <= 1e-9 * s0 * s0:
            out[i] = level
            continue
        line = np.einsum("j,jk->k", g * (s2 - s1 * t) / det, values[lo:hi])
        # a slope the neighbours do not show beyond their scatter is noise (flicker that happens
        # to trend over a short window): the local mean then, with its smaller variance
        centred = t - s1 / s0
        spread = float(np.sum(g * centred * centred))
        slope = np.einsum("j,jk->k", g * centred, values[lo:hi]) / spread
        fitted = level[None, :] + slope[None, :] * centred[:, None]
        scatter = np.sqrt(np.einsum("j,jk->k", g, (values[lo:hi] - fitted) ** 2) / s0 + 1e-12)
        error = scatter * math.sqrt(float(np.sum(g * g * centred * centred))) / spread  # the slope's s.e.
        t_value = slope / error
        keep = t_value * t_value / (t_value * t_value + SLOPE_T * SLOPE_T)  # smooth: no jump between frames
        out[i] = level + keep * (line - level)
    return out


# The local line's slope is kept by t^2 / (t^2 + SLOPE_T^2) (t: the slope over its standard
# error among the window's frames). Measured on held-out flicker (eval --temporal, 24 frames,
# sigma 6, true states): 0 (always the line) 0.30 x doing nothing; 2: 0.26 x on random flicker and
# 0.17 x (was 0.13) on breathing; ramps still kept exactly.
SLOPE_T = 2.0


def _is_cut(m: Measurement, settings: Settings) -> bool:
    return (m.structure < settings.min_structure or m.inliers < settings.min_inliers
            or m.overlap < settings.min_overlap)


def _overlap(motion: Motion, shape: tuple[int, int]) -> float:
    """Fraction of the reference picture a frame shows, given motion frame -> reference (on a
    16 x 16 grid: it only decides when to move the anchor)."""
    h, w = shape
    grid = _coordinates((16, 16))
    z = grid.real * (w / max(h, w)) + 1j * grid.imag * (h / max(h, w))  # the grid over the picture
    back = motion.inverse()(z) * max(h, w)
    return float(np.mean((np.abs(back.real) <= (w - 1) / 2) & (np.abs(back.imag) <= (h - 1) / 2)))


def analyse(frames: Iterable[tuple[int, np.ndarray]], settings: Settings = Settings()) -> Analysis:
    """(frame number, ``thumbnail``) pairs in shot order -> Analysis. Streams: keeps the previous
    frame's and the anchor's prepared thumbnails only (~3 MB at 256 px)."""
    records: list[FrameChange] = []
    prev = anchor = None  # (view, record)
    to_anchor = Motion()  # previous frame's picture -> the anchor's
    for number, thumb in frames:
        view = prepare(thumb)
        if prev is None:
            record = FrameChange(number, 0, IDENTITY, IDENTITY, Motion(), 1.0, 0.0)
            anchor, to_anchor = (view, record), Motion()
        else:
            step = _measure(prev[0], view)
            if _is_cut(step, settings):
                record = FrameChange(number, prev[1].segment + 1, IDENTITY, IDENTITY, step.motion, 1.0, 0.0)
                anchor, to_anchor = (view, record), Motion()
            else:
                record, anchor, to_anchor = _follow(number, view, step, prev, anchor, to_anchor, settings)
        records.append(record)
        prev = (view, record)
    return Analysis(tuple(records), settings)


def _follow(number, view, step: Measurement, prev, anchor, to_anchor: Motion, settings: Settings):
    """The record of a frame that continues its segment: its state from a direct measurement
    against the anchor while that is trusted, else through the previous frame (which then becomes
    the anchor). Returns (record, anchor, this frame's motion to the anchor)."""
    chained = step.motion.then(to_anchor)
    chain_state = step.change.then(prev[1].state)
    if anchor[1] is not prev[1] and _overlap(chained, view.shape) >= settings.anchor_overlap:
        direct = _measure(anchor[0], view, chained)
        if not _is_cut(direct, settings):
            state = direct.change.then(anchor[1].state)
            record = FrameChange(number, prev[1].segment, step.change, state, step.motion,
                                 direct.confidence, direct.residual)
            return record, anchor, direct.motion
        anchor, chained = prev, step.motion  # the anchor no longer matches: hop to the previous frame
    elif anchor[1] is not prev[1]:
        anchor, chained = prev, step.motion  # too little of the anchor left in view
    record = FrameChange(number, prev[1].segment, step.change, chain_state, step.motion,
                         step.confidence, step.residual)
    return record, anchor, chained


# --- plates and stored records ------------------------------------------------------------------

def analyse_frames(frames: Iterable[int], read, settings: Settings = Settings()) -> Analysis:
    """Frame numbers in shot order and ``read(n)`` (frame n as working-space RGB, H x W x C) ->
    Analysis; one frame is held at a time (a 10,000-frame plate keeps 10,000 small records)."""
    return analyse(((n, thumbnail(read(n))) for n in frames), settings)


def analysis_sha256(analysis: Analysis) -> str:
    """The first 16 hex digits of the canonical JSON of what an analysis measured (``about`` is
    not part of it): names the record `submit` stores and enters every frame's fingerprint."""
    import hashlib
    import json

    blob = json.dumps(analysis.as_dict(), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def analysis_json(analysis: Analysis, about: dict | None = None) -> str:
    import json

    return json.dumps({**analysis.as_dict(), "about": about or {}, "sha256": analysis_sha256(analysis)},
                      indent=1) + "\n"


def save_analysis(path: str, analysis: Analysis, about: dict | None = None, **target) -> None:
    """Through the one safe writer (``target``: overwrite, inputs; see sequences/safe_write.py)."""
    from bake_seq.sequences.safe_write import write_file

    target.setdefault("what", "temporal analysis")
    target.setdefault("fix", "choose another file name")
    write_file(path, analysis_json(analysis, about), **target)


def store_analysis(folder: str, analysis: Analysis, about: dict) -> str:
    """The record `submit` stores for farm chunks: ``folder``/temporal-<hash>.json (its content
    fixes its name, so writing it again is harmless); returns the path."""
    import os

    path = os.path.join(folder, f"temporal-{analysis_sha256(analysis)}.json")
    save_analysis(path, analysis, about, overwrite=True, fix="check the output folder is writable from here")
    return path


MAX_RECORD_BYTES = 64 << 20  # ~150,000 frames' records


def load_analysis(path: str) -> Analysis:
    """A stored analysis, checked field by field; every refusal one SettingsError line. A record
    named temporal-<hash>.json (what `submit` writes) must still hold that content."""
    import os
    import re

    from bake_seq.sequences.datafile import DataFileError, read_json

    from .errors import SettingsError

    fix = "give a record written by `bake-seq info --temporal --write` or `bake-seq submit`"
    try:
        data = read_json(path, MAX_RECORD_BYTES)
    except DataFileError as exc:
        raise SettingsError(path, f"the temporal analysis {exc}", fix) from None
    try:
        analysis = Analysis.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise SettingsError(path, f"is not a usable temporal analysis ({exc})", fix) from None
    if not analysis.frames:
        raise SettingsError(path, "holds no frames", fix)
    named = re.fullmatch(r"temporal-([0-9a-f]{16})\.json", os.path.basename(path))
    if named and named[1] != analysis_sha256(analysis):
        raise SettingsError(path, f"holds an analysis whose hash is {analysis_sha256(analysis)}, not the "
                            f"{named[1]} its name says (edited after `submit` wrote it)", "run `bake-seq submit` again")
    return analysis


# --- learned corrections that follow the plate --------------------------------------------------

# A segment whose frames all stay this close to its first frame's colour (stops per channel,
# contrast - 1) does not change: followed as identity, so constant light renders as --follow off.
# Measured on constant-light pans (eval --keyframes' shots, 3 photos x 6 families, 12 frames):
# the analysis reads up to 0.037 stops and 0.012 contrast there (rocket: sky and a push-in);
# light that really changes in eval --temporal moves 0.15 stops and more.
STEADY_STOPS = 0.06
STEADY_CONTRAST = 0.03


def steady(analysis: Analysis, segment: int) -> bool:
    """Whether a segment's colour stays put (measurement noise, not light that changes): such a
    segment is rendered exactly as without following (the learned path's numbers unchanged)."""
    return all(max(abs(s) for s in f.state.stops) <= STEADY_STOPS
               and max(abs(c - 1.0) for c in f.state.contrast) <= STEADY_CONTRAST
               for f in analysis.frames if f.segment == segment)


@dataclass(frozen=True)
class Follow:
    """Per frame, the keys a learned correction uses and each key's change: frame n renders as
    sum over (key index, weight, change) of weight x key's correction of change(frame n's pixels)."""
    plan: dict  # frame -> tuple of (key index, weight, Change)
    unkeyed: tuple[int, ...]  # analysed frames whose segment holds no key (they take today's blend)

    def for_frame(self, frame: int, keys: tuple[int, ...]) -> tuple:
        from .models.shot import key_weights

        if frame in self.plan:
            return self.plan[frame]
        return tuple((k, w, IDENTITY) for k, w in key_weights(keys, frame))


def follow(analysis: Analysis, keys: tuple[int, ...]) -> Follow:
    """Each analysed frame's keys: those in its segment (never across a cut), the two around it
    weighted by frame distance as without following, or the nearest one; and for each key the
    measured change from the frame's colour to the key frame's. A frame whose segment has no
    analysed key falls back to the blend by frame distance (``unkeyed``)."""
    from .models.shot import key_weights

    present = {f.frame for f in analysis.frames}
    plan, unkeyed = {}, []
    for record in analysis.frames:
        mine = [(i, k) for i, k in enumerate(keys) if k in present and analysis.record(k).segment == record.segment]
        if not mine:
            unkeyed.append(record.frame)
            continue
        frames = tuple(k for _, k in mine)
        hold = steady(analysis, record.segment)
        plan[record.frame] = tuple(
            (mine[j][0], w, IDENTITY if hold else analysis.to_reference(record.frame, frames[j]))
            for j, w in key_weights(frames, record.frame))
    return Follow(plan, tuple(unkeyed))
