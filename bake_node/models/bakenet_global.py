r"""BakeNet global: one colour transform per frame, estimated from the whole frame.

Every degradation bake-seq restores (white balance, tone curve, split toning, ASC CDL grades,
film fade, the darkroom family) maps a colour to a colour the same way everywhere in the frame.
So the model reads the *whole* frame once, as a small thumbnail, and predicts that frame's
mapping as one parametric grade, which is then applied to every full-resolution pixel:

    frame (sRGB) --area mean--> thumbnail T x T --OklabP--> encoder ---> grade (61 numbers)
                                       \--> colour statistics --/
    out = grade(pixel)                   for every pixel of the frame (``BakeNetGlobal.apply``)

The grade's parameters start at zero, which is exactly the identity, so an untrained model
changes nothing and a frame that needs nothing can get (and is trained to get) no change.
The transform depends only on the thumbnail, never on tiling: tiles apply one grade computed
once per frame. (16 image-adaptive basis 3D LUTs in OklabP, after Zeng et al., TPAMI 2020,
learned no faster on the CPU; see the README.)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from ..palette import OklabP, exact_tensor, oklabp_to_srgb, srgb_eotf, srgb_to_oklabp

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
L_BANDS = 8  # a and b means per lightness band: split toning and tinted blacks show up here


@dataclass(frozen=True)
class GlobalConfig:
    thumb: int = 64  # the encoder's view: the whole frame area-averaged to thumb x thumb
    width: int = 16  # encoder channels at the first level (x2 per level, 4 levels); 0 = statistics only
    hidden: int = 128  # encoder head width
    curve_knots: int = 16  # lightness tone curve segments
    toning_knots: int = 8  # a and b offsets as functions of lightness (split toning, tinted blacks)
    harmonics: int = 2  # chroma scale and hue rotation as Fourier series in hue

    def __post_init__(self):
        limits = {"thumb": (16, 256), "width": (0, 64), "hidden": (1, 1024), "curve_knots": (1, 256),
                  "toning_knots": (2, 256), "harmonics": (0, 16)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number in [{low}, {high}], got {value!r}")
        if self.thumb % 16:
            raise ValueError(f"thumb must be a multiple of 16, got {self.thumb}")

    receptive_radius = 0  # per pixel the model is a colour function: tiles need no halo

    @property
    def grade_parameters(self) -> int:
        return grade_parameter_count(self)

    @property
    def stats_features(self) -> int:
        return 6 * len(QUANTILES) + 2 * L_BANDS + 6

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {"global": GlobalConfig()}


GROUP_NAMES = ("black", "white", "gamma", "matrix", "curve", "tone_a", "tone_b", "chroma", "hue")


def group_sizes(curve_knots: int, toning_knots: int, harmonics: int) -> List[int]:
    """The parameter count of each group (GROUP_NAMES' order) of a grade of this form."""
    series = 1 + 2 * harmonics
    return [3, 3, 3, 9, curve_knots + 1, toning_knots, toning_knots, series, series]


def grade_groups(form) -> tuple[tuple[str, int], ...]:
    """(name, count) of the parameter groups of one grade of this form (anything with
    curve_knots, toning_knots, harmonics), in order: levels, gamma, a 3x3 matrix, the tone
    curve, a/b toning, chroma and hue series."""
    return tuple(zip(GROUP_NAMES, group_sizes(form.curve_knots, form.toning_knots, form.harmonics)))


def grade_parameter_count(form) -> int:
    return sum(count for _, count in grade_groups(form))


# The largest |parameter| a grade read from a file may have, per group (default GRADE_LIMIT).
# Far beyond any real grade (the shipped model's stay under 0.1, test models' under 1): black and
# white move by the whole code range, the matrix mixes by 1, curve slopes change by e^5, toning
# shifts a/b by 1, chroma scales by up to e^15. They keep every float32 value apply_grade makes
# finite: gamma is tighter because its power (e^(0.3 g)) multiplies the exponent of everything
# after it; at these limits the largest value found (the worst case built by hand and gradient
# ascent on a 33^3 lattice) is ~1e13, against float32's 3e38.
GRADE_LIMIT = 10.0
GROUP_LIMITS = {"gamma": 5.0}


def grade_limits(form) -> list[float]:
    """The limit of every parameter of a grade of this form, in order."""
    return [GROUP_LIMITS.get(name, GRADE_LIMIT) for name, count in grade_groups(form) for _ in range(count)]


def thumbnail(srgb: torch.Tensor, size: int) -> torch.Tensor:
    """(N,3,H,W) sRGB -> (N,3,size,size) OklabP: area means of the clamped sRGB frame.

    Averaging sRGB first keeps the cost of the whole-frame view at one pass over the frame
    (no frame-sized OklabP copy); training builds its thumbnails with this same function."""
    small = F.adaptive_avg_pool2d(srgb.float().clamp(0.0, 1.0), size)
    return srgb_to_oklabp(small.double()).float()


def quantiles(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """torch.quantile(values, q, dim=-1) (linear interpolation) as (..., Q), computed step by
    step as torch's own implementation does (sort, ranks, gather, lerp), so the results are the
    same to the bit (tests/bake_node/test_global_model.py); ONNX has no quantile operator."""
    ordered = torch.sort(values, dim=-1)[0]
    last = ordered.shape[-1] - 1
    # ranks in float64, as torch does (float32 ranks move ~1 in 3 results by an ulp); a NaN
    # anywhere gives NaN, as there
    ranks = (q.double() * last).masked_fill(ordered.isnan().any(-1, keepdim=True), last)
    below = ranks.long()
    lower, upper = ordered.gather(-1, below), ordered.gather(-1, ranks.ceil().long())
    return lower.lerp(upper, (ranks - below).to(values.dtype))


class ColourStatistics(nn.Module):
    """Per-image statistics of an OklabP thumbnail (N,3,T,T) -> (N, features): quantiles of
    L, a, b and of sRGB R, G, B (black and white levels), mean a and b per lightness band,
    means and spreads. (A module so that TorchScript can compile it: constants as attributes.)"""

    def __init__(self):
        super().__init__()
        self.quantiles: List[float] = list(QUANTILES)
        self.bands: int = L_BANDS
        self.oklabp = OklabP()

    def forward(self, lab: torch.Tensor) -> torch.Tensor:
        flat = lab.flatten(2)  # N,3,P
        rgb = self.oklabp.decode(lab.double()).to(flat.dtype).flatten(2)  # float64 maths, the thumbnail's dtype
        q = exact_tensor(self.quantiles, flat)
        quant = quantiles(torch.cat([flat, rgb], 1), q).flatten(1)  # N, 6*Q
        centres = torch.linspace(-1.0, 1.0, self.bands, dtype=flat.dtype, device=flat.device)
        width = 2.0 / (self.bands - 1)
        band = (1.0 - (flat[:, 0:1] - centres[None, :, None]).abs() / width).clamp_min(0.0)  # N,B,P hat weights
        mass = band.sum(2) + 1e-3
        ab = torch.einsum("nbp,ncp->nbc", band, flat[:, 1:3]) / mass[..., None]  # N,B,2
        chroma = torch.linalg.vector_norm(flat[:, 1:3], 2.0, dim=1)
        # L's spread is in the quantiles; chroma's mean is not
        spread = flat.std(2)
        moments = torch.cat([flat.mean(2), chroma.mean(1)[:, None], spread[:, 1:3]], dim=1)  # N,6
        return torch.cat([quant, ab.flatten(1), moments], dim=1)


colour_statistics = ColourStatistics()


class Encoder(nn.Module):
    """Thumbnail -> grade parameters: four stride-2 convs, mean+std pooling, statistics, an MLP."""

    def __init__(self, cfg: GlobalConfig):
        super().__init__()
        w = cfg.width
        chans = (3, w, 2 * w, 4 * w, 8 * w) if w else (3,)
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, 3, stride=2, padding=1) for cin, cout in zip(chans, chans[1:]))
        features = (2 * chans[-1] if w else 0) + cfg.stats_features
        self.statistics = ColourStatistics()
        # ActNorm (Kingma & Dhariwal 2018): the features' natural scales differ by 100x (pooled
        # conv features ~0.01, quantiles ~1); a shift and scale set from the first training
        # batch (then trained) give every feature unit spread, which made fitting one batch
        # ~1.5x faster than raw features (measured).
        self.shift = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialised", torch.zeros(()))
        self.head = nn.Sequential(nn.Linear(features, cfg.hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(cfg.hidden, cfg.hidden), nn.LeakyReLU(0.2))
        self.out = nn.Linear(cfg.hidden, cfg.grade_parameters)
        nn.init.zeros_(self.out.weight)  # start as the identity grade
        nn.init.zeros_(self.out.bias)

    def forward(self, thumb: torch.Tensor) -> torch.Tensor:
        features = self.statistics(thumb)
        if len(self.convs):
            x = thumb
            for conv in self.convs:
                x = F.leaky_relu(conv(x), 0.2)
            features = torch.cat([x.mean((2, 3)), x.std((2, 3)), features], dim=1)
        if self.training and not self.initialised and features.shape[0] > 1:
            with torch.no_grad():
                self.shift.copy_(-features.mean(0))
                self.log_scale.copy_(-torch.log(features.std(0) + 1e-3))
                self.initialised.fill_(1.0)
        features = (features + self.shift) * torch.exp(self.log_scale)
        return self.out(self.head(features))


def piecewise_linear(knots: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image tables (N,K) on a uniform grid over [-1, 1], looked up at x (N,H,W); the end
    segments extend linearly beyond the grid."""
    k = knots.shape[1]
    pos = ((x + 1.0) * 0.5 * (k - 1)).flatten(1)
    lo = pos.floor().clamp(0, k - 2)
    frac = pos - lo
    lo = lo.long()
    left, right = knots.gather(1, lo), knots.gather(1, lo + 1)
    return (left + frac * (right - left)).view_as(x)


class Grade(nn.Module):
    """Apply each frame's grade (N,P) of one form (curve_knots, toning_knots, harmonics) to every
    pixel of OklabP (N,3,H,W), in four stages:

    1. levels and gamma per channel on the encoded sRGB values (lifted or crushed blacks,
       dimmed whites, CDL slope/offset/power, exposure on the encoded values)
    2. a 3x3 matrix in linear light (white balance, CDL-like channel mixing)
    3. a monotone tone curve on Oklab lightness
    4. a and b offsets as functions of lightness (casts, split toning), then chroma scale
       and hue rotation as Fourier series in hue (saturation, hue warps)

    A module holding plain ints, so that TorchScript compiles it into exported models
    (``apply_grade`` is the same computation for callers holding a config)."""

    def __init__(self, curve_knots: int, toning_knots: int, harmonics: int):
        super().__init__()
        self.curve_knots: int = int(curve_knots)
        self.harmonics: int = int(harmonics)
        self.sizes: List[int] = group_sizes(curve_knots, toning_knots, harmonics)
        self.oklabp = OklabP()

    def forward(self, grade: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        return self.graded(grade, self.oklabp.decode(lab, clamp=False))

    def srgb(self, grade: torch.Tensor, srgb: torch.Tensor) -> torch.Tensor:
        """The render's per-pixel path: sRGB-encoded (N,3,H,W) -> graded sRGB-encoded in [0, 1],
        in the input's float dtype. The same maths as ``decode(forward(grade, encode(srgb)))``
        without the round trip through OklabP that stage 1 would undo (half the passes over
        the frame; the two agree to float rounding, well under a 16-bit code)."""
        return self.oklabp.decode(self.graded(grade, srgb.clamp(0.0, 1.0)))

    def graded(self, grade: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """Stages 1-4 on sRGB-encoded values (N,3,H,W) -> OklabP."""
        n = grade.shape[0]
        g = grade.to(rgb.dtype)
        groups = torch.split(g, self.sizes, dim=1)
        black, white, gamma, matrix, curve = groups[0], groups[1], groups[2], groups[3], groups[4]
        tone_a, tone_b, chroma, hue = groups[5], groups[6], groups[7], groups[8]
        per_channel = [n, 3, 1, 1]
        black, white = 0.1 * black.view(per_channel), 1.0 + 0.1 * white.view(per_channel)
        rgb = ((rgb - black) / (white - black).clamp_min(0.05)).clamp_min(0.0)
        power = torch.exp(0.3 * gamma).view(per_channel)
        rgb = (rgb + 1e-6) ** power - 1e-6 ** power
        linear = srgb_eotf(rgb)
        mix = torch.eye(3, device=g.device, dtype=g.dtype) + 0.1 * matrix.view(n, 3, 3)
        linear = torch.einsum("nij,njhw->nihw", mix, linear).clamp_min(0.0)
        out = self.oklabp.from_linear(linear)
        L, a, b = out[:, 0], out[:, 1], out[:, 2]
        # Monotone curve: positive segment slopes (1 when the parameters are 0) from a moved black point.
        steps = torch.exp(0.5 * curve[:, 1:]) * (2.0 / self.curve_knots)
        knots = torch.cat([-1.0 + 0.1 * curve[:, :1], -1.0 + 0.1 * curve[:, :1] + steps.cumsum(1)], dim=1)
        L = piecewise_linear(knots, L)
        a = a + 0.1 * piecewise_linear(tone_a, L)
        b = b + 0.1 * piecewise_linear(tone_b, L)
        if self.harmonics > 0:
            angle = torch.atan2(b, a)
            orders = torch.arange(1, self.harmonics + 1, device=g.device, dtype=angle.dtype).view(1, -1, 1, 1)
            basis = torch.cat([torch.ones_like(angle)[:, None], torch.cos(orders * angle[:, None]),
                               torch.sin(orders * angle[:, None])], dim=1)  # N,1+2H,H,W
            scale = torch.exp(0.3 * torch.einsum("nk,nkhw->nhw", chroma, basis))
            turn = 0.3 * torch.einsum("nk,nkhw->nhw", hue, basis)
            cos, sin = torch.cos(turn), torch.sin(turn)
            a, b = scale * (a * cos - b * sin), scale * (a * sin + b * cos)
        return torch.stack([L, a, b], dim=1)


@lru_cache(maxsize=16)
def _grade(curve_knots: int, toning_knots: int, harmonics: int) -> Grade:
    return Grade(curve_knots, toning_knots, harmonics)


def apply_grade(cfg, grade: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
    """Apply each frame's grade (N,P) to every pixel of OklabP (N,3,H,W); ``cfg`` gives the
    grade's form (curve_knots, toning_knots, harmonics). See ``Grade`` for the stages."""
    return _grade(cfg.curve_knots, cfg.toning_knots, cfg.harmonics)(grade, lab)


class BakeNetGlobal(nn.Module):
    """OklabP frame -> OklabP frame through one predicted grade per frame."""

    def __init__(self, config: GlobalConfig = PRESETS["global"]):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)

    def estimate(self, thumb: torch.Tensor) -> torch.Tensor:
        """OklabP thumbnails (N,3,T,T) -> grade parameters (N,P); all zeros is the identity."""
        return self.encoder(thumb)

    def apply(self, grade: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        """Apply each frame's grade (N,P) to every pixel of OklabP (N,3,H,W) (``apply_grade``)."""
        return apply_grade(self.config, grade, lab)

    def apply_srgb(self, grade: torch.Tensor, srgb: torch.Tensor) -> torch.Tensor:
        """The render's per-pixel path: sRGB-encoded (N,3,H,W) -> graded sRGB in [0, 1] (``Grade.srgb``)."""
        cfg = self.config
        return _grade(cfg.curve_knots, cfg.toning_knots, cfg.harmonics).srgb(grade, srgb)

    def forward(self, lab: torch.Tensor, thumb: torch.Tensor | None = None) -> torch.Tensor:
        """Whole frames in OklabP; ``thumb`` (from ``thumbnail``) if the caller has made it already."""
        if thumb is None:  # float32 is enough here: the thumbnail is an average of >= 4 pixels
            thumb = thumbnail(oklabp_to_srgb(lab), self.config.thumb)
        return self.apply(self.estimate(thumb), lab)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
