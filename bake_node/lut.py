"""3D LUT files a colourist's tools read: Resolve/Adobe .cube, Academy/ASC CLF, Sony .spi3d.

``lut_grid`` lays the lattice out as an image (so the render's own per-pixel code samples it);
``lut_text`` writes the sampled values in the format the extension names. All three are read
by OpenColorIO's FileTransform (Nuke's OCIOFileTransform, oiiotool --ociofiletransform); .cube
also by Resolve. Values are written with 7 decimals (5e-8: far below a 16-bit code).
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

LUT_SIZES = (17, 33, 65)


def lut_grid(size: int) -> np.ndarray:
    """(size*size, size, 3) float32 lattice: row ``r*size + g``, column ``b``, value (r, g, b)/(size-1)."""
    axis = np.linspace(0.0, 1.0, size, dtype=np.float64)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(size * size, size, 3).astype(np.float32)


def _rows(values: np.ndarray, size: int, red_fastest: bool) -> np.ndarray:
    table = values.reshape(size, size, size, 3)  # [r][g][b]
    return (table.transpose(2, 1, 0, 3) if red_fastest else table).reshape(-1, 3)


def _numbers(rows: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.7f}" for v in row) for row in rows.astype(np.float64)) + "\n"


def lut_text(ext: str, values: np.ndarray, title: str, comments: list[str]) -> str:
    """The lattice outputs ``values`` (shaped like ``lut_grid(size)``) as a ``ext`` file's text."""
    size = values.shape[1]
    if ext == ".cube":  # red changes fastest
        head = "".join(f"# {c}\n" for c in comments)
        return (f'TITLE "{title[:200]}"\n{head}LUT_3D_SIZE {size}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n'
                + _numbers(_rows(values, size, red_fastest=True)))
    if ext == ".spi3d":  # explicit lattice indices on every line
        lattice = np.indices((size, size, size)).reshape(3, -1).T  # r, g, b; blue fastest
        rows = _rows(values, size, red_fastest=False).astype(np.float64)
        return f"SPILUT 1.0\n3 3\n{size} {size} {size}\n" + "".join(
            f"{r} {g} {b} {x:.7f} {y:.7f} {z:.7f}\n" for (r, g, b), (x, y, z) in zip(lattice, rows))
    if ext == ".clf":  # blue changes fastest
        notes = "".join(f"  <Description>{escape(c)}</Description>\n" for c in comments)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<ProcessList compCLFversion="3" id="bake-seq" name="{escape(title[:200], {chr(34): "&quot;"})}">\n'
                f"{notes}  <LUT3D inBitDepth=\"32f\" outBitDepth=\"32f\" interpolation=\"tetrahedral\">\n"
                f"    <Array dim=\"{size} {size} {size} 3\">\n"
                + _numbers(_rows(values, size, red_fastest=False))
                + "    </Array>\n  </LUT3D>\n</ProcessList>\n")
    raise ValueError(f"no LUT writer for {ext!r}")


def sidecar_path(lut: str) -> str:
    """shot_010.cube -> shot_010.cube.json: the grade record `bake-seq grade` writes beside a LUT
    (a record asked for by name, shot_010.json, is itself)."""
    return lut if lut.lower().endswith(".json") else lut + ".json"


MAX_LUT_BYTES = 256 << 20  # OpenColorIO's largest 3D LUT (129^3) is ~90 MB as text


@dataclass(frozen=True)
class LutGrade:
    """A LUT given as --grade: applied by OpenColorIO from the colour space it was made for to
    the one its values are in (both named by its sidecar)."""

    path: str
    input_colorspace: str
    output_colorspace: str
    sha256: str
    processor: object

    @property
    def colorspace(self) -> str:
        """The spaces it is applied in, for the resume fingerprint (one name when they agree)."""
        if self.output_colorspace == self.input_colorspace:
            return self.input_colorspace
        return f"{self.input_colorspace} -> {self.output_colorspace}"

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        from bake_seq.ocio.convert import run_processor

        return run_processor(rgb, self.processor)


def open_lut(path: str) -> LutGrade:
    """The LUT, hashed as it streams by (a regular file of at most MAX_LUT_BYTES), and the colour
    spaces its sidecar names."""
    from bake_seq.ocio.config import WORKING_SPACE, resolve_config
    from bake_seq.ocio.convert import lut_processor
    from bake_seq.sequences.datafile import DataFileError, open_regular

    from .errors import SettingsError

    digest = hashlib.sha256()
    try:
        with open_regular(path, MAX_LUT_BYTES) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except (DataFileError, OSError) as exc:
        problem = str(exc) if isinstance(exc, DataFileError) else f"is unreadable ({exc.strerror or exc})"
        raise SettingsError(path, f"the LUT {problem}", "give a .cube, .clf or .spi3d file as --grade") from None
    spaces = lut_spaces(path)
    space, output_space, config_source = spaces or (WORKING_SPACE, WORKING_SPACE, None)
    config = resolve_config(config_source)[0]
    processor = lut_processor(config, os.path.abspath(path), space, output_space, WORKING_SPACE)
    if spaces is None:  # said, as a LUT made for another space would be applied wrongly (after any error: one line)
        sys.stderr.write(f"bake-seq: note: {path} has no sidecar ({os.path.basename(sidecar_path(path))}): "
                         f"applied to {WORKING_SPACE} values, giving {WORKING_SPACE} values\n")
    return LutGrade(path, space, output_space, digest.hexdigest()[:16], processor)


def lut_spaces(lut: str) -> tuple[str, str, str | None] | None:
    """(LUT input space, LUT output space, OCIO config or None) from the LUT's sidecar, refused
    unless it is a JSON object naming them as strings; None without a sidecar."""
    from .errors import SettingsError
    from .settings import shown
    from .shot_grade import read_record_json

    beside = sidecar_path(lut)
    if not os.path.lexists(beside):
        return None
    fix = (f"fix {os.path.basename(beside)} (written by bake-seq grade), or remove it to apply the LUT to "
           "working-space values")
    about = read_record_json(beside, "LUT sidecar", fix)
    if not isinstance(about, dict):
        raise SettingsError(beside, f"the LUT sidecar is a JSON {type(about).__name__}, not an object naming "
                            "lut_colorspace", fix)
    space = about.get("lut_colorspace")
    output_space = about.get("lut_output_colorspace", space)  # a hand-written one may name one space for both
    config = about.get("ocio_config")
    for key, value in (("lut_colorspace", space), ("lut_output_colorspace", output_space)):
        if type(value) is not str or not value:
            raise SettingsError(beside, f"'{key}' is {shown(value)}, not a colour space name", fix)
    if config is not None and type(config) is not str:
        raise SettingsError(beside, f"'ocio_config' is {shown(config)}, not a config path or URI", fix)
    return space, output_space, config
