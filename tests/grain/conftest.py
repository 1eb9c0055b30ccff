"""Synthetic plates for the grain tests: flat patches (not aligned to the analysis blocks, so
edges cut through blocks), a sine texture and a ramp, in linear light."""
import numpy as np

LEVELS = (0.01, 0.03, 0.08, 0.18, 0.35, 0.6, 0.85, 0.12)
TINT = np.array([1.0, 0.9, 0.8], np.float32)


def scene(h=480, w=480):
    """Linear RGB: a 5 x 5 grid of flat patches, a textured band and a ramp."""
    img = np.zeros((h, w, 3), np.float32)
    ph, pw = h // 5, w // 5
    for i in range(5):
        for j in range(5):
            img[i * ph:(i + 1) * ph, j * pw:(j + 1) * pw] = LEVELS[(i * 5 + j) % len(LEVELS)] * TINT
    y, x = np.mgrid[0:h, 0:w] / h
    img[:ph, :2 * pw] = (0.2 + 0.15 * np.sin(x * 90) * np.sin(y * 70))[:ph, :2 * pw, None]
    img[4 * ph:, 2 * pw:] = (0.05 + 0.5 * x)[4 * ph:, 2 * pw:, None]
    return img


def flat_patches(levels=(0.02, 0.18, 0.5, 0.9), size=128):
    """Side-by-side flat grey patches, and the column slice of each."""
    img = np.concatenate([np.full((size, size, 3), v, np.float32) for v in levels], axis=1)
    return img, [slice(k * size, (k + 1) * size) for k in range(len(levels))]
