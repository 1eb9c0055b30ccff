"""Shaped LUTs for plates outside the working space (camera log, film density, half-float
scene-linear): `bake-seq grade -o X.clf` written, applied by oiiotool (no bake-seq involved)
and by `render --grade`, against `bake-seq render` of the same frames."""
import json
import subprocess
from pathlib import Path

import numpy as np
import PyOpenColorIO as OCIO
import pytest

from bake_node.lut import SHAPED_SIZE, half_shaper, shaped_axis
from bake_node.operators.bake import DEFAULT_CHECKPOINT
from bake_seq.ocio.config import DEFAULT_CONFIG
from bake_seq.train.bundled import HOLDOUT, bundled_image
from tests.bake_node.test_shot_grade import OIIOTOOL, bake, codes
from tests.test_render_cli import read, write_raw

FRAMES = (1001, 1002)
PHOTOS = (1001, 1002, 1003)  # one held-out photograph each
needs_oiiotool = pytest.mark.skipif(not Path(OIIOTOOL).exists(), reason="oiiotool is not installed")


def test_shaped_axis_puts_points_on_the_edges_and_covers_the_range():
    for low, high in ((-440.0, 6.8), (-65504.0, 65504.0), (0.0, 1.0), (-0.2, 1.0)):
        points = shaped_axis(65, low, high)
        assert len(points) == 65 and (np.diff(points) > 0).all()
        assert 0.0 in points and 1.0 in points and points[0] <= low and points[-1] >= high
        assert np.array_equal(points, points.astype(np.float16).astype(np.float64))  # exact in the shaper
        inside = points[(points >= 0) & (points <= 1)]
        assert np.diff(inside)[0] < 0.001 and np.diff(inside)[-1] < 0.002  # finest at the edges
        shaper = half_shaper(points)  # each point lands on its lattice coordinate, exactly
        bits = points.astype(np.float16).view(np.uint16)
        assert np.array_equal(shaper[bits], np.linspace(0, 1, 65, dtype=np.float32))
    assert len(shaped_axis(17, -65504.0, 65504.0)) == 17


def scene(n, h=48, w=64):
    """Scene-linear Rec.709 light: hues across, 2^-6 to 2^2 of a lit grey down, grain; pans with n."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    hue = 2 * np.pi * (x + 0.05 * n)
    saturation = 0.1 + 0.4 * (0.5 + 0.5 * np.sin(3 * np.pi * y + hue))
    colour = 1 + saturation[..., None] * np.stack([np.cos(hue), np.cos(hue - 2.1), np.cos(hue + 2.1)], -1)
    light = colour * 0.36 * 2.0 ** (2 - 8 * y)[..., None]
    return (light * np.exp(np.random.default_rng(n).normal(0, 0.03, light.shape))).astype(np.float32)


def photo(n):
    """Linear Rec.709 light of a held-out photograph (one per frame; the top-left 300 x 400 of
    chelsea, coffee, rocket), 1.5 x its decoded sRGB: the plates docs/shots.md measures."""
    rgb = np.ascontiguousarray(bundled_image(HOLDOUT[PHOTOS.index(n)])[:300, :400, :3], np.float32) / 255
    return encode(rgb, "Linear Rec.709 (sRGB)", "sRGB Encoded Rec.709 (sRGB)") * 1.5


def encode(light, space, source="Linear Rec.709 (sRGB)"):
    pixels = np.ascontiguousarray(light, np.float32).copy()
    config = OCIO.Config.CreateFromFile(DEFAULT_CONFIG)
    config.getProcessor(source, space).getDefaultCPUProcessor().applyRGB(pixels.reshape(-1))
    return pixels


def plate(folder, space, light=scene, frames=FRAMES):
    """10-bit DPX code values for log spaces (a little flare: a scan holds no zero light), half
    floats for ACEScg."""
    folder.mkdir(parents=True)
    for n in frames:
        if space == "ACEScg":
            write_raw(folder / f"{n}.exr", encode(light(n), space).astype(np.float16), "half")
        else:
            codes = np.rint(np.clip(encode(light(n) + 0.002, space), 0, 1) * 1023)
            write_raw(folder / f"{n}.dpx", np.rint(codes * 65535 / 1023).astype(np.uint16), "uint16", bits=10)
    return str(folder / ("####.exr" if space == "ACEScg" else "####.dpx"))


def codes_off(tmp_path, sequence, lut, reference, frames=FRAMES):
    """16-bit codes between oiiotool applying ``lut`` to each plate frame and the render's TIFFs."""
    found = []
    for n in frames:
        applied = tmp_path / f"oiio.{Path(lut).stem}.{n}.tif"
        done = subprocess.run([OIIOTOOL, sequence.replace("####", str(n)), "--ociofiletransform", str(lut),
                               "-d", "uint16", "-o", str(applied)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        found.append(np.abs(codes(read(applied)[0]) - codes(read(reference / f"{n}.tif")[0])).ravel())
    return np.concatenate(found)


LOG_AND_FLOAT = [("ARRI LogC3 (EI800)", []), ("ADX10", []),
                 ("ACEScg", ["--output-colorspace", "ACEScct"])]  # scene-linear, compared as 16-bit ACEScct codes


@needs_oiiotool
@pytest.mark.parametrize("space, options", LOG_AND_FLOAT)
def test_a_shaped_clf_holds_photographed_plates_to_two_codes(tmp_path, space, options):
    """The target: p99.9 <= 2 and max <= 16 16-bit codes against the render, applied by oiiotool.
    Measured (docs/shots.md): LogC3 1/8, ADX10 2/7, EXR 2/6 at the default 97 points per axis;
    ADX10 3/9 at 65. Of the 2, up to 1 is oiiotool's own: it reads a 10-bit DPX code c as
    (c * 64 + c // 16) / 65535 where bake-seq reads c / 1023 (the render's exact function fed
    oiiotool's values is 1 code off for 28 % of them)."""
    sequence = plate(tmp_path / "plate", space, photo, PHOTOS)
    common = ["-i", space, *options, "--checkpoint", DEFAULT_CHECKPOINT]
    bake("render", sequence, *common, "-o", tmp_path / "ref" / "####.tif", "-q")
    bake("grade", sequence, *common, "-o", tmp_path / "sh.clf")
    sidecar = json.loads((tmp_path / "sh.clf.json").read_text())
    assert sidecar["lut_lattice"] == "shaped" and sidecar["lut_size"] == SHAPED_SIZE
    off = codes_off(tmp_path, sequence, tmp_path / "sh.clf", tmp_path / "ref", PHOTOS)
    assert np.percentile(off, 99.9) <= 2 and off.max() <= 16


# Bounds measured on these synthetic plates (p99.9 and max, 16-bit codes) at the default 97
# points: LogC3 3/4, ADX10 5/7, EXR (as ACEScct) 4/5 (at 65: 6/7, 11/14, 7/9); an even lattice
# over the codes (65, a .cube) LogC3 17/36, ADX10 23/50, and cannot hold the EXR at all. Their
# pixels spread evenly over 8 stops, 5 below 18 % grey, where the model's grade bends most, so
# they are held to these bounds rather than the photographs' 2 codes.
@needs_oiiotool
@pytest.mark.parametrize("space, options, p999", [(*case, p999) for case, p999 in zip(LOG_AND_FLOAT, (4, 6, 5))])
def test_a_shaped_clf_of_a_log_or_float_plate_holds_the_render(tmp_path, space, options, p999):
    sequence = plate(tmp_path / "plate", space)
    common = ["-i", space, *options, "--checkpoint", DEFAULT_CHECKPOINT]
    bake("render", sequence, *common, "-o", tmp_path / "ref" / "####.tif", "-q")
    bake("grade", sequence, *common, "-o", tmp_path / "sh.clf")
    sidecar = json.loads((tmp_path / "sh.clf.json").read_text())
    assert sidecar["lut_lattice"] == "shaped" and sidecar["lut_colorspace"] == space  # auto: shaped for .clf
    shaped = codes_off(tmp_path, sequence, tmp_path / "sh.clf", tmp_path / "ref")
    assert np.percentile(shaped, 99.9) <= p999 and shaped.max() <= 16 and shaped.mean() <= 1
    # bake-seq applying the same file: within a code of oiiotool (from the working space, not
    # through the plate's space and back)
    bake("render", sequence, *common, "--grade", tmp_path / "sh.clf", "-o", tmp_path / "lut" / "####.tif", "-q")
    for n in FRAMES:
        by_oiio = read(tmp_path / f"oiio.sh.{n}.tif")[0]
        assert np.abs(read(tmp_path / "lut" / f"{n}.tif")[0] - by_oiio).max() * 65535 <= 2
    if space == "ACEScg":
        return  # an even lattice over [0, 1] cannot hold scene-linear values: nothing to compare
    # the even lattice over the plate's codes (what a .cube holds) is what the shaper fixes
    even = bake("grade", sequence, *common, "-o", tmp_path / "even.cube")
    assert "note: a .cube holds no colour conversion" in even.stderr
    assert json.loads((tmp_path / "even.cube.json").read_text())["lut_lattice"] == "even"
    plain = codes_off(tmp_path, sequence, tmp_path / "even.cube", tmp_path / "ref")
    assert np.percentile(plain, 99.9) >= 1.5 * np.percentile(shaped, 99.9) and plain.max() >= 2 * shaped.max()


def test_only_a_clf_holds_a_shaped_lattice(tmp_path):
    sequence = plate(tmp_path / "plate", "ACEScg")
    failed = bake("grade", sequence, "-i", "ACEScg", "--lut-space", "shaped", "-o", tmp_path / "x.cube", code=2)
    assert "cannot hold the colour conversions of a shaped LUT" in failed.stderr and failed.stderr.count("\n") == 1
    assert not list(tmp_path.glob("x.cube*"))
