"""sRGB <-> OklabP, the model's processing space (spec/bakenet.md section 1).

OklabP is Björn Ottosson's Oklab rescaled to roughly [-1, 1]: Lp = 2L - 1, ap = 2a, bp = 2b.
Tensors are NCHW (or anything with the channel axis at ``dim``); maths in the input dtype
(the render path converts in float64, so sRGB -> OklabP -> sRGB returns every 16-bit code).

The reference inverse had a sign typo in M1^-1 (+0.0041960863 in the last row); ours is the
true inverse, so the round trip is exact to the working precision (tests/bake_node).
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch
from torch import nn

M1 = (  # linear sRGB -> LMS
    (0.4122214708, 0.5363325363, 0.0514459929),
    (0.2119034982, 0.6806995451, 0.1073969566),
    (0.0883024619, 0.2817188376, 0.6299787005),
)
M2 = (  # LMS' -> Lab
    (0.2104542553, 0.7936177850, -0.0040720468),
    (1.9779984951, -2.4285922050, 0.4505937099),
    (0.0259040371, 0.7827717662, -0.8086757660),
)
M2_INV_PUBLISHED = (  # Lab -> LMS', as published (10 digits: M2_INV_PUBLISHED @ M2 = I only to 6e-8)
    (1.0, 0.3963377774, 0.2158037573),
    (1.0, -0.1055613458, -0.0638541728),
    (1.0, -0.0894841775, -1.2914855480),
)
M1_INV_PUBLISHED = (  # LMS -> linear sRGB, as published
    (4.0767416621, -3.3077115913, 0.2309699292),
    (-1.2684380046, 2.6097574011, -0.3413193965),
    (-0.0041960863, -0.7034186147, 1.7076147010),
)

# The inverses we use are the forward matrices inverted in float64: they agree with the published
# ones to ~1e-7 and make the round trip exact to float64 precision instead of ~2e-6.
M1_INV = tuple(map(tuple, np.linalg.inv(np.array(M1, dtype=np.float64)).tolist()))
M2_INV = tuple(map(tuple, np.linalg.inv(np.array(M2, dtype=np.float64)).tolist()))

# Macbeth ColorChecker 24 patches in OklabP, patch order 1..24 (stem RBFs and loss projection).
MACBETH_OKLABP = (
    (-0.0597942, 0.0715682, 0.0689456), (0.4183730, 0.0844511, 0.0862138),
    (0.1485260, -0.0260145, -0.1197130), (0.0060500, -0.0867117, 0.1012940),
    (0.2456150, 0.0471529, -0.1390040), (0.4774960, -0.1772700, 0.0070673),
    (0.3507240, 0.1477280, 0.2429970), (-0.0020556, 0.0205867, -0.2380310),
    (0.1933670, 0.2535120, 0.0753901), (-0.1681210, 0.1244790, -0.1221760),
    (0.4962120, -0.1630230, 0.2584340), (0.5099230, 0.0561745, 0.2807750),
    (-0.1797940, 0.0282334, -0.2856320), (0.1974370, -0.2180970, 0.1560710),
    (0.0268793, 0.2907220, 0.1168620), (0.6649640, -0.0396422, 0.3292740),
    (0.1965930, 0.2874640, -0.0811799), (0.1415920, -0.1571350, -0.1312720),
    (0.9277470, -0.0007701, 0.0023781), (0.6655870, -0.0000168, -0.0001434),
    (0.4115140, -0.0000142, -0.0001216), (0.1583850, -0.0008645, 0.0027884),
    (-0.1009340, -0.0000091, -0.0000774), (-0.3499260, -0.0000066, -0.0000560),
)

# Keeps the cube root's gradient finite at 0 during training; harmless at inference.
CBRT_EPS = 1e-8


def _flat(matrix) -> list[float]:
    return [float(v) for row in matrix for v in row]


def exact_tensor(values: List[float], like: torch.Tensor) -> torch.Tensor:
    """A 1-D tensor in ``like``'s dtype and device, each entry rounded once from the Python
    float, as torch.tensor does in Python (TorchScript's torch.tensor(List[float]) rounds
    through float32: a float64 colour matrix would be ~2e-8 off)."""
    if torch.jit.is_scripting():
        return torch.stack([torch.full([], v, dtype=like.dtype, device=like.device) for v in values])
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _matmul(m: List[float], x: torch.Tensor, dim: int) -> torch.Tensor:
    """Row-major 3x3 ``m`` over axis ``dim`` of ``x``."""
    mat = exact_tensor(m, x).view(3, 3)
    last = x.dim() - 1  # no negative axes: ONNX's exporter writes them into Transpose as they are
    dim = dim % x.dim()
    return torch.tensordot(x.movedim(dim, last), mat, dims=([last], [1])).movedim(last, dim)


def srgb_eotf(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4)


def srgb_oetf(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


class OklabP(nn.Module):
    """The two conversions as a module that TorchScript compiles (it sees no module-level
    constants: the matrices are attributes), so exported models convert exactly as the render
    does. ``srgb_to_oklabp`` and ``oklabp_to_srgb`` below are this module's methods."""

    def __init__(self):
        super().__init__()
        self.m1, self.m2 = _flat(M1), _flat(M2)
        self.m1_inv, self.m2_inv = _flat(M1_INV), _flat(M2_INV)
        self.cbrt_eps = float(CBRT_EPS)

    def encode(self, rgb: torch.Tensor, dim: int = 1, clamp: bool = True) -> torch.Tensor:
        """sRGB-encoded values (clamped to [0, 1] unless ``clamp`` is False) -> OklabP."""
        return self.from_linear(srgb_eotf(rgb.clamp(0.0, 1.0) if clamp else rgb), dim)

    def from_linear(self, lin: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Linear-light Rec.709 -> OklabP (``encode`` without the sRGB curve)."""
        lms = _matmul(self.m1, lin, dim)
        lms = torch.sign(lms) * (lms.abs() + self.cbrt_eps) ** (1.0 / 3.0)
        lab = _matmul(self.m2, lms, dim)
        scale = torch.tensor([2.0, 2.0, 2.0], dtype=lab.dtype, device=lab.device)
        shift = torch.tensor([-1.0, 0.0, 0.0], dtype=lab.dtype, device=lab.device)
        shape = [1] * lab.dim()
        shape[dim] = 3
        return lab * scale.view(shape) + shift.view(shape)

    def decode(self, labp: torch.Tensor, dim: int = 1, clamp: bool = True) -> torch.Tensor:
        """OklabP -> sRGB-encoded values clamped to [0, 1] (unless ``clamp`` is False); exact
        inverse of ``encode``."""
        out = srgb_oetf(self.to_linear(labp, dim))
        return out.clamp(0.0, 1.0) if clamp else out

    def to_linear(self, labp: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """OklabP -> linear-light Rec.709 (``decode`` without the sRGB curve)."""
        shape = [1] * labp.dim()
        shape[dim] = 3
        shift = torch.tensor([1.0, 0.0, 0.0], dtype=labp.dtype, device=labp.device).view(shape)
        lab = (labp + shift) * 0.5
        lms = _matmul(self.m2_inv, lab, dim)
        lms = torch.sign(lms) * (lms.abs() ** 3 - self.cbrt_eps).clamp_min(0.0)  # undo the forward's epsilon too
        return _matmul(self.m1_inv, lms, dim)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.encode(rgb)


_OKLABP = OklabP()
srgb_to_oklabp = _OKLABP.encode
oklabp_to_srgb = _OKLABP.decode


def restore_srgb(model, srgb: torch.Tensor) -> torch.Tensor:
    """sRGB (N,3,H,W) -> OklabP -> ``model`` -> sRGB, the render path's maths: colour conversions
    in float64 (exact round trip), the model in float32; returns float32 in [0, 1]."""
    lab = model(srgb_to_oklabp(srgb.double()).float())
    return oklabp_to_srgb(lab.double()).float()
