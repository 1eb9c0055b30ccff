"""The grain profile: what `grain analyze` writes and the grain operator reads.

A profile is small, human-readable YAML. Per channel it holds the noise standard deviation as a
function of intensity (a piecewise-linear scaling function, as in AV1's film grain model) and a
grain size; between channels, the correlation of their grain. Intensities and deviations are in
linear light (``LINEAR_SPACE``). A measured profile also carries its noise power spectrum, for
reading only: synthesis shapes grain from ``size``.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import yaml

from ..errors import SettingsError
from .linear import LINEAR_SPACE

FORMAT = "bake-seq-grain/1"
CHANNELS = ("red", "green", "blue")
PAIRS = (("red", "green"), ("green", "blue"), ("red", "blue"))
MAX_SIZE = 16.0
MAX_PROFILE_BYTES = 1 << 20  # a profile is a few hundred bytes; anything this big is not one

HEADER = f"""\
# bake-seq grain profile ({FORMAT}). Edit freely; `bake-seq render --op grain --grain-profile`
# reads it. All numbers are in linear light ({LINEAR_SPACE}).
#   channels.<c>.sigma   [intensity, noise std] points: std is interpolated linearly between
#                        points and held flat beyond the first and last
#   channels.<c>.size    grain size in pixels: the std of the Gaussian that shapes white noise
#                        (0 = independent pixels; ~0.5 fine, ~1 coarse at 2K)
#   correlation          how alike the grain of two channels is (-1..1)
#   spectrum             measured share of the grain's power per frequency band (the last band
#                        also holds the diagonals beyond 0.5); for reading only: synthesis uses size
"""


@dataclass
class ChannelGrain:
    sigma: list[tuple[float, float]]  # (linear intensity, noise std), ascending intensity
    size: float

    def sigma_at(self, intensity: np.ndarray) -> np.ndarray:
        points = np.asarray(self.sigma, np.float64)
        return np.interp(intensity, points[:, 0], points[:, 1]).astype(np.float32)


@dataclass
class GrainProfile:
    channels: dict[str, ChannelGrain]
    correlation: dict[str, float]  # "red_green", "green_blue", "red_blue"
    spectrum: dict | None = None
    source: dict = field(default_factory=dict)

    def ordered(self) -> list[ChannelGrain]:
        return [self.channels[c] for c in CHANNELS]

    def correlation_matrix(self) -> np.ndarray:
        matrix = np.eye(3)
        for a, b in PAIRS:
            i, j = CHANNELS.index(a), CHANNELS.index(b)
            matrix[i, j] = matrix[j, i] = self.correlation.get(f"{a}_{b}", 0.0)
        return matrix

    def to_dict(self) -> dict:
        data = {
            "format": FORMAT,
            "linear_space": LINEAR_SPACE,
            "source": self.source,
            "channels": {c: {"size": _round(g.size),
                             "sigma": [[_round(i), _round(s)] for i, s in g.sigma]}
                         for c, g in self.channels.items()},
            "correlation": {k: _round(v) for k, v in self.correlation.items()},
        }
        if self.spectrum:
            data["spectrum"] = self.spectrum
        return data

    def dumps(self) -> str:
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)
        return HEADER + body

    def sha256(self) -> str:
        return hashlib.sha256(self.dumps().encode()).hexdigest()


def _round(value: float, digits: int = 5) -> float:
    """Significant digits, so the YAML stays readable."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def save_profile(profile: GrainProfile, path: str, **target) -> None:
    from bake_seq.sequences.safe_write import write_file

    write_file(path, profile.dumps(), what="grain profile", **target)


def load_profile(path: str) -> GrainProfile:
    from bake_seq.sequences.datafile import DataFileError, read_yaml

    fix = "write one with `bake-seq grain analyze` or fix the file (see docs/grain.md)"
    try:
        data = read_yaml(path, MAX_PROFILE_BYTES)
    except DataFileError as exc:
        raise SettingsError(path, f"the grain profile {exc}", f"check --grain-profile; {fix}") from None
    try:
        return profile_from_dict(data)
    except KeyError as exc:
        raise SettingsError(path, f"not a grain profile: no {exc} entry", fix) from None
    except (TypeError, ValueError) as exc:
        raise SettingsError(path, f"not a grain profile: {exc}", fix) from None


def profile_from_dict(data: dict) -> GrainProfile:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}")
    channels = {}
    for name in CHANNELS:
        entry = data["channels"][name]
        points = sorted((float(i), float(s)) for i, s in entry["sigma"])
        if not points or any(s < 0 or not math.isfinite(s) or not math.isfinite(i) for i, s in points):
            raise ValueError(f"channels.{name}.sigma needs [intensity, std >= 0] points")
        size = float(entry["size"])
        if not 0 <= size <= MAX_SIZE:
            raise ValueError(f"channels.{name}.size must be 0..{MAX_SIZE:g} pixels")
        channels[name] = ChannelGrain(points, size)
    correlation = {f"{a}_{b}": float((data.get("correlation") or {}).get(f"{a}_{b}", 0.0)) for a, b in PAIRS}
    if any(not -1 <= v <= 1 for v in correlation.values()):
        raise ValueError("correlation values must be -1..1")
    return GrainProfile(channels, correlation, data.get("spectrum"), data.get("source") or {})


# ---------------------------------------------------------------------------------------------
# Presets: approximations of colour-negative film scanned at 2K (Super 35, 12.2 um per pixel).
#
# A film's diffuse RMS granularity is 1000 x the density std seen through a 48 um aperture.
# Averaging Gaussian-shaped grain of size s over an aperture of std a keeps s^2/(s^2+a^2) of its
# variance (a 48 um circle ~ a Gaussian of std 12 um = 0.98 px), so the per-pixel density std is
# rms/1000 * sqrt((s^2+a^2)/s^2). A negative of contrast gamma turns a density std into a relative
# exposure std of ln(10) * std / gamma: grain in linear light is proportional to intensity, and
# levels off near black where base and fog grain remain (the toe). Granularity rises from red to
# blue layers (the shape of published diffuse-RMS-granularity curves); blue also keeps the most
# grain in the shadows. Ratings, sizes, ratios and correlations are stated assumptions, not
# measurements of any one stock: see docs/grain.md.
APERTURE_PX = 0.98
NEGATIVE_GAMMA = 0.6
PRESET_INTENSITIES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.18, 0.4, 1.0)
CHANNEL_RATIO = {"red": 0.85, "green": 1.0, "blue": 1.35}
CHANNEL_TOE = {"red": 0.02, "green": 0.02, "blue": 0.035}
PRESET_CORRELATION = 0.2

PRESETS = {  # name: (RMS granularity, size in px, what it is meant to resemble)
    "fine": (4.0, 0.5, "ISO 50-100 daylight negative (50D-ish)"),
    "medium": (5.0, 0.7, "ISO 200-400 negative (250D-ish)"),
    "coarse": (6.0, 1.0, "ISO 500 tungsten negative, rated or pushed (500T-ish)"),
}


def relative_grain(rms: float, size: float) -> float:
    """Relative std of linear intensity per pixel for a stock of this rating and grain size."""
    density_std = rms / 1000 * math.sqrt((size**2 + APERTURE_PX**2) / size**2)
    return math.log(10) * density_std / NEGATIVE_GAMMA


def preset_profile(name: str) -> GrainProfile:
    if name not in PRESETS:
        raise SettingsError(None, f"unknown grain preset {name!r}", f"use one of {', '.join(PRESETS)}")
    rms, size, resembles = PRESETS[name]
    rel = relative_grain(rms, size)
    channels = {c: ChannelGrain([(i, rel * CHANNEL_RATIO[c] * math.hypot(i, CHANNEL_TOE[c]))
                                 for i in PRESET_INTENSITIES], size) for c in CHANNELS}
    correlation = {f"{a}_{b}": PRESET_CORRELATION for a, b in PAIRS}
    return GrainProfile(channels, correlation, None,
                        {"preset": name, "resembles": resembles, "rms_granularity": rms,
                         "scan": "2K Super 35 (12.2 um per pixel)"})
