"""One correction per shot: temporal modes, grade records, LUT export read back by real consumers
(OpenImageIO's oiiotool and OCIO's FileTransform), farm chunks, ComfyUI batches."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bake_node.cli import cli
from bake_node.node import get_operator
from bake_node.operators.bake import DEFAULT_CHECKPOINT
from bake_node.shot_grade import combine
from tests.bake_node.test_global_model import make_global_checkpoint
from tests.test_render_cli import read, write_raw

FRAMES = range(1001, 1007)
OIIOTOOL = shutil.which("oiiotool") or str(Path(sys.executable).with_name("oiiotool"))


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def panning_plate(folder, frames=FRAMES, h=48, w=64):
    """16-bit sRGB PNGs: a photo-like gradient panning across frames, with per-frame grain."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:h, 0:w * 2] / np.array([h, w * 2])[:, None, None]
    scene = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y * (1 - x), 0.6 - 0.4 * x * y], axis=2)
    for i, n in enumerate(frames):
        view = scene[:, 4 * i:4 * i + w] + np.random.default_rng(n).normal(0, 0.02, (h, w, 3))
        write_raw(folder / f"p.{n}.png", np.rint(np.clip(view, 0, 1) * 65535).astype(np.uint16), "uint16")
    return str(folder / "p.####.png")


@pytest.fixture(scope="module")
def gckpt(tmp_path_factory):
    return make_global_checkpoint(tmp_path_factory.mktemp("g") / "global.safetensors")


def frames_of(folder):
    return {p.name: read(p)[0] for p in sorted(Path(folder).glob("*.png"))}


def test_combine_shot_window_frame():
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert np.array_equal(combine(rows, "frame", 3), rows)
    assert np.allclose(combine(rows, "shot", 3), np.repeat([[5.0, 6.0]], 6, axis=0))
    window = combine(rows, "window", 3)  # centred, shortened at the ends
    assert np.allclose(window[0], rows[:2].mean(0)) and np.allclose(window[3], rows[2:5].mean(0))
    assert np.allclose(window[5], rows[4:].mean(0)) and np.array_equal(combine(rows, "window", 1), rows)


def test_temporal_modes_through_render(tmp_path, gckpt):
    plate = panning_plate(tmp_path / "plate")
    common = ["--checkpoint", gckpt, "-q"]
    for mode in ("shot", "frame", "window"):
        bake("render", plate, "-o", tmp_path / mode, "--temporal", mode, "--window", "1", *common)
    shot, frame, window1 = (frames_of(tmp_path / m) for m in ("shot", "frame", "window"))
    assert all(np.array_equal(window1[k], frame[k]) for k in frame)  # a 1-frame window is frame mode
    assert any(not np.array_equal(shot[k], frame[k]) for k in frame)
    bake("render", plate, "-o", tmp_path / "auto", *common)  # the default for the global model is shot
    assert all(np.array_equal(a, shot[k]) for k, a in frames_of(tmp_path / "auto").items())
    record = json.loads(next((tmp_path / "shot" / ".bake-seq").glob("p.1003.png.json")).read_text())
    assert record["operator"]["temporal"] == "shot" and len(record["operator"]["grade_sha256"]) == 16
    # One correction per shot: every frame's change of colour is the same function of the colour.
    op = get_operator("bake")
    op.prepare({"checkpoint": gckpt, "device": "cpu", "tile": 0, "temporal": "shot"})
    grade = op.analyse(list(FRAMES), lambda n: (read(tmp_path / "plate" / f"p.{n}.png")[0]).astype(np.float32))
    assert (grade.parameters == grade.parameters[0]).all()
    # The estimate over other frames is another correction: resume sees the difference.
    out = bake("render", plate, "-o", tmp_path / "shot", "--frames", "1001-1003", *common[:2])
    assert "0 already done, 3 to render" in out.stderr


def test_grade_record_reproduces_the_render_bit_for_bit_and_refuses_overwrite(tmp_path, gckpt):
    plate = panning_plate(tmp_path / "plate")
    bake("render", plate, "-o", tmp_path / "shot", "--checkpoint", gckpt, "-q")
    bake("grade", plate, "-o", tmp_path / "sh.json", "--checkpoint", gckpt)
    bake("render", plate, "-o", tmp_path / "given", "--checkpoint", gckpt, "--grade", tmp_path / "sh.json", "-q")
    want = frames_of(tmp_path / "shot")
    assert all(np.array_equal(a, want[k]) for k, a in frames_of(tmp_path / "given").items())
    # the same fingerprint: a render given the record sees the estimated render's frames as done
    out = bake("render", plate, "-o", tmp_path / "shot", "--checkpoint", gckpt, "--grade", tmp_path / "sh.json")
    assert "6 already done, 0 to render" in out.stderr
    failed = bake("grade", plate, "-o", tmp_path / "sh.json", "--checkpoint", gckpt, code=6)
    assert "already exists" in failed.stderr and failed.stderr.count("\n") == 1
    failed = bake("grade", plate, "-o", tmp_path / "w.cube", "--checkpoint", gckpt, "--temporal", "window", code=2)
    assert "no single LUT" in failed.stderr
    # a record for other frames, or a damaged one, is one line
    bake("grade", plate, "-o", tmp_path / "part.json", "--checkpoint", gckpt, "--frames", "1001-1003")
    failed = bake("render", plate, "-o", tmp_path / "x", "--checkpoint", gckpt, "--grade", tmp_path / "part.json",
                  code=2)
    assert "does not cover frame 1004" in failed.stderr and not list((tmp_path / "x").glob("*.png"))
    data = json.loads((tmp_path / "sh.json").read_text())
    data["parameters"][0][3] = float("nan")
    (tmp_path / "bad.json").write_text(json.dumps(data).replace("NaN", "1e999"))
    failed = bake("render", plate, "-o", tmp_path / "y", "--checkpoint", gckpt, "--grade", tmp_path / "bad.json", code=2)
    assert "NaN or infinite" in failed.stderr and failed.stderr.count("\n") == 1
    data["parameters"] = [[0.0] * 5]
    (tmp_path / "short.json").write_text(json.dumps(data))
    failed = bake("render", plate, "-o", tmp_path / "y", "--checkpoint", gckpt, "--grade", tmp_path / "short.json", code=2)
    assert "rows of" in failed.stderr


def assert_within_lut_tolerance(codes):
    """The README's stated tolerance of a 65^3 LUT against the render, in 16-bit codes (measured
    here: mean 0.24, 99.9th percentile 4, max 11; the error sits where the grade bends sharply,
    near black and at the gamut's edge, which the lattice's 1/64 steps cannot follow)."""
    assert codes.mean() <= 0.5 and np.percentile(codes, 99.9) <= 6 and codes.max() <= 16


@pytest.mark.skipif(not Path(OIIOTOOL).exists(), reason="oiiotool is not installed")
def test_lut_applied_by_oiiotool_and_ocio_reproduces_the_render(tmp_path):
    # The shipped model: its grades are what users export (random test weights make wild ones).
    gckpt = str(DEFAULT_CHECKPOINT)
    plate = panning_plate(tmp_path / "plate")
    bake("render", plate, "-o", tmp_path / "shot", "--checkpoint", gckpt, "-q")
    want = frames_of(tmp_path / "shot")
    for ext in (".cube", ".clf", ".spi3d"):
        lut = tmp_path / f"sh{ext}"
        bake("grade", plate, "-o", lut, "--checkpoint", gckpt)
        sidecar = json.loads((tmp_path / f"sh{ext}.json").read_text())
        assert sidecar["lut_size"] == 65 and sidecar["lut_colorspace"] == "sRGB Encoded Rec.709 (sRGB)"
        assert sidecar["checkpoint_sha256"] and sidecar["frames"] == list(FRAMES)
        # bake-seq applying the LUT file (OCIO FileTransform, tetrahedral)
        bake("render", plate, "-o", tmp_path / f"lut{ext[1:]}", "--checkpoint", gckpt, "--grade", lut, "-q")
        codes = [np.abs(a - want[k]) * 65535 for k, a in frames_of(tmp_path / f"lut{ext[1:]}").items()]
        assert_within_lut_tolerance(np.concatenate(codes))
    # oiiotool, as a pipeline would apply it, with no bake-seq involved
    (tmp_path / "oiio").mkdir()
    for n in FRAMES:
        done = subprocess.run([OIIOTOOL, str(tmp_path / "plate" / f"p.{n}.png"), "--ociofiletransform",
                               str(tmp_path / "sh.cube"), "-d", "uint16", "-o", str(tmp_path / "oiio" / f"p.{n}.png")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    codes = np.concatenate([(np.abs(a - want[k]) * 65535).ravel() for k, a in frames_of(tmp_path / "oiio").items()])
    assert_within_lut_tolerance(codes)
    assert codes.mean() > 0  # it is the LUT, not a copy of the render


def test_per_pixel_presets_work_frame_by_frame(tmp_path, tiny_checkpoint):
    plate = panning_plate(tmp_path / "plate", frames=range(1001, 1003))
    bake("render", plate, "-o", tmp_path / "auto", "--checkpoint", tiny_checkpoint, "-q")  # auto = frame here
    failed = bake("render", plate, "-o", tmp_path / "x", "--checkpoint", tiny_checkpoint, "--temporal", "shot", code=2)
    assert "needs the global BakeNet" in failed.stderr and failed.stderr.count("\n") == 1


def test_an_oversized_lut_sidecar_is_refused_unread(tmp_path, monkeypatch):
    import bake_node.shot_grade
    from bake_node.errors import SettingsError
    from bake_node.lut import open_lut

    lut = tmp_path / "x.cube"
    lut.write_text("LUT_3D_SIZE 2\n" + "0 0 0\n1 0 0\n0 1 0\n1 1 0\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n")
    assert open_lut(str(lut)).colorspace  # no sidecar: the working space
    (tmp_path / "x.cube.json").write_text(json.dumps({"lut_colorspace": "ACEScg", "pad": "x" * 4000}))
    monkeypatch.setattr(bake_node.shot_grade, "MAX_RECORD_BYTES", 1024)
    with pytest.raises(SettingsError, match="sidecar is larger than"):
        open_lut(str(lut))
