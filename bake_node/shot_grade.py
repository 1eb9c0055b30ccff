"""One correction per shot: the global BakeNet's grade over many frames, kept as a file.

Temporal modes of the bake operator (``--temporal``):

    frame   each frame's grade from that frame alone: the estimate follows the frame's content
            (a pan, a person walking through, grain), so the colour can breathe
    shot    one grade for every frame: the mean of the frames' grade parameters
    window  per frame, the mean over the N frames centred on it (positions in the shot's frame
            list), for shots whose light really changes
    auto    shot for the global model; per-pixel presets (v5, cpu) can only work frame by frame

Why the mean of the *parameters*: the parameters are the encoder's raw outputs (zero = identity),
so their mean is one valid grade of the same form, computed from every frame with equal weight;
grain and content that move between frames average out (measured in the README's flicker table).

A grade record (JSON) keeps every frame's parameters exactly: float32 values written as decimals
that read back to the same float32. A render given the record (``--grade FILE.json``, what every
farm chunk gets) is bit-identical to the render that estimated it. The record is also the sidecar
of the LUT `bake-seq grade` writes (model, checkpoint hash, frames, colour spaces, LUT size).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import SettingsError

TEMPORAL_MODES = ("auto", "frame", "shot", "window")
RECORD_FORMAT = "bake-seq-grade"
RECORD_VERSION = 1
MAX_RECORD_BYTES = 64 << 20  # ~100,000 frames of 61 parameters; a bigger file is not a grade record
LUT_EXTENSIONS = (".cube", ".clf", ".spi3d")


def effective_mode(temporal: str, is_global: bool) -> str:
    if temporal == "auto":
        return "shot" if is_global else "frame"
    return temporal


def combine(per_frame: np.ndarray, mode: str, window: int) -> np.ndarray:
    """(F, P) per-frame grade parameters, in shot order -> (F, P) parameters to apply.
    Means in float64 in a fixed order (deterministic), returned as float32."""
    params = per_frame.astype(np.float64)
    if mode == "frame" or len(params) == 0:
        return per_frame.astype(np.float32)
    if mode == "shot":
        return np.repeat(params.mean(0, keepdims=True), len(params), axis=0).astype(np.float32)
    half = window // 2
    out = np.empty_like(params)
    for i in range(len(params)):  # a centred window, shortened at the shot's ends
        out[i] = params[max(0, i - half):i + half + 1].mean(0)
    return out.astype(np.float32)


@dataclass(frozen=True)
class ShotGrade:
    """Grade parameters per frame of a shot (rows in ``frames`` order), and where they came from."""

    temporal: str
    window: int
    frames: tuple[int, ...]
    parameters: np.ndarray  # (len(frames), P) float32
    grade_config: dict  # the global model's grade form (curve/toning knots, harmonics)
    about: dict = field(default_factory=dict)  # checkpoint, plate, colour spaces, LUT: for people

    def for_frame(self, number: int, path: str | None = None) -> np.ndarray:
        try:
            return self.parameters[self.frames.index(number)]
        except ValueError:
            raise SettingsError(path, f"the grade does not cover frame {number} "
                                f"(it was estimated for {len(self.frames)} frames)",
                                "estimate it over the frames you render: bake-seq grade SEQ --frames ...") from None

    @property
    def sha256(self) -> str:
        """The grade by content (what decides pixels), for resume fingerprints."""
        blob = json.dumps({"config": self.grade_config, "frames": list(self.frames)}, sort_keys=True).encode()
        return hashlib.sha256(blob + np.ascontiguousarray(self.parameters, "<f4").tobytes()).hexdigest()[:16]

    def record(self) -> dict:
        rows = self.parameters
        shared = len(rows) > 1 and bool((rows == rows[0]).all())  # shot mode: one row for all frames
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "temporal": self.temporal,
                "window": self.window, "frames": list(self.frames), "grade_config": self.grade_config,
                **self.about, "grade_sha256": self.sha256,
                "parameters": [[float(v) for v in row] for row in (rows[:1] if shared else rows)]}


def save_grade(path: str, grade: ShotGrade) -> None:
    """Write the record atomically (a temp file renamed into place)."""
    from bake_seq.sequences.errors import OutputError

    tmp = f"{path}.partial-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(grade.record(), fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OutputError(path, f"cannot write the grade record ({exc.strerror or exc})",
                          "check the folder exists and is writable") from None


def read_record_json(path: str, what: str, too_big: str, fix: str):
    """The JSON in a grade record or a LUT's sidecar: its size checked against MAX_RECORD_BYTES
    before anything is read, every read or parse failure one SettingsError line."""
    try:
        if os.path.getsize(path) > MAX_RECORD_BYTES:
            raise SettingsError(path, too_big, fix)
        with open(path, "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SettingsError(path, f"cannot read the {what} ({getattr(exc, 'strerror', None) or exc})", fix) from None


def load_grade(path: str, parameters: int, grade_config: dict) -> ShotGrade:
    """Read a grade record, checked against the model's grade form before anything uses it."""
    fix = "give a record written by `bake-seq grade` (the .json beside its LUT)"
    data = read_record_json(path, "grade record", f"is larger than {MAX_RECORD_BYTES >> 20} MB: not a grade record", fix)
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise SettingsError(path, "is not a bake-seq grade record", fix)
    if data.get("version") != RECORD_VERSION:
        raise SettingsError(path, f"is grade record version {data.get('version')!r}; this bake-seq reads "
                            f"{RECORD_VERSION}", "re-run bake-seq grade with this version")
    frames, rows = data.get("frames"), data.get("parameters")
    if not (isinstance(frames, list) and frames and all(type(n) is int for n in frames)
            and len(set(frames)) == len(frames)):
        raise SettingsError(path, "'frames' must be a list of distinct frame numbers", fix)
    if data.get("grade_config") != grade_config:
        raise SettingsError(path, f"was estimated for grade form {data.get('grade_config')}, the model "
                            f"uses {grade_config}", "estimate it again with this checkpoint")
    try:
        table = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        table = np.zeros((0,))
    if table.ndim != 2 or table.shape[1] != parameters or len(table) not in (1, len(frames)):
        raise SettingsError(path, f"'parameters' must be 1 or {len(frames)} rows of {parameters} numbers", fix)
    if not np.isfinite(table).all():
        raise SettingsError(path, "holds NaN or infinite parameters", fix)
    table = np.repeat(table, len(frames), axis=0) if len(table) == 1 else table
    about = {k: v for k, v in data.items() if k not in ("format", "version", "temporal", "window", "frames",
                                                        "grade_config", "parameters", "grade_sha256")}
    window = data.get("window") if type(data.get("window")) is int else 0
    return ShotGrade(str(data.get("temporal")), window, tuple(frames),
                     table.astype(np.float32), grade_config, about)


def is_lut(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in LUT_EXTENSIONS
