r"""A shot's correction, learned from an artist's keyframes (`bake-seq learn`).

An artist corrects a few frames of a plate; every other frame gets the same correction. Per key
k (its frame number in ``config.frames``) the correction of a plate pixel x (OklabP) is

    c_k(x) = grade(g_k, x) + R_k(x)

    grade   the global BakeNet's parametric grade (levels, gamma, a 3x3 matrix in linear
            light, a lightness curve, toning, chroma and hue series; zero = identity)
    R_k     a residual 3D lattice over the plate's OklabP colour, trilinear (secondaries the
            grade cannot express: one hue range pushed, skin kept, skies to teal); zero = none

A frame before the first key or after the last takes that key's correction; a frame between two
keys blends their results by frame distance (light that changes through the shot). Optionally a
per-pixel BakeNet (``local_dim`` > 0, the `cpu` preset's layout) then corrects what depends on
local context rather than colour alone; it is shared by all keys and starts as the identity.

Everything but the local stage is a colour function: with ``local_dim`` = 0 the model needs no
tile halo and `bake-seq grade` writes it as a LUT.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from .bakenet import BakeNet, BakeNetConfig
from .bakenet_global import apply_grade, grade_parameter_count

MAX_KEYS = 64
MAX_LATTICE = 33
# The lattice's box in OklabP: L over its whole range, a and b beyond the sRGB gamut's extremes
# (|a|, |b| <= 0.63 in OklabP); colours outside it take the border's offset.
LATTICE_BOX = ((-1.0, 1.0), (-0.75, 0.75), (-0.75, 0.75))


@dataclass(frozen=True)
class ShotConfig:
    frames: tuple[int, ...] = (0,)  # the keys' frame numbers, ascending: one correction each
    lut: int = 0  # residual lattice points per axis (0 = the grade alone)
    local_dim: int = 0  # per-pixel BakeNet width (0 = no local stage)
    local_depth: int = 10
    curve_knots: int = 16  # the grade's form (as the global BakeNet's)
    toning_knots: int = 8
    harmonics: int = 2

    def __post_init__(self):
        frames = self.frames
        if not isinstance(frames, (list, tuple)) or not 1 <= len(frames) <= MAX_KEYS or not all(
                type(n) is int for n in frames) or list(frames) != sorted(set(frames)):
            raise ValueError(f"frames must be 1 to {MAX_KEYS} distinct ascending frame numbers, got {frames!r}")
        object.__setattr__(self, "frames", tuple(frames))
        limits = {"lut": (0, MAX_LATTICE), "local_dim": (0, 64), "local_depth": (10, 30), "curve_knots": (1, 256),
                  "toning_knots": (2, 256), "harmonics": (0, 16)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number in [{low}, {high}], got {value!r}")
        if self.lut == 1:
            raise ValueError("lut must be 0 (none) or at least 2 points per axis")
        if self.local_depth % 10:
            raise ValueError(f"local_depth must be a multiple of 10, got {self.local_depth}")

    @property
    def keys(self) -> int:
        return len(self.frames)

    @property
    def grade_parameters(self) -> int:
        return grade_parameter_count(self)

    @property
    def local(self) -> BakeNetConfig | None:
        return BakeNetConfig(dim=self.local_dim, depth=self.local_depth) if self.local_dim else None

    @property
    def receptive_radius(self) -> int:
        return self.local.receptive_radius if self.local else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "frames": list(self.frames)}


def key_weights(frames: tuple[int, ...], frame: int) -> list[tuple[int, float]]:
    """(key index, weight) pairs for a frame: the key itself, the nearest end key outside the
    keys' span, else the two keys around it weighted by frame distance."""
    if frame <= frames[0]:
        return [(0, 1.0)]
    if frame >= frames[-1]:
        return [(len(frames) - 1, 1.0)]
    after = next(i for i, n in enumerate(frames) if n >= frame)
    if frames[after] == frame:
        return [(after, 1.0)]
    t = (frame - frames[after - 1]) / (frames[after] - frames[after - 1])
    return [(after - 1, 1.0 - t), (after, t)]


BOX = [float(v) for bounds in LATTICE_BOX for v in bounds]  # low, high per axis (TorchScript takes lists)


def lattice_lookup(lattice: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of a (3, S, S, S) lattice over LATTICE_BOX at OklabP (N,3,H,W) -> (N,3,H,W)."""
    return sample_lattice(lattice, lab, BOX)


def _grid(lab: torch.Tensor, box: List[float]) -> List[torch.Tensor]:
    """Each OklabP channel (N,H,W) placed on the lattice's [-1, 1] axis (grid_sample's, corners aligned)."""
    return [(lab[:, c] - box[2 * c]) * (2.0 / (box[2 * c + 1] - box[2 * c])) - 1.0 for c in range(3)]


def sample_lattice(lattice: torch.Tensor, lab: torch.Tensor, box: List[float]) -> torch.Tensor:
    """``lattice_lookup`` over the box (low, high of L, a, b), as TorchScript compiles it."""
    n, h, w = lab.shape[0], lab.shape[2], lab.shape[3]
    coords = _grid(lab, box)
    # grid_sample's last axis is (x, y, z) = (W, H, D) of the lattice = (b, a, L)
    grid = torch.stack([coords[2], coords[1], coords[0]], dim=-1).view(1, 1, n * h, w, 3)
    out = F.grid_sample(lattice[None].to(lab.dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0, :, 0].view(3, n, h, w).transpose(0, 1)


def gather_lattice(lattice: torch.Tensor, lab: torch.Tensor, box: List[float]) -> torch.Tensor:
    """``sample_lattice`` written with gathers (ONNX opset 18 has no 5-D GridSample): the same
    trilinear weights of the 8 surrounding points, border clamped; equal to float rounding."""
    size = lattice.shape[-1]
    table = lattice.to(lab.dtype).reshape(3, -1)
    index: List[torch.Tensor] = []
    frac: List[torch.Tensor] = []
    for coord in _grid(lab, box):
        pos = (((coord + 1.0) / 2.0) * (size - 1)).clamp(0.0, size - 1.0)  # grid_sample's unnormalise and clip
        low = pos.floor().clamp(max=size - 2.0)
        index.append(low.long())
        frac.append(pos - low)
    base = (index[0] * size + index[1]) * size + index[2]  # N,H,W
    out = torch.zeros_like(lab).transpose(0, 1)  # 3,N,H,W
    for corner in range(8):
        dl, da, db = corner >> 2, (corner >> 1) & 1, corner & 1
        weight = (frac[0] if dl else 1.0 - frac[0]) * (frac[1] if da else 1.0 - frac[1]) \
            * (frac[2] if db else 1.0 - frac[2])
        at = (base + ((dl * size + da) * size + db)).flatten()
        out = out + weight * table.index_select(1, at).view_as(out)
    return out.transpose(0, 1)


class ShotCorrection(nn.Module):
    """OklabP frame -> OklabP frame: the shot's learned correction at a frame number."""

    def __init__(self, config: ShotConfig = ShotConfig()):
        super().__init__()
        self.config = config
        self.grades = nn.Parameter(torch.zeros(config.keys, config.grade_parameters))
        size = config.lut
        self.lattice = nn.Parameter(torch.zeros(config.keys, 3, size, size, size)) if size else None
        self.local = BakeNet(config.local) if config.local else None

    def colour(self, key: int, lab: torch.Tensor) -> torch.Tensor:
        """Key ``key``'s colour correction (grade, then the residual lattice) of OklabP pixels."""
        out = apply_grade(self.config, self.grades[key:key + 1].expand(lab.shape[0], -1), lab)
        if self.lattice is not None:
            out = out + lattice_lookup(self.lattice[key], lab)
        return out

    def forward(self, lab: torch.Tensor, frame: int) -> torch.Tensor:
        out = sum(weight * self.colour(key, lab) for key, weight in key_weights(self.config.frames, frame))
        return self.local(out) if self.local is not None else out
