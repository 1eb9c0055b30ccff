"""Classical repair of damaged lightness: OpenCV's Telea inpainting (fast marching, radius 3 px).

Used by the colorize operator's ``fill=telea`` (the lightness inside the damage comes from this,
the colour from the network) and as the baseline the network's own fill is measured against
(`bake-seq eval --model colorize`). OpenCV (``opencv-python-headless``) is a dependency of
bake-seq; it is imported only when a fill is asked for, so the other operators never load it.

Inpainted as 16-bit codes: OpenCV 5.0's float32 path returns values far outside the input's range
(tests/test_colorize.py keeps that measured). Whole frame at once: the fill of a pixel depends on
the whole damaged region, so it must not be cut into tiles.
"""
from __future__ import annotations

import numpy as np

from .errors import SettingsError

RADIUS = 3  # px: OpenCV's suggested neighbourhood


def require_opencv():
    try:
        import cv2
    except ImportError:
        raise SettingsError(None, "fill=telea needs OpenCV, which is not installed",
                            "pip install opencv-python-headless, or use fill=model") from None
    return cv2


def telea_fill(values01: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] and (H, W) mask (>= 0.5 = damaged) -> (H, W) float32 in [0, 1]
    with the damaged pixels filled from their surroundings; intact pixels keep their 16-bit code."""
    cv2 = require_opencv()
    codes = np.round(np.clip(values01, 0.0, 1.0) * 65535).astype(np.uint16)
    damaged = (np.asarray(mask) >= 0.5).astype(np.uint8)
    if not damaged.any():
        return codes.astype(np.float32) / 65535
    return cv2.inpaint(codes, damaged, RADIUS, cv2.INPAINT_TELEA).astype(np.float32) / 65535
