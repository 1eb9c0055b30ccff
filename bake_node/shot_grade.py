"""One correction per shot: the global BakeNet's grade over many frames, kept as a file.

Temporal modes of the bake operator (``--temporal``):

    frame   each frame's grade from that frame alone: the estimate follows the frame's content
            (a pan, a person walking through, grain), so the colour can breathe
    shot    one grade for every frame: the mean of the frames' grade parameters
    window  per frame, the mean over the N frames around it (positions in the shot's frame list:
            N//2 before and (N-1)//2 after, so an even N has one more before; fewer at the
            shot's ends), for shots whose light really changes
    auto    shot for the global model; per-pixel presets (v5, cpu) can only work frame by frame

Why the mean of the *parameters*: the parameters are the encoder's raw outputs (zero = identity),
so their mean is one valid grade of the same form, computed from every frame with equal weight;
grain and content that move between frames average out (measured in the README's flicker table).

A grade record (JSON) keeps every frame's parameters exactly: float32 values written as decimals
that read back to the same float32 (one row when every frame shares it; in memory too, so a
record's memory is proportional to its file). A render given the record (``--grade FILE.json``,
what every farm chunk gets) is bit-identical to the render that estimated it. The record is also the sidecar
of the LUT `bake-seq grade` writes (model, checkpoint hash, frames, colour spaces, LUT size).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import SettingsError, shown

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
    before, after = window // 2, (window - 1) // 2  # N frames: centred, one more before when N is even
    out = np.empty_like(params)
    for i in range(len(params)):  # shortened at the shot's ends
        out[i] = params[max(0, i - before):i + after + 1].mean(0)
    return out.astype(np.float32)


@dataclass(frozen=True)
class ShotGrade:
    """Grade parameters per frame of a shot (rows in ``frames`` order), and where they came from."""

    temporal: str
    window: int
    frames: tuple[int, ...]
    parameters: np.ndarray  # (len(frames), P) float32, or (1, P): one row every frame shares
    grade_config: dict  # the global model's grade form (curve/toning knots, harmonics)
    about: dict = field(default_factory=dict)  # checkpoint, plate, colour spaces, LUT: for people

    @cached_property
    def _sorted_frames(self) -> tuple[np.ndarray, np.ndarray]:
        numbers = np.array(self.frames, np.int64)
        order = np.argsort(numbers, kind="stable")
        return numbers[order], order

    def for_frame(self, number: int, path: str | None = None) -> np.ndarray:
        numbers, order = self._sorted_frames  # a binary search: a render of F frames is O(F log F)
        at = int(np.searchsorted(numbers, number)) if -2**63 <= number < 2**63 else len(numbers)
        if at == len(numbers) or numbers[at] != number:
            raise SettingsError(path, f"the grade does not cover frame {number} "
                                f"(it was estimated for {len(self.frames)} frames)",
                                "estimate it over the frames you render: bake-seq grade SEQ --frames ...")
        return self.parameters[order[at] if len(self.parameters) > 1 else 0]

    @property
    def sha256(self) -> str:
        """The grade by content (what decides pixels), for resume fingerprints: a shared row is
        hashed once per frame, so a record read back hashes like the estimate that wrote it."""
        blob = json.dumps({"config": self.grade_config, "frames": list(self.frames)}, sort_keys=True).encode()
        digest = hashlib.sha256(blob)
        rows = np.ascontiguousarray(self.parameters, "<f4").tobytes()
        if len(self.parameters) == 1:
            for start in range(0, len(self.frames), 4096):
                digest.update(rows * min(4096, len(self.frames) - start))
        else:
            digest.update(rows)
        return digest.hexdigest()[:16]

    def record(self) -> dict:
        rows = self.parameters
        shared = bool((rows == rows[0]).all())  # shot mode: one row for all frames
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "temporal": self.temporal,
                "window": self.window, "frames": list(self.frames), "grade_config": self.grade_config,
                **self.about, "grade_sha256": self.sha256,
                "parameters": [[float(v) for v in row] for row in (rows[:1] if shared else rows)]}


def grade_json(grade: ShotGrade) -> str:
    return json.dumps(grade.record(), indent=1) + "\n"


def save_grade(path: str, grade: ShotGrade) -> None:
    """Write the record atomically (a temp file renamed into place; for records named by their
    hash, whose content the name fixes)."""
    from bake_seq.sequences.safe_write import write_file

    write_file(path, grade_json(grade), overwrite=True, what="grade record",
               fix="check the folder exists and is writable")


def read_record_json(path: str, what: str, fix: str):
    """The JSON in a grade record or a LUT's sidecar through the one bounded reader (a regular
    file of at most MAX_RECORD_BYTES, nesting, number length, repeated keys): every refusal one
    SettingsError line."""
    from bake_seq.sequences.datafile import DataFileError, read_json

    try:
        return read_json(path, MAX_RECORD_BYTES)
    except DataFileError as exc:
        raise SettingsError(path, f"the {what} {exc}", fix) from None


_HASH_NAMED = re.compile(r"grade-([0-9a-f]{16})\.json")  # what `submit` writes for the farm's chunks
_TEMPORAL_IN_RECORDS = ("frame", "shot", "window")
_NUMBER = frozenset({int, float})  # exactly: a bool or a string is no grade parameter


def load_grade(path: str, parameters: int, grade_config: dict) -> ShotGrade:
    """Read a grade record, checked against the model's grade form before anything uses it:
    every field of the type it is written with, every parameter within the limits that keep the
    grade finite in float32 (models/bakenet_global.py), and a record named by its hash
    (grade-<hash>.json, from `submit`) still holding that content."""

    fix = "give a record written by `bake-seq grade` (the .json beside its LUT)"
    data = read_record_json(path, "grade record", fix)
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise SettingsError(path, "is not a bake-seq grade record", fix)
    if type(data.get("version")) is not int or data["version"] != RECORD_VERSION:
        raise SettingsError(path, f"is grade record version {shown(data.get('version'))}; this bake-seq reads "
                            f"{RECORD_VERSION}", "re-run bake-seq grade with this version")
    temporal, window, frames = data.get("temporal"), data.get("window"), data.get("frames")
    if type(temporal) is not str or temporal not in _TEMPORAL_IN_RECORDS:
        raise SettingsError(path, f"'temporal' is {shown(temporal)}, not one of {', '.join(_TEMPORAL_IN_RECORDS)}", fix)
    if type(window) is not int or not 0 <= window <= 10001:
        raise SettingsError(path, f"'window' is {shown(window)}, not a number of frames (0 to 10001)", fix)
    if not (isinstance(frames, list) and frames and all(type(n) is int and -2**63 <= n < 2**63 for n in frames)
            and len(np.unique(np.array(frames, np.int64))) == len(frames)):
        raise SettingsError(path, "'frames' must be a list of distinct frame numbers", fix)
    form = data.get("grade_config")
    if not (isinstance(form, dict) and form == grade_config and all(type(v) is int for v in form.values())):
        raise SettingsError(path, f"was estimated for grade form {shown(form)}, the model uses {grade_config}",
                            "estimate it again with this checkpoint")
    table = parameter_table(path, data.get("parameters"), frames, parameters, grade_config, fix)
    about = {k: v for k, v in data.items() if k not in ("format", "version", "temporal", "window", "frames",
                                                        "grade_config", "parameters", "grade_sha256")}
    grade = ShotGrade(temporal, window, tuple(frames), table, grade_config, about)
    named = _HASH_NAMED.fullmatch(os.path.basename(path))
    if named and named[1] != grade.sha256:
        raise SettingsError(path, f"holds a grade whose hash is {grade.sha256}, not the {named[1]} its name "
                            "promises (edited after `bake-seq submit` wrote it)",
                            "submit the job again (or render with --grade pointing at a renamed copy)")
    return grade


def parameter_table(path: str, rows, frames: list, parameters: int, grade_config: dict, fix: str) -> np.ndarray:
    """The record's 'parameters' as a float32 table of one row or one per frame, refused unless
    every value is a JSON number within the grade's limits."""
    from types import SimpleNamespace

    from .models.bakenet_global import grade_groups, grade_limits

    shape = f"'parameters' must be 1 or {len(frames)} rows of {parameters} numbers"
    if not (isinstance(rows, list) and len(rows) in (1, len(frames))
            and all(isinstance(row, list) and len(row) == parameters for row in rows)):
        raise SettingsError(path, shape, fix)
    if not all(type(v) in _NUMBER for row in rows for v in row):
        raise SettingsError(path, f"{shape} (found a string, true/false or null)", fix)
    table = np.array(rows, dtype=np.float64)
    if not np.isfinite(table).all():
        raise SettingsError(path, "holds NaN or infinite parameters", fix)
    form = SimpleNamespace(**grade_config)
    limits = np.array(grade_limits(form))
    outside = np.argwhere(np.abs(table) > limits)
    if len(outside):  # the limits lie far inside float32's range: what passes is a finite float32
        row, column = (int(i) for i in outside[0])
        names = [name for name, count in grade_groups(form) for _ in range(count)]
        frame = f"frame {frames[row]}" if len(table) > 1 else "every frame"
        raise SettingsError(path, f"parameter {column} ({names[column]}) of {frame} is {table[row, column]:g}, "
                            f"outside ±{limits[column]:g}, the range that keeps a grade finite", fix)
    return table.astype(np.float32)



def is_lut(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in LUT_EXTENSIONS
