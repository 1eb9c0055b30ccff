"""Convert float RGB pixels between colour spaces with OCIO's CPU path.

Processors are exact: OCIO's default CPU processor approximates log/exp/pow
(OPTIMIZATION_FAST_LOG_EXP_POW, up to ~9e-6 off for the sRGB curve), which would break the
"fp32 unless the user opts in" rule. Matrix, gamma and sRGB-style curves keep values
outside [0, 1] (negatives continue the linear toe). Log and LUT spaces cannot: ADX10, for
one, sends scene values <= 0 to its black floor, so they come back as 0.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PyOpenColorIO as OCIO

from bake_seq.ocio.config import resolve_colorspace

_EXACT = OCIO.OptimizationFlags(
    int(OCIO.OPTIMIZATION_DEFAULT) & ~int(OCIO.OPTIMIZATION_FAST_LOG_EXP_POW))
_ROWS_PER_TASK = 64  # ~0.5 MB of RGB at 2K: stays in cache, and enough tasks to share out

_processors: dict[tuple[str, str, str], OCIO.CPUProcessor | None] = {}
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def convert(pixels: np.ndarray, config: OCIO.Config, src: str, dst: str) -> np.ndarray:
    """Return a new float32 C-contiguous H×W×3 array of ``pixels`` converted src -> dst."""
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"convert wants H×W×3 RGB pixels, got shape {pixels.shape}")
    return run_processor(pixels, _processor(config, src, dst))


def run_processor(pixels: np.ndarray, processor: OCIO.CPUProcessor | None) -> np.ndarray:
    """A new float32 H×W×3 array: ``pixels`` through an OCIO CPU processor (None = copy)."""
    out = np.array(pixels, dtype=np.float32, order="C", copy=True)
    if processor is None or out.size == 0:
        return out
    bands = [out[y:y + _ROWS_PER_TASK] for y in range(0, out.shape[0], _ROWS_PER_TASK)]
    # OCIO releases the GIL and every op is per-pixel, so bands give identical results
    # to one call, about twice as fast on two cores.
    list(_thread_pool().map(lambda band: _apply(processor, band), bands))
    return out


def _apply(processor: OCIO.CPUProcessor, band: np.ndarray) -> None:
    # A PackedImageDesc with the real width keeps OCIO's scanline buffer small; applyRGB
    # on the flat array treats the frame as one 2-million-pixel line and runs 2x slower.
    processor.apply(OCIO.PackedImageDesc(band, band.shape[1], band.shape[0], 3))


def lut_processor(config: OCIO.Config, lut: str, lut_space: str, lut_output_space: str,
                  working: str, shaped: bool = False) -> OCIO.CPUProcessor:
    """working -> ``lut_space`` -> the LUT file (tetrahedral for 3D LUTs), whose values are in
    ``lut_output_space`` -> back to working: how a LUT made from the plate's (or the working)
    colour space to the render's output space is applied to working pixels, so that the render's
    own working -> output conversion afterwards lands on the LUT's values.

    A ``shaped`` LUT (bake-seq's shaped CLF: the file converts plate -> working itself, then a
    half-domain shaper and the lattice) is applied from its shaper on: the pixels are working
    values already, and a round trip through the plate's space first would blur them where that
    space is steep (ADX10's toe: up to 72 16-bit codes). Its own conversion to the output space
    stays. A file without that layout is applied whole."""
    from bake_seq.ocio.errors import ColourError

    space = resolve_colorspace(config, lut_space, "LUT colour space")
    out = resolve_colorspace(config, lut_output_space, "LUT output colour space")
    working = resolve_colorspace(config, working)
    lut_file = OCIO.FileTransform(lut, interpolation=OCIO.INTERP_TETRAHEDRAL)
    try:
        _refuse_non_finite(config.getProcessor(lut_file), lut)
        tail = _from_shaper(config, lut_file) if shaped else None
        head = [] if tail is not None or space == working else [OCIO.ColorSpaceTransform(working, space)]
        steps = head + (tail or [lut_file]) + ([OCIO.ColorSpaceTransform(out, working)] if out != working else [])
        group = OCIO.GroupTransform()
        for step in steps:
            group.appendTransform(step)
        return config.getProcessor(group).getOptimizedCPUProcessor(_EXACT)
    except (OCIO.Exception, OCIO.ExceptionMissingFile) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ColourError(f"cannot read LUT {lut}: {detail}",
                          "give a .cube, .clf or .spi3d file OpenColorIO reads") from None
    except UnicodeDecodeError:  # OCIO's message quotes the file's bytes, which are not text
        raise ColourError(f"cannot read LUT {lut}: not a LUT file (binary data)",
                          "give a .cube, .clf or .spi3d file OpenColorIO reads") from None


def _from_shaper(config: OCIO.Config, lut_file: OCIO.FileTransform) -> list | None:
    """The file's transforms from the half-domain 1D shaper right before its one 3D LUT on, or
    None when the file is not laid out so."""
    steps = list(config.getProcessor(lut_file).createGroupTransform())
    cubes = [i for i, step in enumerate(steps) if isinstance(step, OCIO.Lut3DTransform)]
    if len(cubes) != 1 or cubes[0] == 0:
        return None
    shaper = steps[cubes[0] - 1]
    if not (isinstance(shaper, OCIO.Lut1DTransform) and shaper.getInputHalfDomain()):
        return None
    return steps[cubes[0] - 1:]


def _refuse_non_finite(processor, lut: str) -> None:
    """OCIO reads 'nan' rows and applies them as 0 (a colour silently wrong): every LUT and
    matrix value of the file must be finite."""
    from bake_seq.ocio.errors import ColourError

    for transform in processor.createGroupTransform():
        values = [transform.getData()] if hasattr(transform, "getData") else []
        if isinstance(transform, OCIO.MatrixTransform):
            values += [transform.getMatrix(), transform.getOffset()]
        if not all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in values):
            raise ColourError(f"LUT {lut} holds NaN or infinite values",
                              "fix the file (or export it again with bake-seq grade)")


def _processor(config: OCIO.Config, src: str, dst: str) -> OCIO.CPUProcessor | None:
    # The cache ID changes with the config's content, so two configs never share an entry.
    key = (config.getCacheID(), src, dst)
    with _lock:
        if key in _processors:
            return _processors[key]
    src_name = resolve_colorspace(config, src, "source colour space")
    dst_name = resolve_colorspace(config, dst, "destination colour space")
    processor = None
    if src_name != dst_name:
        try:
            group = config.getProcessor(src_name, dst_name)
            processor = None if group.isNoOp() else group.getOptimizedCPUProcessor(_EXACT)
        except (OCIO.Exception, OCIO.ExceptionMissingFile) as exc:  # a LUT file missing or malformed
            from bake_seq.ocio.errors import ColourError

            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown OCIO error"
            raise ColourError(f"OCIO cannot convert {src_name!r} -> {dst_name!r}: {detail}",
                              "fix the LUT files the OCIO config names (its search_path), or choose "
                              "another colour space") from None
    with _lock:
        _processors[key] = processor
    return processor


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            wanted = os.environ.get("BAKE_SEQ_THREADS", "")  # a farm's booking (OpenCue CUE_THREADS)
            workers = int(wanted) if wanted.isdigit() and int(wanted) > 0 else min(8, os.cpu_count() or 1)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="ocio")
        return _pool


def shaped_lut_clf(config: OCIO.Config, plate_space: str, working: str, output_space: str,
                   shaper: np.ndarray, lattice: np.ndarray, name: str, notes: list[str]) -> str:
    """A CLF (written by OCIO's own writer) applying a 3D lattice laid out in ``working`` to
    values in ``plate_space``: OCIO's exact conversion plate -> working, the 1D ``shaper`` (65536
    float32 per half float: working value -> lattice coordinate), the lattice (n*n, n, 3, blue
    fastest; tetrahedral), OCIO's exact conversion working -> ``output_space``."""
    group = OCIO.GroupTransform()
    metadata = group.getFormatMetadata()
    metadata.setName(name)
    metadata.setID("bake-seq")
    for note in notes:
        metadata.addChildElement("Description", note)
    steps = list(_exact_steps(config, plate_space, working))
    table = OCIO.Lut1DTransform()
    table.setLength(len(shaper))
    table.setInputHalfDomain(True)
    table.setData(np.ascontiguousarray(np.repeat(shaper[:, None], 3, axis=1), np.float32).ravel())
    cube = OCIO.Lut3DTransform()
    cube.setGridSize(lattice.shape[1])
    cube.setInterpolation(OCIO.INTERP_TETRAHEDRAL)
    cube.setData(np.ascontiguousarray(lattice, np.float32).ravel())
    for step in [*steps, table, cube, *_exact_steps(config, working, output_space)]:
        group.appendTransform(step)
    return group.write("Academy/ASC Common LUT Format", config)


def _exact_steps(config: OCIO.Config, src: str, dst: str):
    """The transforms OCIO converts src -> dst with (none for the same space), as the render's
    exact processor holds them."""
    src, dst = resolve_colorspace(config, src), resolve_colorspace(config, dst)
    if src == dst:
        return []
    return list(config.getProcessor(src, dst).getOptimizedProcessor(_EXACT).createGroupTransform())


def same_space(config: OCIO.Config, a: str, b: str) -> bool:
    """True when converting a -> b changes nothing."""
    return config.getProcessor(resolve_colorspace(config, a), resolve_colorspace(config, b)).isNoOp()
