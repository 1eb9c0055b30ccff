import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as OCIO
import pytest

from bake_seq.ocio.config import DEFAULT_CONFIG, WORKING_SPACE
from bake_seq.ocio.convert import convert


def plate(height=37, width=53, low=-0.5, high=8.0, seed=0):
    # Odd, non-square sizes catch width/height mix-ups; the range covers HDR and negatives.
    return np.random.default_rng(seed).uniform(low, high, (height, width, 3)).astype(np.float32)


def test_matches_pyopencolorio(studio):
    pixels = plate()
    expected = pixels.copy()
    cpu = studio.getProcessor("ACEScg", WORKING_SPACE).getDefaultCPUProcessor()
    cpu.applyRGB(expected)  # per-pixel, so the flat buffer is fine as a reference
    out = convert(pixels, studio, "ACEScg", WORKING_SPACE)
    # bake-seq uses the exact (not fast-pow) processor: agree to float rounding.
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == pixels.shape


def test_returns_new_array_and_leaves_input(studio):
    pixels = plate()
    before = pixels.copy()
    out = convert(pixels, studio, "ACEScg", WORKING_SPACE)
    np.testing.assert_array_equal(pixels, before)
    assert not np.shares_memory(out, pixels)


def test_identity_when_same_space(studio):
    pixels = plate()
    out = convert(pixels, studio, "ACEScg", "scene_linear")  # role names the same space
    np.testing.assert_array_equal(out, pixels)
    assert not np.shares_memory(out, pixels)


def test_accepts_non_contiguous_and_other_dtypes(studio):
    pixels = plate(20, 30)
    view = pixels[:, ::2].astype(np.float64)
    expected = convert(np.ascontiguousarray(pixels[:, ::2]), studio, "ACEScg", WORKING_SPACE)
    np.testing.assert_array_equal(convert(view, studio, "ACEScg", WORKING_SPACE), expected)


def test_tall_and_wide_frames_convert_per_pixel(studio):
    # 200 rows span several worker bands; every pixel must match its 1×1 conversion.
    pixels = plate(200, 7)
    out = convert(pixels, studio, "ACEScg", WORKING_SPACE)
    for y, x in [(0, 0), (63, 6), (64, 0), (199, 3)]:
        single = convert(pixels[y:y + 1, x:x + 1], studio, "ACEScg", WORKING_SPACE)
        np.testing.assert_array_equal(out[y, x], single[0, 0])
    turned = convert(pixels.transpose(1, 0, 2), studio, "ACEScg", WORKING_SPACE)
    np.testing.assert_array_equal(turned, out.transpose(1, 0, 2))


def test_out_of_range_values_survive_round_trip(studio):
    pixels = plate(low=-0.5, high=16.0)
    encoded = convert(pixels, studio, "ACEScg", WORKING_SPACE)
    assert encoded.max() > 1.0 and encoded.min() < 0.0  # not clipped on the way
    back = convert(encoded, studio, WORKING_SPACE, "ACEScg")
    np.testing.assert_allclose(back, pixels, rtol=1e-5, atol=1e-5)


def test_data_space_is_not_converted(studio):
    pixels = plate()
    np.testing.assert_array_equal(convert(pixels, studio, "ACEScg", "Raw"), pixels)


def test_rejects_alpha(studio):
    with pytest.raises(ValueError, match="H×W×3"):
        convert(np.zeros((4, 4, 4), np.float32), studio, "ACEScg", WORKING_SPACE)


def test_hand_written_config(tiny):
    config = OCIO.Config.CreateFromFile(tiny)
    pixels = plate(low=0.0, high=2.0)
    out = convert(pixels, config, "lin_tiny", "gamma22")
    np.testing.assert_allclose(out, pixels ** (1 / 2.2), rtol=1e-5)


def test_agrees_with_oiiotool(studio, tmp_path):
    oiiotool = Path(sys.executable).with_name("oiiotool")
    oiiotool = str(oiiotool) if oiiotool.exists() else shutil.which("oiiotool")
    if not oiiotool:
        pytest.skip("oiiotool not installed")
    pixels = plate(low=-0.25, high=4.0)
    src, dst = tmp_path / "in.exr", tmp_path / "out.exr"
    out = oiio.ImageOutput.create(str(src))
    out.open(str(src), oiio.ImageSpec(pixels.shape[1], pixels.shape[0], 3, "float"))
    out.write_image(pixels)
    out.close()
    subprocess.run([oiiotool, "--colorconfig", DEFAULT_CONFIG, str(src),
                    "--colorconvert", "ACEScg", WORKING_SPACE, "-d", "float", "-o", str(dst)],
                   check=True, capture_output=True)
    theirs = oiio.ImageBuf(str(dst)).get_pixels(oiio.FLOAT)
    # OIIO bundles OCIO 2.5 with the fast-pow default processor: ~1e-5 apart.
    np.testing.assert_allclose(convert(pixels, studio, "ACEScg", WORKING_SPACE), theirs, atol=1e-4)
