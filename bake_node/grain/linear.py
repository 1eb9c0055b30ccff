"""Working space <-> the linear light that grain is measured and added in.

The conversion always uses the pinned built-in OCIO config, whatever --ocio says: the working
space is defined by that config, the operator receives frames without the render's config, and
analysis and synthesis must agree on what "linear" means for a profile to transfer.
"""
from __future__ import annotations

import numpy as np

from bake_seq.ocio.config import DEFAULT_CONFIG, WORKING_SPACE, resolve_config
from bake_seq.ocio.convert import convert

LINEAR_SPACE = "Linear Rec.709 (sRGB)"


def _config():
    return resolve_config(DEFAULT_CONFIG)[0]


def to_linear(rgb: np.ndarray) -> np.ndarray:
    return convert(rgb, _config(), WORKING_SPACE, LINEAR_SPACE)


def to_working(rgb: np.ndarray) -> np.ndarray:
    return convert(rgb, _config(), LINEAR_SPACE, WORKING_SPACE)


def encoded_to_linear(values) -> np.ndarray:
    """Working-space code values (any shape) -> linear, one channel at a time."""
    values = np.asarray(values, np.float32)
    grey = np.repeat(values.reshape(-1, 1, 1), 3, axis=2)
    return to_linear(grey)[:, 0, 0].reshape(values.shape)
