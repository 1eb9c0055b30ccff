"""Read and write plate frames through OpenImageIO.

Reading returns float32 pixels normalised by the sequence's ONE bit depth
(decided by the caller, never guessed from pixel values). Writing is always
16-bit (uint16 PNG/TIFF/DPX, half EXR) and atomic: a hidden temp file in the
same directory, fsync, rename.

OIIO reports many failures only through geterror() while returning something
that looks fine, so every call is checked and every error text is collected.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import OpenImageIO as oiio

from .errors import OutputError, PlateError
from .metadata import output_attributes

_MAX_CHANNELS = 4
_FLOAT_TYPES = {"half", "float", "double"}
_UNSIGNED_TYPES = {"uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32}
# Output pixel type per extension: integer formats are 16-bit, EXR is half.
_WRITE_TYPES = {"png": oiio.UINT16, "tif": oiio.UINT16, "tiff": oiio.UINT16,
                "dpx": oiio.UINT16, "exr": oiio.HALF}
# OIIO 3.2.2 with libtiff 4.7.1 reports this after *every* TIFF close, even
# with no Exif attributes at all; close() returns True and the file is whole
# (write_plate re-reads the header before renaming, so a real failure still shows).
_BENIGN_WRITE_ERRORS = ("failed TIFFWriteCustomDirectory() of the Exif data",)


@dataclasses.dataclass
class Header:
    path: str
    width: int
    height: int
    channels: int
    channel_names: list[str]
    alpha_channel: int
    pixel_type: str
    bits_per_sample: int
    is_float: bool
    colorspace_tag: str | None
    metadata: dict[str, object]


@dataclasses.dataclass
class Plate:
    header: Header
    pixels: np.ndarray


def _open_config() -> oiio.ImageSpec:
    # Without this hint OIIO premultiplies PNG/TIFF colour by an unassociated
    # alpha on read (and divides on write): alpha must pass through untouched.
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    return config


def _open(path: str) -> oiio.ImageInput:
    if not os.path.isfile(path):
        raise PlateError(path, "file not found", "check the path and the frame range")
    if os.path.getsize(path) == 0:
        raise PlateError(path, "file is empty (0 bytes)", "re-render or re-copy this frame")
    image = oiio.ImageInput.open(path, _open_config())
    if image is None:
        raise PlateError(path, f"cannot read image ({_oiio_error() or 'unknown format'})",
                         "check the file is a complete DPX/EXR/PNG/TIFF/JPEG; "
                         "re-render or re-copy it")
    return image


def _oiio_error(source=oiio) -> str:
    """OIIO's pending error text: damaged files put raw non-UTF-8 bytes in it, which the Python
    binding cannot decode (the message then says so instead of raising)."""
    try:
        return source.geterror()
    except UnicodeDecodeError:
        return "damaged header (OpenImageIO's message is not text)"


def _metadata(path: str, spec: oiio.ImageSpec) -> dict:
    """The header's attributes; one OIIO cannot convert (a damaged DPX/EXR field) is a plate
    error, not a crash."""
    try:
        return {attrib.name: attrib.value for attrib in spec.extra_attribs}
    except (RuntimeError, UnicodeDecodeError, ValueError) as exc:
        raise PlateError(path, f"has a damaged header ({type(exc).__name__})",
                         "re-render or re-copy this frame") from None


def _header(path: str, spec: oiio.ImageSpec) -> Header:
    pixel_type = str(spec.format)
    container_bits = spec.format.size() * 8
    metadata = _metadata(path, spec)
    bits = metadata.get("oiio:BitsPerSample")
    if not isinstance(bits, int) or not 0 < bits <= container_bits:
        bits = container_bits
    alpha = spec.alpha_channel
    if alpha < 0 and "A" in spec.channelnames:
        alpha = list(spec.channelnames).index("A")
    colorspace = metadata.get("oiio:ColorSpace")
    stated = _stated_colourspace(metadata.get("ImageDescription"))
    if stated and os.path.splitext(path)[1][1:].lower() in _TAG_DROPPING:
        colorspace = stated  # bake-seq's own statement beats OIIO's reading of the DPX/TIFF header
    return Header(path=path, width=spec.width, height=spec.height,
                  channels=spec.nchannels, channel_names=list(spec.channelnames),
                  alpha_channel=alpha, pixel_type=pixel_type, bits_per_sample=bits,
                  is_float=pixel_type in _FLOAT_TYPES,
                  colorspace_tag=colorspace if isinstance(colorspace, str) and colorspace else None,
                  metadata=metadata)


def read_header(path: str) -> Header:
    image = _open(path)
    header = _header(path, image.spec())
    image.close()
    _oiio_error(image)  # a header read cannot fail on close; just clear the queue
    return header


def read_plate(path: str, bit_depth: int | None) -> Plate:
    """Read one frame as float32 H×W×C; integer codes are divided by 2^bit_depth − 1."""
    image = _open(path)
    header = _header(path, image.spec())
    try:
        _check_readable(header)
        read_type = oiio.FLOAT if header.is_float else header.pixel_type
        raw = image.read_image(0, 0, 0, header.channels, read_type)
        read_error = _oiio_error(image)
    finally:
        closed = image.close()
        close_error = _oiio_error(image)
    expected = (header.height, header.width, header.channels)
    problem = read_error or close_error or ("" if closed else "close failed")
    if raw is None or problem or raw.size != np.prod(expected):
        raise PlateError(path, f"cannot read pixels ({problem or 'truncated or corrupt'})",
                         "the file is probably truncated or corrupt: re-render or re-copy it")
    raw = raw.reshape(expected)
    if header.is_float:
        pixels = raw.astype(np.float32, copy=False)  # read as float already: no second copy
    else:
        pixels = _normalise(header, raw, bit_depth)
    return Plate(header, np.ascontiguousarray(pixels))


MAX_MEGAPIXELS = 100  # 12K cameras are 80 MP; reading costs 17 MiB per megapixel, a render ~100 (README)


def max_megapixels() -> float:
    """The frame-size limit: MAX_MEGAPIXELS, or $BAKE_SEQ_MAX_MEGAPIXELS for machines with the memory."""
    try:
        return float(os.environ.get("BAKE_SEQ_MAX_MEGAPIXELS", MAX_MEGAPIXELS))
    except ValueError:
        return MAX_MEGAPIXELS


def check_size(header: Header) -> None:
    """A crafted header (a 451 KB PNG saying 12000 x 12000) must not make us allocate its pixels
    unasked: frames beyond the limit are refused before any pixel is read."""
    megapixels = header.width * header.height / 1e6
    limit = max_megapixels()
    if header.width <= 0 or header.height <= 0 or megapixels > limit:
        raise PlateError(header.path, f"is {header.width}x{header.height} ({megapixels:.0f} MP): beyond "
                         f"bake-seq's {limit:g} MP limit (a render needs ~100 MiB per megapixel)",
                         "check the file (a damaged header?), crop or resize it (oiiotool --resize), or "
                         "raise $BAKE_SEQ_MAX_MEGAPIXELS on a machine with the memory")


def _check_readable(header: Header) -> None:
    check_size(header)
    if header.channels > _MAX_CHANNELS:
        names = ",".join(header.channel_names)
        raise PlateError(header.path, f"{header.channels} channels ({names}); "
                         "plates must have 1 to 4 channels",
                         "extract RGB(A) first: oiiotool in.exr --ch R,G,B,A -o out.exr")
    if not header.is_float and header.pixel_type not in _UNSIGNED_TYPES:
        raise PlateError(header.path, f"unsupported pixel type {header.pixel_type}",
                         "convert to 8/10/12/16-bit integer or half/float first")


def _normalise(header: Header, raw: np.ndarray, bit_depth: int | None) -> np.ndarray:
    # OIIO widens an n-bit code to the container by bit replication (10-bit
    # code 383 reads as uint16 24535, not 383*64), so rescale and round to get
    # the exact code back before dividing by the sequence's bit depth.
    header_bits = header.bits_per_sample
    container_bits = raw.dtype.itemsize * 8
    depth = header_bits if bit_depth is None else bit_depth
    if not isinstance(depth, int) or not 1 <= depth <= 32:
        raise PlateError(header.path, f"bit depth {depth!r} is not 1..32",
                         "pass --bit-depth 8, 10, 12 or 16")
    scale = (2.0 ** header_bits - 1) / (2.0 ** container_bits - 1)
    largest = 2.0 ** depth - 1
    top = float(np.rint(float(raw.max()) * scale)) if raw.size else 0.0
    if top > largest:
        raise PlateError(header.path, f"code values up to {int(top)} exceed the "
                         f"{depth}-bit range", f"check --bit-depth (this file's "
                         f"header says {header_bits})")
    if container_bits <= 16:
        # One float32 per container code, computed in float64 as before, then looked up:
        # the frame costs its own float32 copy only (4 bytes per value, not ~22 with
        # whole-frame float64 temporaries), with bit-identical values.
        table = (np.rint(np.arange(2 ** container_bits, dtype=np.float64) * scale) / largest).astype(np.float32)
        return table[raw]
    out = np.empty(raw.shape, np.float32)
    for y in range(0, raw.shape[0], 64):  # 32-bit codes: float64 maths, 64 rows at a time
        out[y:y + 64] = np.rint(raw[y:y + 64].astype(np.float64) * scale) / largest
    return out


_TAG_DROPPING = ("dpx", "tif", "tiff")
COLOURSPACE_NOTE = "colour space: "  # how a written DPX/TIFF states its space in ImageDescription
DPX_TEXT = 31  # characters the DPX image description field holds


def _stated_colourspace(description) -> str | None:
    """"... | colour space: ACEScg" -> "ACEScg" (what write_plate states in DPX and TIFF)."""
    if not isinstance(description, str) or COLOURSPACE_NOTE not in description:
        return None
    return description.rsplit(COLOURSPACE_NOTE, 1)[1].split(" | ")[0].strip() or None


def write_plate(path: str, pixels: np.ndarray, *, channel_names: list[str],
                metadata: dict, colorspace: str | None, frame: int | None = None,
                colorspace_label: str | None = None) -> None:
    """Write one 16-bit frame through the safe writer: never a partial file under `path`, never
    onto a device or FIFO. It replaces a frame already there: the render decides which frames
    to write (resume, --overwrite) and has refused its inputs as outputs before."""
    from .safe_write import write_file

    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in _WRITE_TYPES:
        why = ("JPEG cannot hold 16-bit" if extension in ("jpg", "jpeg")
               else f"cannot write 16-bit .{extension}")
        raise OutputError(path, why, "use .png, .tif, .dpx or .exr")
    data = _output_pixels(path, pixels, channel_names, extension)
    spec = _output_spec(data, channel_names, extension, metadata, colorspace, frame, colorspace_label)
    final = os.path.abspath(path)

    def fill(temp: str) -> None:
        _write_image(path, temp, spec, data)
        if extension == "dpx":
            _name_dpx_header(temp, final)

    write_file(path, fill, overwrite=True, what="frame", fix="choose another output folder")


def _output_pixels(path: str, pixels: np.ndarray, channel_names: list[str],
                   extension: str) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    channels = len(channel_names)
    if pixels.ndim != 3 or pixels.shape[2] != channels or not 1 <= channels <= _MAX_CHANNELS:
        raise OutputError(path, f"pixels of shape {pixels.shape} do not match channels "
                          f"{channel_names}", "pass H×W×C pixels with 1 to 4 named channels")
    if extension == "dpx" and channels == 2:
        raise OutputError(path, "DPX cannot hold 2 channels (grey + alpha)",
                          "write .exr, .png or .tif, or expand to RGBA")
    if _WRITE_TYPES[extension] == oiio.HALF:
        # EXR keeps values outside [0,1] (and NaN/Inf) exactly as given.
        return np.ascontiguousarray(pixels, dtype=np.float32)
    if not np.all(np.isfinite(pixels)):
        raise OutputError(path, "pixels contain NaN or Inf, which a 16-bit integer file "
                          "cannot hold", "write .exr, or fix the NaN/Inf upstream")
    codes = np.rint(np.clip(pixels.astype(np.float64), 0.0, 1.0) * 65535.0)
    # OIIO silently writes garbage from non-contiguous arrays.
    return np.ascontiguousarray(codes, dtype=np.uint16)


def _output_spec(data, channel_names, extension, metadata, colorspace, frame, colorspace_label=None):
    height, width, channels = data.shape
    spec = oiio.ImageSpec(width, height, channels, _WRITE_TYPES[extension])
    spec.channelnames = tuple(channel_names)
    spec.alpha_channel = channel_names.index("A") if "A" in channel_names else -1
    for name, type_desc, value in output_attributes(metadata):
        try:
            spec.attribute(name, type_desc, value)
        except (TypeError, ValueError, RuntimeError):  # a value OIIO read but cannot write back: not carried
            continue
    if extension == "dpx":
        spec.attribute("oiio:BitsPerSample", 16)
    if extension == "png":
        # PNG alpha is unassociated by definition; say the pixels already are,
        # or OIIO divides colour by alpha on write.
        spec.attribute("oiio:UnassociatedAlpha", 1)
    if colorspace:
        spec.attribute("oiio:ColorSpace", colorspace)
        if extension in _TAG_DROPPING:
            # DPX and TIFF keep only the few colour-space names OIIO maps to their header
            # fields; ImageDescription survives everywhere, so the space is stated there too.
            # DPX holds 31 characters there: a short alias of the space (``colorspace_label``)
            # keeps the statement whole, and it replaces the plate's own description (a cut
            # statement would name the wrong space; the plate's text would be cut anyway).
            before = str(metadata.get("ImageDescription", "") or "")
            note = f"{COLOURSPACE_NOTE}{colorspace_label or colorspace if extension == 'dpx' else colorspace}"
            keep = before and extension != "dpx" and note not in before
            spec.attribute("ImageDescription", f"{before} | {note}" if keep else note)
    if frame is not None:
        # EXR keeps "Frame"; DPX keeps only its header field "dpx:FramePosition";
        # PNG and TIFF keep neither (the frame is still in the file name).
        spec.attribute("Frame", int(frame))
        if extension == "dpx":
            spec.attribute("dpx:FramePosition", int(frame))
    return spec


def _write_image(path: str, temp: str, spec: oiio.ImageSpec, data: np.ndarray) -> None:
    """Write `temp` and check it; write_plate removes `temp` on any failure."""
    # create() from the final name picks the format from the real extension.
    output = oiio.ImageOutput.create(path)
    if output is None:
        raise OutputError(path, f"no writer ({oiio.geterror()})", "use .png, .tif, .dpx or .exr")
    ok = output.open(temp, spec)
    errors = [output.geterror()]
    if ok:
        ok = output.write_image(data)
        errors.append(output.geterror())
        ok = output.close() and ok
        errors.append(output.geterror())
    errors = [error for error in errors if error and error not in _BENIGN_WRITE_ERRORS]
    if not ok or errors:
        reason = "; ".join(errors) or "no reason given"
        raise OutputError(path, f"OpenImageIO failed to write ({reason})",
                          "check free space and permissions; retry the frame")
    _verify(path, temp, spec)


def _verify(path: str, temp: str, spec: oiio.ImageSpec) -> None:
    # Cheap insurance that what goes under the final name is a whole image.
    written = oiio.ImageInput.open(temp)
    if written is None:
        raise OutputError(path, f"written file cannot be read back ({oiio.geterror()})",
                          "retry the frame")
    got = written.spec()
    written.close()
    written.geterror()
    shape = (got.width, got.height, got.nchannels)
    if shape != (spec.width, spec.height, spec.nchannels):
        raise OutputError(path, f"written file has shape {shape}", "retry the frame")


_DPX_FILE_NAME = (36, 100)  # offset and size of the DPX file header's "image file name" field


def _name_dpx_header(temp: str, final: str) -> None:
    """OpenImageIO writes the path it writes to (our temp name, with host and pid) into the DPX
    header: put the final path there, so reruns write byte-identical files."""
    offset, size = _DPX_FILE_NAME
    field = os.fsencode(final)[:size - 1].ljust(size, b"\0")
    with open(temp, "r+b") as fh:
        fh.seek(offset)
        fh.write(field)
