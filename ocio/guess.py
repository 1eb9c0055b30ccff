"""Which colour space a plate is in when the user did not say (``--input-colorspace``).

The first row that applies wins. Each row tries its candidates in order and takes the first
one the config knows (names, aliases and roles, case-insensitive), so the policy works with
the built-in ACES studio config, nuke-default, spi-vfx and most studio configs.

| # | evidence | colour space (first one the config has) | reason printed (example) |
|---|----------|------------------------------------------|--------------------------|
| 1 | an `oiio:ColorSpace` tag the config knows: as a name, alias or role, via OIIO's own names (`sRGB`, `Linear`, `KodakLog`, `srgb_rec709_scene`, ...) mapped by hand, or via OCIO 2.5 interop IDs | the tagged space | `file metadata oiio:ColorSpace='lin_ap1_scene', read as 'ACEScg'` |
| 2 | the config's file rules match the path with a rule other than `Default` | the rule's space | `config file rule 'exr_plates'` |
| 3 | float pixels, or `.exr .sxr .mxr .hdr .rgbe .pfm` | role `scene_linear` (ACEScg), `linear` | `EXR with no colour-space tag: scene-linear 'ACEScg' (scene_linear role)` |
| 4 | integer `.dpx .cin` | `Cineon`, `ADX10`, `lg10`, role `compositing_log` | `DPX with no colour-space tag: film log 'ADX10'` |
| 5 | any other integer image (PNG, JPEG, TIFF, ...) | `sRGB Encoded Rec.709 (sRGB)`, `srgb_tx`, `sRGB`, roles `color_picking`, `texture_paint` | `PNG 8/16-bit display image: sRGB 'sRGB Encoded Rec.709 (sRGB)'` |

If none of a row's candidates exists, the user gets a ColourError asking for
``--input-colorspace``. A tag the config does not know is skipped and named in the reason.

Why these rows:
 1. A tag is the only evidence written by whoever made the file. OpenImageIO 3.2 reports
    one for every PNG and JPEG (``srgb_rec709_scene`` unless a gAMA/sRGB chunk says
    otherwise), for EXRs carrying ``colorInteropID``, and for DPX from the header's transfer
    field (Logarithmic -> ``KodakLog``, Linear -> ``lin_rec709_scene``, ITU-R 709 ->
    ``srgb_rec709_scene``). TIFF and untagged EXR/DPX carry none.
 2. File rules are how a studio states its naming conventions; the built-in config has
    only the Default rule (ACES2065-1 for everything), which is wrong for PNG/JPEG, so
    the Default rule is never used as evidence.
 3. Float files hold scene-linear light in practice; scene_linear is the config's own
    answer to "which linear".
 4. DPX and Cineon files are by convention log film scans; Nuke with its nuke-default
    config reads DPX as Cineon. The ACES configs have no Cineon space: ADX10 is their
    10-bit printing-density log (same 95 black code and 500 codes per density unit as
    Cineon), the closest honest match. Untagged video or camera-log DPX must be named with
    --input-colorspace. (A DPX header saying ITU-R 709 reaches row 1 as OIIO's
    ``srgb_rec709_scene``: OIIO's reading, the sRGB curve rather than Camera Rec.709.)
 5. 8/16-bit PNG, JPEG and TIFF are display-referred images, overwhelmingly sRGB.
"""

from __future__ import annotations

import PyOpenColorIO as OCIO

from bake_seq.ocio.errors import ColourError

# OpenImageIO's spellings (old names and colour-interop IDs) -> candidates in OCIO configs.
_SRGB = ("sRGB Encoded Rec.709 (sRGB)", "srgb_rec709_scene", "srgb_tx", "sRGB")
_LIN_709 = ("Linear Rec.709 (sRGB)", "lin_rec709_scene", "lin_srgb", "linear")
_FILM_LOG = ("Cineon", "ADX10", "Input - ADX - ADX10", "lg10", "compositing_log")
_OIIO_NAMES = {
    "srgb": _SRGB, "srgb_rec709_scene": _SRGB, "srgb_texture": _SRGB,
    "linear": _LIN_709, "lin_srgb": _LIN_709, "lin_rec709": _LIN_709, "lin_rec709_scene": _LIN_709,
    "rec709": ("Camera Rec.709", "rec709_camera", "rec709"),
    "g22_rec709": ("Gamma 2.2 Encoded Rec.709", "g22_rec709_scene"),
    "gammacorrected": ("Gamma 2.2 Encoded Rec.709", "g22_rec709_scene"),
    "kodaklog": _FILM_LOG, "cineon": _FILM_LOG,
    "lin_ap1_scene": ("ACEScg",), "lin_ap0_scene": ("ACES2065-1",),
    "raw": ("data", "Raw"), "none": ("data", "Raw"),
}

_FLOAT_EXTENSIONS = {"exr", "sxr", "mxr", "hdr", "rgbe", "pfm"}
_LOG_EXTENSIONS = {"dpx", "cin"}


def guess_colorspace(config: OCIO.Config, path: str, file_tag: str | None,
                     is_float: bool, extension: str) -> tuple[str, str]:
    """Return ``(colour space, reason)`` for a plate, following the table above."""
    return guess_with_evidence(config, path, file_tag, is_float, extension)[:2]


def guess_with_evidence(config: OCIO.Config, path: str, file_tag: str | None,
                        is_float: bool, extension: str) -> tuple[str, str, str]:
    """``(colour space, reason, evidence)``: evidence is "tag" (row 1), "rule" (row 2) or
    "file type" (rows 3-5: a convention, often wrong for camera-log DPX or untagged EXR)."""
    ext = extension.lower().lstrip(".")
    note = ""
    if file_tag:
        space = _from_tag(config, file_tag)
        if space:
            read_as = "" if space.lower() == file_tag.lower() else f", read as {space!r}"
            return space, f"file metadata oiio:ColorSpace={file_tag!r}{read_as}", "tag"
        note = f" (the file's tag oiio:ColorSpace={file_tag!r} is not in the OCIO config)"

    if not config.filepathOnlyMatchesDefaultRule(path):
        space, index = config.getColorSpaceFromFilepath(path)
        found = config.getColorSpace(space) if space else None
        if found is not None:
            rule = config.getFileRules().getName(index)
            return found.getName(), f"config file rule {rule!r}{note}", "rule"

    kind = ext.upper() or "file"
    if is_float or ext in _FLOAT_EXTENSIONS:
        why = f"{kind} with no colour-space tag: scene-linear {{}}"
        candidates = ("scene_linear", "linear")
    elif ext in _LOG_EXTENSIONS:
        why, candidates = f"{kind} with no colour-space tag: film log {{}}", _FILM_LOG
    else:
        why = f"{kind} 8/16-bit display image: sRGB {{}}"
        candidates = _SRGB + ("color_picking", "texture_paint")

    for candidate in candidates:
        found = config.getColorSpace(candidate)
        if found is not None:
            role = f" ({candidate} role)" if config.hasRole(candidate) else ""
            how = repr(found.getName()) + role
            return found.getName(), why.format(how) + note, "file type"
    raise ColourError(
        f"cannot tell the colour space of {path!r}: "
        f"the OCIO config has none of {', '.join(candidates)}",
        "pass --input-colorspace with a name from the config (bake-seq info --list-colorspaces)")


def _from_tag(config: OCIO.Config, tag: str) -> str | None:
    found = config.getColorSpace(tag)
    if found is not None:
        return found.getName()
    for candidate in _OIIO_NAMES.get(tag.lower(), ()):
        found = config.getColorSpace(candidate)
        if found is not None:
            return found.getName()
    # OCIO 2.5 configs can label spaces with the same interop IDs OpenImageIO writes.
    for space in config.getColorSpaces(OCIO.SEARCH_REFERENCE_SPACE_ALL, OCIO.COLORSPACE_ALL):
        if space.getInteropID() and space.getInteropID().lower() == tag.lower():
            return space.getName()
    return None
