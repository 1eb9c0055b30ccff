"""Which source metadata travels to an output frame, and with which OIIO type.

Timecode, key code, frame rate, camera and slate data pass through. Attributes
that describe how the SOURCE file was encoded are dropped: on a 16-bit output
they would be wrong (a 10-bit DPX's oiio:BitsPerSample would make the output
10-bit; an 8-bit one makes the DPX writer fail), or they describe a colour
encoding the pixels no longer have (write_plate sets oiio:ColorSpace itself).
"""
from __future__ import annotations

import OpenImageIO as oiio

# Reader bookkeeping, container layout, compression, colour encoding.
_DROP_PREFIXES = ("oiio:", "tiff:", "png:", "jpeg:", "openexr:", "ICCProfile",
                  "thumbnail_", "Compression", "compression", "planarconfig")
_DROP_NAMES = {
    "colorInteropID", "chromaticities", "adoptedNeutral", "Exif:ColorSpace",
    "dpx:Packing", "dpx:EndOfLinePadding", "dpx:EndOfImagePadding",
    "dpx:ImageDescriptor", "dpx:Transfer", "dpx:Colorimetric",
    "dpx:LowData", "dpx:LowQuantity", "dpx:HighData", "dpx:HighQuantity",
    "dpx:DataSign", "dpx:Version",
}
# Python hands these back as plain tuples; written as int[2] or int[7] the
# EXR and DPX writers silently drop them, so restore their OIIO type.
_TYPED_NAMES = {
    "smpte:TimeCode": "timecode",
    "smpte:KeyCode": "keycode",
    "FramesPerSecond": "rational",
}


def output_attributes(metadata: dict) -> list[tuple[str, oiio.TypeDesc, object]]:
    """(name, type, value) for each attribute worth writing to an output frame."""
    attributes = []
    for name, value in metadata.items():
        if name in _DROP_NAMES or name.startswith(_DROP_PREFIXES):
            continue
        type_desc = _type_of(name, value)
        if type_desc is not None:
            attributes.append((name, type_desc, value))
    return attributes


def _type_of(name: str, value) -> oiio.TypeDesc | None:
    """The OIIO type to write `value` as, or None to skip it (blobs, odd types)."""
    if name in _TYPED_NAMES:
        return oiio.TypeDesc(_TYPED_NAMES[name])
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return oiio.TypeDesc("string")
    if isinstance(value, int):
        return oiio.TypeDesc("int") if -2**31 <= value < 2**31 else None
    if isinstance(value, float):
        return oiio.TypeDesc("float")
    if isinstance(value, tuple) and value:
        return _tuple_type(value)
    return None


def _tuple_type(value: tuple) -> oiio.TypeDesc | None:
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return oiio.TypeDesc(f"int[{len(value)}]")
    if all(isinstance(item, float) for item in value):
        # EXR camera matrices (worldToCamera, worldToNDC) must stay matrices.
        shapes = {16: "matrix", 9: "matrix33"}
        return oiio.TypeDesc(shapes.get(len(value), f"float[{len(value)}]"))
    if all(isinstance(item, str) for item in value):
        return oiio.TypeDesc(f"string[{len(value)}]")
    return None


# Attributes measured in pixels (or pixels per unit) of the source frame. An operator that
# changes the resolution (a 2x super-resolution) must change them with it, or a 2x frame claims
# the old pixel density / centre. Display and data windows are not metadata here: write_plate
# writes a fresh window of the new size.
_PER_X = ("XResolution", "Exif:PixelXDimension", "dpx:XCenter")
_PER_Y = ("YResolution", "Exif:PixelYDimension", "dpx:YCenter")


def resized_metadata(metadata: dict, scale_x: float, scale_y: float) -> dict:
    """``metadata`` for a frame resampled by (scale_x, scale_y): pixel counts, centres and pixel
    densities scale (the physical size stays), pixel aspect ratio follows a non-uniform scale;
    timecode, frame rate, key code and everything else are unchanged."""
    out = dict(metadata)
    for names, factor in ((_PER_X, scale_x), (_PER_Y, scale_y)):
        for name in names:
            value = out.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            out[name] = type(value)(round(value * factor)) if isinstance(value, int) else value * factor
    aspect = out.get("PixelAspectRatio")
    if isinstance(aspect, float) and scale_x != scale_y:
        out["PixelAspectRatio"] = aspect * scale_y / scale_x
    return out
