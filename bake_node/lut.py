"""3D LUT files a colourist's tools read: Resolve/Adobe .cube, Academy/ASC CLF, Sony .spi3d.

``lut_grid`` lays the lattice out as an image (so the render's own per-pixel code samples it);
``lut_text`` writes the sampled values in the format the extension names. All three are read
by OpenColorIO's FileTransform (Nuke's OCIOFileTransform, oiiotool --ociofiletransform); .cube
also by Resolve. Values are written with 7 decimals (5e-8: far below a 16-bit code).

A shaped lattice (``shaped_axis``, CLF only) is for plates whose colour space is not the model's
working space (camera log, film density, scene-linear and float plates). An even lattice over
such a plate's code values puts the render's bends between its points: the working space's
[0, 1] edges (where the model's input is clamped and the excess passed through) lie on planes
tilted by the gamut matrix, the model's own output clamp sits just inside them, and a float
plate's values do not fit a [0, 1] table at all. So the CLF holds OpenColorIO's exact conversion
plate -> working, then a 1D shaper that maps working values to lattice coordinates (one entry per
half float: any range, exact at the points), the 3D table, then the exact conversion working ->
output. On the working axes the edges 0 and 1 are lattice points, cells are finest next to them
(0.0005 at black growing x1.25, 0.0015 at white growing x1.35, up to an even middle) and outside
[0, 1], where the correction is linear in each channel (the excess passes through), a few wide
cells (x16 apart: float32 lattice coordinates keep 1e-5 relative precision there) cover the
rest of the plate's range. Measured in docs/shots.md.
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

LUT_SIZES = (17, 33, 65, 97, 129)  # 129: OpenColorIO's largest 3D LUT
EVEN_SIZE = 65  # `grade --size auto` for an even lattice (.cube/.spi3d, or a .clf of a working-space plate)
# ... and for a shaped one: the correction bends inside cells whatever their placement (the tone
# curve's and toning's kinks cross them), and a film-density output magnifies dark codes, so
# 65 points left ADX10 photographs 3 16-bit codes off at the 99.9th percentile, 97 hold 2
# (docs/shots.md). ~40 MB of CLF text against ~14 MB.
SHAPED_SIZE = 97


def lut_grid(size: int) -> np.ndarray:
    """(size*size, size, 3) float32 lattice: row ``r*size + g``, column ``b``, value (r, g, b)/(size-1)."""
    axis = np.linspace(0.0, 1.0, size, dtype=np.float64)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(size * size, size, 3).astype(np.float32)


BLACK_CELLS = (0.0005, 1.25)  # first working-space cell above 0, and how fast cells grow from it
WHITE_CELLS = (0.0015, 1.35)  # the same below 1
BEYOND = 16.0  # outside [0, 1]: points at -1, -16, -256, ... and 16, 256, ... up to the plate's range
HALF_MAX = 65504.0


def shaped_axis(size: int, low: float, high: float) -> np.ndarray:
    """``size`` lattice points (ascending float64, each a half float) on a working-space axis
    covering [low, high]: 0 and 1 among them, finest next to them, few and wide outside."""
    below = -_outside(-max(low, -HALF_MAX), 0.0, 1.0)[::-1]  # ..., -256, -16, -1 and the plate's lowest
    above = _outside(min(high, HALF_MAX), 1.0, BEYOND)  # 16, 256, ... and the plate's highest
    cells = size - 1 - len(below) - len(above)
    if cells < 2:
        raise ValueError(f"a {size}-point lattice is too small for working values {low:g} to {high:g}")
    points = np.concatenate([below, _inside(cells), above]).astype(np.float16).astype(np.float64)
    if not (np.diff(points) > 0).all():
        raise ValueError(f"lattice points collide as half floats: {points}")
    return points


def _outside(end: float, edge: float, first: float) -> np.ndarray:
    """Points past ``edge`` up to ``end`` (below 0 as distances from 0): first, first*16, ...
    while short of ``end``, then ``end`` itself; none when ``end`` does not pass ``edge``."""
    if end <= edge:
        return np.zeros(0)
    points = [first * BEYOND ** k for k in range(6) if first * BEYOND ** k < end]
    last = np.float16(end)  # a half float at or past ``end``: the plate's extreme stays inside
    return np.array(points + [float(last if float(last) >= end else np.nextafter(last, np.float16(np.inf)))])


def _inside(cells: int) -> np.ndarray:
    """``cells`` + 1 points on [0, 1]: cells growing geometrically from each end (BLACK_CELLS,
    WHITE_CELLS) up to an even middle as wide as the largest of them (the end cells doubled
    until they fit a small lattice)."""
    (e0, g0), (e1, g1) = BLACK_CELLS, WHITE_CELLS
    while True:
        for middle in np.linspace(1e-4, 1.0, 10000):  # the narrowest even middle the count allows
            black, white = _growing(e0, g0, middle), _growing(e1, g1, middle)
            even = cells - len(black) - len(white)
            if even < 1:
                break
            rest = 1.0 - black.sum() - white.sum()
            if rest / even <= middle:
                widths = np.concatenate([black, np.full(even, rest / even), white[::-1]])
                points = np.concatenate([[0.0], np.cumsum(widths)])
                points[-1] = 1.0
                return points
        e0, e1 = 2 * e0, 2 * e1


def _growing(first: float, growth: float, below: float) -> np.ndarray:
    """Cell widths first, first*growth, ... while narrower than ``below``."""
    count = 0 if first >= below else int(np.ceil(np.log(below / first) / np.log(growth)))
    widths = first * growth ** np.arange(count)
    return widths[widths < below]


def half_shaper(points: np.ndarray) -> np.ndarray:
    """The 1D shaper as a half-domain table (65536 float32, indexed by a half float's bits):
    working value -> lattice coordinate, piecewise linear between the points (so each cell of
    the lattice is an even box in its coordinates), clamped outside them."""
    value = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float64)
    finite = np.isfinite(value)
    coordinate = np.where(value > 0, 1.0, 0.0)  # +inf -> 1; -inf and NaN -> 0
    coordinate[finite] = np.interp(value[finite], points, np.linspace(0.0, 1.0, len(points)))
    return coordinate.astype(np.float32)


def lattice_image(points: np.ndarray) -> np.ndarray:
    """The lattice on ``points`` per axis laid out like ``lut_grid``: (n*n, n, 3) float32."""
    r, g, b = np.meshgrid(points, points, points, indexing="ij")
    size = len(points)
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
    applied: str | None = None  # how it is applied, when not plainly between its spaces

    @property
    def colorspace(self) -> str:
        """The spaces it is applied in, for the resume fingerprint (one name when they agree)."""
        if self.applied:
            return self.applied
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
    space, output_space, config_source, shaped = spaces or (WORKING_SPACE, WORKING_SPACE, None, False)
    config = resolve_config(config_source)[0]
    processor = lut_processor(config, os.path.abspath(path), space, output_space, WORKING_SPACE, shaped)
    if spaces is None:  # said, as a LUT made for another space would be applied wrongly (after any error: one line)
        sys.stderr.write(f"bake-seq: note: {path} has no sidecar ({os.path.basename(sidecar_path(path))}): "
                         f"applied to {WORKING_SPACE} values, giving {WORKING_SPACE} values\n")
    shown_spaces = f"{space} -> {output_space}" if output_space != space else space
    return LutGrade(path, space, output_space, digest.hexdigest()[:16], processor,
                    f"{shown_spaces} (shaped)" if shaped else None)


def lut_spaces(lut: str) -> tuple[str, str, str | None, bool] | None:
    """(LUT input space, LUT output space, OCIO config or None, shaped) from the LUT's sidecar,
    refused unless it is a JSON object naming them as strings; None without a sidecar. shaped:
    the sidecar says the file is `grade`'s shaped CLF, converting to this working space itself."""
    from bake_seq.ocio.config import WORKING_SPACE

    from .errors import SettingsError, shown
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
    lattice = about.get("lut_lattice", "even")
    if lattice not in ("even", "shaped"):
        raise SettingsError(beside, f"'lut_lattice' is {shown(lattice)}, not 'even' or 'shaped'", fix)
    shaped = lattice == "shaped" and about.get("lut_working_colorspace") == WORKING_SPACE
    return space, output_space, config, shaped
