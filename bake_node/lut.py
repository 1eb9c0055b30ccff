"""3D LUT files a colourist's tools read: Resolve/Adobe .cube, Academy/ASC CLF, Sony .spi3d.

``lut_grid`` lays the lattice out as an image (so the render's own per-pixel code samples it);
``write_lut`` writes the sampled values in the format the extension names. All three are read
by OpenColorIO's FileTransform (Nuke's OCIOFileTransform, oiiotool --ociofiletransform); .cube
also by Resolve. Values are written with 7 decimals (5e-8: far below a 16-bit code).
"""
from __future__ import annotations

import hashlib
import os
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


def write_lut(path: str, values: np.ndarray, title: str, comments: list[str]) -> None:
    """Write the lattice outputs ``values`` (shaped like ``lut_grid(size)``) to ``path`` atomically."""
    size = values.shape[1]
    ext = os.path.splitext(path)[1].lower()
    if ext == ".cube":  # red changes fastest
        head = "".join(f"# {c}\n" for c in comments)
        body = (f'TITLE "{title[:200]}"\n{head}LUT_3D_SIZE {size}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n'
                + _numbers(_rows(values, size, red_fastest=True)))
    elif ext == ".spi3d":  # explicit lattice indices on every line
        lattice = np.indices((size, size, size)).reshape(3, -1).T  # r, g, b; blue fastest
        rows = _rows(values, size, red_fastest=False).astype(np.float64)
        body = f"SPILUT 1.0\n3 3\n{size} {size} {size}\n" + "".join(
            f"{r} {g} {b} {x:.7f} {y:.7f} {z:.7f}\n" for (r, g, b), (x, y, z) in zip(lattice, rows))
    elif ext == ".clf":  # blue changes fastest
        notes = "".join(f"  <Description>{escape(c)}</Description>\n" for c in comments)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<ProcessList compCLFversion="3" id="bake-seq" name="{escape(title[:200], {chr(34): "&quot;"})}">\n'
                f"{notes}  <LUT3D inBitDepth=\"32f\" outBitDepth=\"32f\" interpolation=\"tetrahedral\">\n"
                f"    <Array dim=\"{size} {size} {size} 3\">\n"
                + _numbers(_rows(values, size, red_fastest=False))
                + "    </Array>\n  </LUT3D>\n</ProcessList>\n")
    else:
        raise ValueError(f"no LUT writer for {ext!r}")
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(body)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def sidecar_path(lut: str) -> str:
    """shot_010.cube -> shot_010.cube.json: the grade record `bake-seq grade` writes beside a LUT
    (a record asked for by name, shot_010.json, is itself)."""
    return lut if lut.lower().endswith(".json") else lut + ".json"


@dataclass(frozen=True)
class LutGrade:
    """A LUT given as --grade: applied by OpenColorIO in the colour space it was made for."""

    path: str
    colorspace: str
    sha256: str
    processor: object

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        from bake_seq.ocio.convert import run_processor

        return run_processor(rgb, self.processor)


def open_lut(path: str) -> LutGrade:
    """The LUT and its colour space: from the sidecar's ``lut_colorspace`` (and ``ocio_config``)
    when there is one, else the working space (a LUT made on working-space values)."""
    from bake_seq.ocio.config import WORKING_SPACE, resolve_config
    from bake_seq.ocio.convert import lut_processor

    from .errors import SettingsError

    try:
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    except OSError as exc:
        raise SettingsError(path, f"cannot read the LUT ({exc.strerror or exc})", "check the --grade path") from None
    space, config_source = WORKING_SPACE, None
    beside = sidecar_path(path)
    if os.path.isfile(beside):
        from .shot_grade import MAX_RECORD_BYTES, read_record_json

        about = read_record_json(beside, "LUT's sidecar", f"LUT sidecar is larger than {MAX_RECORD_BYTES >> 20} MB",
                                 "fix or remove it (without one the LUT is taken as working-space)")
        if isinstance(about, dict) and isinstance(about.get("lut_colorspace"), str):
            space = about["lut_colorspace"]
            config_source = about.get("ocio_config") if isinstance(about.get("ocio_config"), str) else None
    config = resolve_config(config_source)[0]
    return LutGrade(path, space, digest, lut_processor(config, os.path.abspath(path), space, WORKING_SPACE))
