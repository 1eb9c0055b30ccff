"""`bake-seq info --temporal` on a plate with a known colour change: a panning picture whose
exposure ramps (with one flickering frame) and whose white balance drifts, a hard cut to another
picture. The table, --json, the plot, the stored record and the .ccc (read back by OpenColorIO)
are checked against the change that made the plate; outputs never replace a plate frame."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
import pytest
from click.testing import CliRunner

from bake_node.cli import cli
from bake_node.temporal import DEFLICKER_WINDOW, LUMA, Change, apply, load_analysis
from tests.sequences.conftest import _write_raw as write_raw

FRAMES = list(range(1001, 1013))
CUT = 1009  # first frame of the second picture
FLICKER = 1004  # 0.2 stops brighter than the ramp
H, W, PAN = 96, 144, 3  # px per frame
TOLERANCE = 0.01  # stops: what the measurement must reach on this plate (16-bit, light grain)


def plate_change(n):
    """The change that made frame n from its picture: exposure ramp, flicker, white-balance drift."""
    k = n - FRAMES[0]
    e = 0.05 * k + (0.2 if n == FLICKER else 0.0)
    return Change.of((e + 0.02 * k, e, e - 0.015 * k), (1, 1, 1))


def expected(n):
    """The correction frame n should read: its colour brought to its segment's first frame."""
    first = FRAMES[0] if n < CUT else CUT
    return np.array(plate_change(first).stops) - np.array(plate_change(n).stops)


def picture(seed, h, w):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.zeros((h, w, 3))
    for _ in range(12):
        fx, fy, phase = rng.uniform(2, 14), rng.uniform(2, 14), rng.uniform(0, 2 * np.pi)
        out += rng.uniform(0.02, 0.06, 3) * np.sin(2 * np.pi * (fx * x + fy * y) + phase)[..., None]
    return np.clip(0.45 + out + np.stack([0.15 * x, 0.1 * y, -0.1 * x], 2), 0.05, 0.85)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plate")
    pictures = [picture(seed, H, W + PAN * len(FRAMES)) for seed in (1, 2)]
    for i, n in enumerate(FRAMES):
        view = pictures[n >= CUT][:, PAN * i:PAN * i + W].astype(np.float32)
        pixels = apply(plate_change(n), view) + np.random.default_rng(n).normal(0, 0.004, view.shape)
        write_raw(folder / f"p.{n}.png", np.rint(np.clip(pixels, 0, 1) * 65535).astype(np.uint16), "uint16")
    return folder


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_the_table_reads_the_ramp_the_flicker_the_drift_and_the_cut(plate):
    lines = bake("info", plate / "p.####.png", "--temporal").stdout.splitlines()
    table = {int(line.split()[0]): [float(v) for v in line.split()[1:]] for line in lines[2:-1]}
    assert sorted(table) == FRAMES
    for n, (segment, exposure, red, blue, contrast, confidence) in table.items():
        want = expected(n)
        assert segment == (n >= CUT)
        assert abs(exposure - np.dot(LUMA, want)) < TOLERANCE, n
        assert abs(red - (want[0] - want[1])) < TOLERANCE and abs(blue - (want[2] - want[1])) < TOLERANCE, n
        assert abs(contrast - 1) < 0.02 and confidence > 0.5, n
    # the largest correction is the ramp's end before the cut (0.35 stops), white balance too
    assert lines[-1].startswith(f"cuts: {CUT}; largest exposure -0.3")
    assert "at frame 1008" in lines[-1] and lines[-1].endswith("stops at frame 1008")


def test_json_deflicker_keeps_the_ramp_and_removes_the_flicker(plate):
    first = json.loads(bake("info", plate / "p.####.png", "--temporal", "--json").stdout)
    assert first["cuts"] == [CUT] and first["to"] == "first" and len(first["frames"]) == len(FRAMES)
    assert first["about"]["input_colorspace"] == "sRGB Encoded Rec.709 (sRGB)"
    smooth = json.loads(bake("info", plate / "p.####.png", "--temporal", "--json", "--to", "deflicker").stdout)
    exposure = {r["frame"]: r["exposure"] for r in smooth["per_frame"]}
    assert smooth["window"] == DEFLICKER_WINDOW and smooth["largest"]["exposure"]["frame"] == FLICKER
    assert abs(exposure[FLICKER] + 0.2) < TOLERANCE  # its 0.2 stops taken out (robust: a lone flash is outvoted)
    assert all(abs(v) < TOLERANCE for n, v in exposure.items() if n != FLICKER)  # the ramp kept, neighbours not pulled


def test_plot_record_and_ccc(plate, tmp_path):
    png, record, ccc = tmp_path / "t.png", tmp_path / "t.json", tmp_path / "t.ccc"
    out = json.loads(bake("info", plate / "p.####.png", "--temporal", "--json",
                          "--plot", png, "--write", record, "--ccc", ccc).stdout)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    spec = oiio.ImageInput.open(str(png)).spec()
    assert (spec.width, spec.height) == (800, 500)

    analysis = load_analysis(str(record))
    assert analysis.cuts == [CUT] and analysis.as_dict()["frames"] == out["frames"]
    assert json.loads(record.read_text())["about"]["sequence"].endswith("p.####.png")

    ns = {"cdl": "urn:ASC:CDL:v1.01"}
    root = ET.parse(ccc).getroot()
    assert "linear Rec.709" in root.find("cdl:Description", ns).text.replace("LINEAR", "linear")
    corrections = root.findall("cdl:ColorCorrection", ns)
    assert [c.get("id") for c in corrections] == [f"frame.{n}" for n in FRAMES]
    for n, correction in zip(FRAMES, corrections):
        slope = [float(v) for v in correction.find("cdl:SOPNode/cdl:Slope", ns).text.split()]
        power = [float(v) for v in correction.find("cdl:SOPNode/cdl:Power", ns).text.split()]
        assert np.allclose(slope, 2.0 ** expected(n), rtol=0.01) and np.allclose(power, 1, atol=0.02), n
        assert correction.find("cdl:SatNode/cdl:Saturation", ns).text == "1"

    # OpenColorIO reads the collection and applies a frame's correction as the analysis states it
    state = analysis.record(1007).state
    cpu = ocio.Config.CreateRaw().getProcessor(ocio.FileTransform(
        src=str(ccc), cccId="frame.1007", interpolation=ocio.INTERP_LINEAR)).getDefaultCPUProcessor()
    linear = [0.02, 0.18, 0.5]
    want = [0.18 * 2 ** s * (x / 0.18) ** c for x, s, c in zip(linear, state.stops, state.contrast)]
    assert np.allclose(cpu.applyRGB(linear), want, rtol=1e-4)


def test_outputs_never_replace_a_plate_frame_or_an_existing_file(plate, tmp_path):
    frame = plate / "p.1003.png"
    before = frame.read_bytes()
    for option in ("--write", "--plot"):
        result = bake("info", plate / "p.####.png", "--temporal", option, frame, "--overwrite", code=6)
        assert result.stderr.startswith("bake-seq: error:") and len(result.stderr.strip().splitlines()) == 1
        assert "is an input" in result.stderr
    assert frame.read_bytes() == before
    taken = tmp_path / "taken.ccc"
    taken.write_text("a colourist's file")
    bake("info", plate / "p.####.png", "--temporal", "--ccc", taken, code=6)
    assert taken.read_text() == "a colourist's file"
    bake("info", plate / "p.####.png", "--temporal", "--ccc", taken, "--overwrite")
    assert "ColorCorrectionCollection" in taken.read_text()


def test_options_that_need_temporal_or_deflicker_are_refused(plate, tmp_path):
    bake("info", plate / "p.####.png", "--ccc", tmp_path / "x.ccc", code=2)
    bake("info", plate / "p.####.png", "--temporal", "--window", "4", code=2)
    bake("info", plate / "p.####.png", "--temporal", "--plot", tmp_path / "x.jpg", code=2)
    assert not list(tmp_path.iterdir())
