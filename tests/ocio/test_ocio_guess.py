import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as OCIO
import pytest

from bake_seq.ocio.config import guess_colorspace
from bake_seq.ocio.errors import ColourError

SRGB = "sRGB Encoded Rec.709 (sRGB)"


def write_and_read_tag(path, fmt, **attributes):
    """Write a small image with OIIO and return the oiio:ColorSpace it reads back."""
    spec = oiio.ImageSpec(8, 4, 3, fmt)
    for name, value in attributes.items():
        spec.attribute(name, value)
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), spec)
    out.write_image(np.full((4, 8, 3), 0.25, np.float32))
    out.close()
    read = oiio.ImageInput.open(str(path))
    tag = read.spec().getattribute("oiio:ColorSpace")
    read.close()
    return tag


@pytest.mark.parametrize("path, is_float, space, reason", [
    ("p.png", False, SRGB, "PNG 8/16-bit display image: sRGB"),
    ("p.JPG", False, SRGB, "JPG 8/16-bit display image: sRGB"),
    ("p.tif", False, SRGB, "TIF 8/16-bit display image: sRGB"),
    ("p.exr", True, "ACEScg",
     "EXR with no colour-space tag: scene-linear 'ACEScg' (scene_linear role)"),
    ("p.tif", True, "ACEScg", "TIF with no colour-space tag"),
    ("p.dpx", False, "ADX10", "DPX with no colour-space tag: film log 'ADX10'"),
])
def test_untagged_files(studio, path, is_float, space, reason):
    guessed, why = guess_colorspace(studio, path, None, is_float, path.rsplit(".", 1)[1])
    assert guessed == space
    assert why.startswith(reason)


def test_tag_wins_over_extension(studio):
    assert guess_colorspace(studio, "p.exr", "ACEScct", True, "exr") == (
        "ACEScct", "file metadata oiio:ColorSpace='ACEScct'")


def test_unknown_tag_is_reported_and_ignored(studio):
    space, why = guess_colorspace(studio, "p.exr", "mystery", True, ".exr")
    assert space == "ACEScg" and "'mystery' is not in the OCIO config" in why


@pytest.mark.parametrize("name, fmt, attributes, tag, space", [
    # OIIO 3.2 tags every PNG as sRGB unless told otherwise...
    ("plain.png", "uint16", {}, "srgb_rec709_scene", SRGB),
    # ...and stores linear as gAMA 1.0, which reads back as Rec.709 linear (primaries lost).
    ("lin.png", "uint16", {"oiio:ColorSpace": "lin_rec709_scene"}, "lin_rec709_scene",
     "Linear Rec.709 (sRGB)"),
    # EXR: no tag unless written; OIIO stores colorInteropID and reads back the interop ID.
    ("plain.exr", "half", {}, None, "ACEScg"),
    ("acescg.exr", "half", {"oiio:ColorSpace": "ACEScg"}, "lin_ap1_scene", "ACEScg"),
    ("srgb.exr", "half", {"oiio:ColorSpace": SRGB}, "srgb_rec709_scene", SRGB),
    # DPX: OIIO derives the tag from the header's transfer field.
    ("log.dpx", "uint16", {"dpx:Transfer": "Logarithmic"}, "KodakLog", "ADX10"),
    ("plain.dpx", "uint16", {}, None, "ADX10"),
])
def test_oiio_written_files(studio, tmp_path, name, fmt, attributes, tag, space):
    path = tmp_path / name
    read_tag = write_and_read_tag(path, fmt, **attributes)
    assert read_tag == tag
    is_float = fmt in ("half", "float")
    assert guess_colorspace(studio, str(path), read_tag, is_float, path.suffix)[0] == space


def test_config_file_rule_is_used(tmp_path, tiny_config):
    rule = "- !<Rule> {name: gamma_pngs, colorspace: gamma22, pattern: '*', extension: png}\n"
    config = OCIO.Config.CreateFromFile(tiny_config(tmp_path / "rules.ocio", file_rules=rule))
    assert guess_colorspace(config, "/plates/a.0001.png", None, False, "png") == (
        "gamma22", "config file rule 'gamma_pngs'")
    assert guess_colorspace(config, "/plates/a.0001.exr", None, True, "exr")[0] == "linear"


def test_missing_srgb_falls_back_to_colour_picking_role(tmp_path, tiny_config):
    config = OCIO.Config.CreateFromFile(
        tiny_config(tmp_path / "picking.ocio", extra_roles="color_picking: gamma22\n"))
    space, why = guess_colorspace(config, "a.png", None, False, "png")
    assert space == "gamma22" and "(color_picking role)" in why


def test_missing_everything_asks_for_input_colorspace(tiny):
    config = OCIO.Config.CreateFromFile(tiny)
    with pytest.raises(ColourError) as info:
        guess_colorspace(config, "/plates/a.0001.png", None, False, "png")
    assert "/plates/a.0001.png" in info.value.problem
    assert "--input-colorspace" in info.value.fix
