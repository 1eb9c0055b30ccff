"""Synthetic damage for self-supervised colorize training: masks of varied shapes and the
values damaged pixels take.

Shapes: strokes (scratches drawn with a brush), blobs (ellipses: stains, tears), rectangles
(missing patches, tape), dust (speckles) and vertical film scratches (thin lines running most of
the frame's height). Each drawn shape gets one fill: white, black, noise, a flat grey, or a
stain that pulls the true lightness part-way to a grey. Everything comes from a numpy Generator,
so a seed gives the same damage on every machine.
"""
from __future__ import annotations

import cv2
import numpy as np

SHAPES = ("strokes", "blobs", "rectangles", "dust", "film_scratches")
FILLS = ("white", "black", "noise", "flat", "stain")
COVERAGE = (0.02, 0.30)  # fraction of the frame a mask covers


def _draw(kind: str, canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Draw one shape of ``kind`` into the uint8 ``canvas`` (value 1)."""
    h, w = canvas.shape
    side = min(h, w)
    if kind == "strokes":
        points = [(int(rng.integers(w)), int(rng.integers(h)))]
        for _ in range(int(rng.integers(1, 5))):
            x, y = points[-1]
            step = rng.uniform(0.1, 0.4) * side
            angle = rng.uniform(0, 2 * np.pi)
            points.append((int(x + step * np.cos(angle)), int(y + step * np.sin(angle))))
        thickness = max(1, int(rng.uniform(0.005, 0.04) * side))
        cv2.polylines(canvas, [np.array(points, np.int32)], False, 1, thickness)
    elif kind == "blobs":
        axes = (max(1, int(rng.uniform(0.02, 0.15) * side)), max(1, int(rng.uniform(0.02, 0.15) * side)))
        cv2.ellipse(canvas, (int(rng.integers(w)), int(rng.integers(h))), axes, float(rng.uniform(0, 180)),
                    0, 360, 1, -1)
    elif kind == "rectangles":
        rw, rh = (max(1, int(rng.uniform(0.04, 0.25) * s)) for s in (w, h))
        x, y = int(rng.integers(max(1, w - rw))), int(rng.integers(max(1, h - rh)))
        canvas[y:y + rh, x:x + rw] = 1
    elif kind == "dust":
        for _ in range(int(rng.integers(5, 40))):
            radius = max(1, int(rng.uniform(0.002, 0.012) * side))
            cv2.circle(canvas, (int(rng.integers(w)), int(rng.integers(h))), radius, 1, -1)
    elif kind == "film_scratches":
        x = int(rng.integers(w))
        top = int(rng.uniform(0.0, 0.3) * h)
        bottom = h - int(rng.uniform(0.0, 0.3) * h)
        wobble = rng.uniform(-0.02, 0.02) * w
        thickness = max(1, int(rng.uniform(0.002, 0.01) * side))
        cv2.line(canvas, (x, top), (int(x + wobble), bottom), 1, thickness)
    else:
        raise ValueError(f"unknown damage shape {kind!r}")


def damage_labels(height: int, width: int, rng: np.random.Generator,
                  coverage: tuple[float, float] = COVERAGE, shapes: tuple[str, ...] = SHAPES) -> np.ndarray:
    """int32 H x W: 0 intact, k > 0 the k-th drawn shape. The damaged fraction is drawn in
    ``coverage`` and always lands inside it (a shape that would overshoot is dropped)."""
    low, high = coverage
    target = rng.uniform(low, high)
    kinds = rng.choice(shapes, size=int(rng.integers(1, min(3, len(shapes)) + 1)), replace=False)
    labels = np.zeros((height, width), np.int32)
    total = height * width
    covered = 0
    for attempt in range(400):
        canvas = np.zeros((height, width), np.uint8)
        # Small dust fills the last gap when larger shapes keep overshooting.
        kind = str(kinds[attempt % len(kinds)]) if attempt < 200 else "dust"
        _draw(kind, canvas, rng)
        new = (canvas > 0) & (labels == 0)
        if (covered + int(new.sum())) / total > high:
            continue
        labels[new] = labels.max() + 1
        covered += int(new.sum())
        if covered / total >= target:
            break
    if covered / total < low:  # tiny frames: top up pixel by pixel (still deterministic)
        free = np.flatnonzero(labels.ravel() == 0)
        need = int(np.ceil(low * total)) - covered
        labels.ravel()[rng.choice(free, size=need, replace=False)] = labels.max() + 1
    return labels


def damage_mask(height: int, width: int, rng: np.random.Generator, coverage=COVERAGE, shapes=SHAPES) -> np.ndarray:
    """float32 H x W, 1 = damaged."""
    return (damage_labels(height, width, rng, coverage, shapes) > 0).astype(np.float32)


def apply_damage(lightness: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Oklab lightness in [0, 1] (H x W) -> the damaged copy: each shape gets one fill."""
    out = lightness.copy()
    for k in range(1, int(labels.max()) + 1):
        where = labels == k
        n = int(where.sum())
        if n == 0:
            continue
        fill = FILLS[int(rng.integers(len(FILLS)))]
        if fill == "white":
            out[where] = rng.uniform(0.85, 1.0)
        elif fill == "black":
            out[where] = rng.uniform(0.0, 0.12)
        elif fill == "noise":
            out[where] = rng.uniform(0.0, 1.0, n)
        elif fill == "flat":
            out[where] = rng.uniform(0.2, 0.8)
        else:  # stain: the picture shows through
            strength = rng.uniform(0.5, 0.9)
            out[where] = (1 - strength) * out[where] + strength * rng.uniform(0.1, 0.9)
    return out.astype(np.float32)
