"""`bake-seq eval --temporal`: shots whose light changes, on held-out photos (issue 31).

Each held-out photograph becomes a shot (train/flicker.py's diagonal pan with a 10 % push-in, a
bright patch of another part of the photo crossing the frame as a moving object, fresh Gaussian
grain every frame). Light that changes is a per-frame colour change in linear light (exposure,
white balance, contrast per channel) applied to the pan's views:

    wb_drift    white balance drifting from warm to cool (R +0.35 -> -0.35 stops, B the opposite)
    ramp        an exposure ramp (+0.4 -> -0.6 stops) with a slight contrast change
    flicker     random per-frame exposure (0.25 stops), white balance (0.1) and gamma (0.05)
    breathing   film breathing: exposure and density oscillating (period ~5.3 frames), on a
                slow exposure ramp
    cut         a hard cut half way to another photograph (steady light on each side)
    motion      steady light, real motion only (pan, push-in, moving object)

Keys (the artist corrected the *whole* plate: a fixed-seed grade of the shot, the family's
change included): the plate is grade(change_n(view_n)) + grain, the truth view_n; learned with
no key is not possible, so: one key on the first frame, keys on the first and last frames.
Methods: doing nothing, the blind model (--temporal shot), the learned file with today's blend
(--follow off) and following the plate (--follow auto). Scored on the frames that are not keys.

Deflicker (no key): the truth keeps the slow change (the ramp; for flicker, none) and the plate
adds the fast part, + grain; --op deflicker against the truth, beside doing nothing. On the
steady shots (cut, motion) the plate is the truth: what deflicker changes is the score.
"""
from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np
import torch

from bake_node import temporal
from bake_node.temporal import Change

from . import flicker, grades
from .ciede2000 import delta_e_srgb
from .data import Image, seeded
from .keyframes import KeyPair
from .learn_shot import LearnOptions, learn_shot, save_shot

FAMILIES = ("wb_drift", "ramp", "flicker", "breathing", "cut", "motion")
DRIFTING = ("wb_drift", "ramp")  # the targets for keys
FLICKERING = ("flicker", "breathing")  # the targets for deflicker
STEADY = ("cut", "motion")
KEYINGS = ("one_key", "both_ends")
FIRST = 1001
GRADE_FAMILY = "cdl"  # the fixed grade the keys undo (a colourist's correction of the plate)


def light(family: str, frames: int, seed: int) -> tuple[list[Change], list[Change]]:
    """(the change each frame shows, its slow part that deflicker keeps), per frame."""
    t = np.linspace(0.0, 1.0, frames)
    rng = np.random.default_rng(seed)
    ident = [temporal.IDENTITY] * frames
    if family == "wb_drift":
        shown = [Change.of([0.35 - 0.7 * x, 0.0, -0.35 + 0.7 * x], [1.0, 1.0, 1.0]) for x in t]
        return shown, shown
    if family == "ramp":
        shown = [Change.of([0.4 - x] * 3, [1.0 + 0.08 * x] * 3) for x in t]
        return shown, shown
    if family == "flicker":
        shown = []
        for _ in t:
            ev, wb, gamma = rng.normal(0, 0.25), rng.normal(0, 0.1, 2), rng.normal(0, 0.05)
            shown.append(Change.of([ev + wb[0], ev, ev + wb[1]], [1.0 + gamma] * 3))
        return shown, ident
    if family == "breathing":
        phase = rng.uniform(0, 2 * math.pi)
        slow = [Change.of([-0.3 * x] * 3, [1.0] * 3) for x in t]
        shown = []
        for k, x in enumerate(t):
            beat = math.sin(k * 1.18 + phase)  # a period of ~5.3 frames
            hue = 0.04 * math.sin(k * 1.18 + phase + 1.0)
            shown.append(Change.of([-0.3 * x + 0.15 * beat + hue, -0.3 * x + 0.15 * beat, -0.3 * x + 0.15 * beat - hue],
                                   [1.0 + 0.04 * beat] * 3))
        return shown, slow
    return ident, ident


def views(image: Image, other: Image, family: str, frames: int, size: tuple[int, int]) -> list[torch.Tensor]:
    """The clean shot: the pan, a moving patch, and for 'cut' the other photo after the cut."""
    shot = flicker.pan_views(image.pixels, frames, size)
    if family == "cut":
        half = frames // 2
        shot = shot[:half] + flicker.pan_views(other.pixels, frames, size)[half:]
    h, w = size
    ph, pw = h // 4, w // 5
    patch = flicker.pan_views(other.pixels, 1, (ph, pw))[0]
    out = []
    for n, view in enumerate(shot):  # a moving object: crosses the frame left to right, lower third
        view = view.clone()
        x = int((w - pw) * n / max(frames - 1, 1))
        y = int(h * 0.6)
        view[:, y:y + ph, x:x + pw] = patch
        out.append(view)
    return out


def _hwc(frame: torch.Tensor) -> np.ndarray:
    return frame.permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def _chw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)


def changed(change: Change, frame: torch.Tensor) -> torch.Tensor:
    return _chw(temporal.apply(change, _hwc(frame), "clip"))


def grain_of(shape, grain: float, seed: int, stream: int, frame: int) -> torch.Tensor:
    """A frame's grain (fixed seed per frame): the plate shows it, and so does the truth it is
    scored against (grain is part of the picture; no method here removes it)."""
    return torch.randn(shape, generator=seeded(seed, stream, 100 + frame)) * grain


def frame_des(truth: list[torch.Tensor], out: list[torch.Tensor]) -> np.ndarray:
    return np.array([float(delta_e_srgb(t.permute(1, 2, 0), o.clamp(0, 1).permute(1, 2, 0)).mean())
                     for t, o in zip(truth, out)])


def through(op, plate: list[torch.Tensor]) -> list[torch.Tensor]:
    return flicker.restore_shot(op, plate, first=FIRST)


def score(method: np.ndarray, nothing: np.ndarray, scored: np.ndarray) -> dict:
    """Mean dE, its ratio to doing nothing and the worst frame's ratio (None where doing nothing
    is already exact: a steady shot scored against its own plate)."""
    found = {"de": float(np.mean(method[scored])), "worst_frame_de": float(np.max(method[scored])),
             "ratio": None, "worst_frame_ratio": None}
    if np.min(nothing[scored]) > 1e-6:
        found["ratio"] = float(np.mean(method[scored]) / np.mean(nothing[scored]))
        found["worst_frame_ratio"] = float(np.max(method[scored] / nothing[scored]))
    return found


def run_temporal_eval(images: list[Image], families=FAMILIES, frames: int = 24, size=(192, 288), grain: float = 0.01,
                      seed: int = 2024, window: float = temporal.DEFLICKER_WINDOW, keyings=KEYINGS, options: LearnOptions | None = None,
                      blind_checkpoint: str | None = None, say=lambda text: None) -> dict:
    from bake_node.node import get_operator

    options = options or LearnOptions()
    blind = get_operator("bake")
    blind.prepare({"checkpoint": blind_checkpoint, "device": "cpu", "tile": 0, "temporal": "shot"})
    deflick = get_operator("deflicker")
    deflick.prepare({"deflicker_window": window, "device": "cpu", "tile": 0})
    keyed: dict = {f: {k: [] for k in keyings} for f in families}
    deflickered: dict = {f: [] for f in families}
    with tempfile.TemporaryDirectory(prefix="bake-temporal-") as tmp:
        for f, family in enumerate(families):
            for i, image in enumerate(images):
                other = images[(i + 1) % len(images)] if len(images) > 1 else image
                stream = f * 1000 + i
                clean = views(image, other, family, frames, size)
                shown, slow = light(family, frames, seed + stream)
                noise = [grain_of(v.shape, grain, seed, stream, n) for n, v in enumerate(clean)]
                # deflicker: the truth keeps the slow part of the light, the plate shows all of it
                truth = [(changed(s, v) + g).clamp(0, 1) for s, v, g in zip(slow, clean, noise)]
                plate = [(changed(c, v) + g).clamp(0, 1) for c, v, g in zip(shown, clean, noise)]
                nothing, out = frame_des(truth, plate), frame_des(truth, through(deflick, plate))
                moved = frame_des(plate, through(deflick, plate))  # what deflicker changed
                everything = np.ones(frames, bool)
                row = {"image": image.name, "do_nothing": float(nothing.mean()),
                       **score(out, nothing, everything), "max_change_de": float(moved.max())}
                deflickered[family].append(row)
                say(f"deflicker {family} {image.name}: do nothing {row['do_nothing']:.2f}, deflicker {row['de']:.2f}, "
                    f"largest change {row['max_change_de']:.2f}")
                # keys: a fixed grade over the changing light; the truth is the clean view
                graded = [grades.degrade(GRADE_FAMILY, changed(c, v)[None], seeded(seed, stream, 0))[0].float()
                          for c, v in zip(shown, clean)]
                plate = [(g + n).clamp(0, 1) for g, n in zip(graded, noise)]
                clean = [(v + n).clamp(0, 1) for v, n in zip(clean, noise)]  # the truth, its grain kept
                nothing = frame_des(clean, plate)
                blind_de = frame_des(clean, through(blind, plate)) if keyings else nothing
                for keying in keyings:
                    keys = [0] if keying == "one_key" else [0, frames - 1]
                    pairs = [KeyPair(FIRST + k, _hwc(plate[k]), _hwc(clean[k]), f"{image.name}-{family}-{k}", "", "sRGB")
                             for k in keys]
                    start = time.perf_counter()
                    model, record = learn_shot(pairs, options)
                    seconds = time.perf_counter() - start
                    path = os.path.join(tmp, f"{family}-{i}-{keying}.safetensors")
                    save_shot(path, model, record, overwrite=True)
                    scored = np.ones(frames, bool)
                    scored[keys] = False
                    row = {"image": image.name, "do_nothing": float(nothing[scored].mean()),
                           "blind": score(blind_de, nothing, scored), "learn_seconds": seconds}
                    for mode in ("off", "auto"):
                        op = get_operator("bake")
                        op.prepare({"checkpoint": path, "device": "cpu", "tile": 0, "follow": mode})
                        row["blend" if mode == "off" else "follow"] = score(frame_des(clean, through(op, plate)),
                                                                             nothing, scored)
                    keyed[family][keying].append(row)
                    say(f"{keying} {family} {image.name}: do nothing {row['do_nothing']:.2f}, blind "
                        f"{row['blind']['ratio']:.3f} x, blend {row['blend']['ratio']:.3f} x (worst frame "
                        f"{row['blend']['worst_frame_ratio']:.2f} x), follow {row['follow']['ratio']:.3f} x "
                        f"(worst frame {row['follow']['worst_frame_ratio']:.2f} x)")
    return {"families": list(families), "frames": frames, "size": list(size), "grain": grain, "seed": seed,
            "window": window, "grade_family": GRADE_FAMILY, "images": [im.name for im in images],
            "keys": {f: {k: summarise_keyed(rows) for k, rows in per.items()} for f, per in keyed.items()},
            "deflicker": {f: summarise_rows(rows) for f, rows in deflickered.items()}}


def summarise_rows(rows: list[dict]) -> dict:
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("do_nothing", "de", "max_change_de")}
    exact = any(r["ratio"] is None for r in rows)
    mean["ratio"] = None if exact else mean["de"] / mean["do_nothing"]
    mean["worst_frame_ratio"] = None if exact else float(max(r["worst_frame_ratio"] for r in rows))
    mean["max_change_de"] = float(max(r["max_change_de"] for r in rows))
    return {**mean, "per_image": rows}


def summarise_keyed(rows: list[dict]) -> dict:
    if not rows:
        return {}
    nothing = float(np.mean([r["do_nothing"] for r in rows]))
    out = {"do_nothing": nothing, "learn_seconds": float(np.mean([r["learn_seconds"] for r in rows]))}
    for method in ("blind", "blend", "follow"):
        de = float(np.mean([r[method]["de"] for r in rows]))
        out[method] = {"de": de, "ratio": de / nothing,
                       "worst_frame_ratio": float(max(r[method]["worst_frame_ratio"] for r in rows))}
    return {**out, "per_image": rows}


def temporal_table(report: dict) -> str:
    lines = ["Keys (learned from the plate's first frame, or first and last; scored on the other frames):", "",
             "| family | keys | do nothing dE | blind | blend of keys (today) | following the plate | "
             "worst frame: blend | worst frame: following |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for family in report["families"]:
        for keying, row in report["keys"][family].items():
            if not row:
                continue
            lines.append(f"| {family} | {keying.replace('_', ' ')} | {row['do_nothing']:.2f} | "
                         f"{row['blind']['ratio']:.3f} x | {row['blend']['ratio']:.3f} x | "
                         f"{row['follow']['ratio']:.3f} x | {row['blend']['worst_frame_ratio']:.2f} x | "
                         f"{row['follow']['worst_frame_ratio']:.2f} x |")
    lines += ["", f"Deflicker without keys (--deflicker-window {report['window']:g}; against the shot with its slow "
              "change kept; steady shots: the plate itself):", "",
              "| family | do nothing dE | deflicker dE | deflicker / do nothing | worst frame | largest change dE |",
              "|---|---:|---:|---:|---:|---:|"]
    for family in report["families"]:
        row = report["deflicker"][family]
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f} x"
        worst = "-" if row["worst_frame_ratio"] is None else f"{row['worst_frame_ratio']:.2f} x"
        lines.append(f"| {family} | {row['do_nothing']:.2f} | {row['de']:.2f} | {ratio} | {worst} | "
                     f"{row['max_change_de']:.2f} |")
    return "\n".join(lines) + "\n"
