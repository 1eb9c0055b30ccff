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


def codes(pixels):
    """A 16-bit file's values, read as floats, as its integer codes again."""
    return np.rint(pixels * 65535)


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
    with pytest.raises(SettingsError, match="LUT sidecar is 4,0[0-9][0-9] bytes, more than the 1,024"):
        open_lut(str(lut))


def test_window_n_averages_n_frames():
    rows = np.arange(12, dtype=np.float64).reshape(6, 2)
    for n in (2, 3, 4, 5):  # N//2 before, (N-1)//2 after: an even N has one more before
        before, after = n // 2, (n - 1) // 2
        assert np.allclose(combine(rows, "window", n)[3], rows[3 - before:3 + after + 1].mean(0))
        assert len(rows[3 - before:3 + after + 1]) == n


@pytest.fixture(scope="module")
def graded(tmp_path_factory, gckpt):
    """A plate, its render and its exact grade record (the test global model)."""
    work = tmp_path_factory.mktemp("graded")
    plate = panning_plate(work / "plate", frames=range(1001, 1004))
    bake("grade", plate, "-o", work / "sh.json", "--checkpoint", gckpt)
    return work, plate


@pytest.mark.skipif(not Path(OIIOTOOL).exists(), reason="oiiotool is not installed")
def test_a_lut_lands_on_the_output_colour_space_its_sidecar_names(tmp_path, graded, gckpt):
    _, plate = graded
    linear = "Linear Rec.709 (sRGB)"
    common = ["--checkpoint", gckpt, "--output-colorspace", linear]
    bake("grade", plate, "-o", tmp_path / "lin.cube", *common)
    assert json.loads((tmp_path / "lin.cube.json").read_text())["lut_output_colorspace"] == linear
    bake("render", plate, "-o", tmp_path / "exact", *common, "-q")
    bake("render", plate, "-o", tmp_path / "lut", *common, "--grade", tmp_path / "lin.cube", "-q")
    exact, lut = frames_of(tmp_path / "exact"), frames_of(tmp_path / "lut")
    for name, pixels in lut.items():
        oiio = tmp_path / f"oiio.{name}"
        subprocess.run([OIIOTOOL, str(Path(plate).parent / name), "--ociofiletransform", str(tmp_path / "lin.cube"),
                        "-d", "uint16", "-o", str(oiio)], check=True, capture_output=True)
        # applied as oiiotool applies it (OCIO 2.6 here, 2.5 in oiiotool); both are 16-bit files
        assert np.abs(codes(pixels) - codes(read(oiio)[0])).max() <= 1
        assert np.abs(pixels - exact[name]).mean() * 65535 < 20  # was 6,191 with the output space ignored


@pytest.mark.parametrize("sidecar, expected, code", [
    ("[1, 2]", "sidecar is a JSON list", 2),
    ('{"lut_colorspace": 7}', "'lut_colorspace' is 7, not a colour space name", 2),
    ('{"lut_colorspace": "ACEScg", "lut_output_colorspace": ["ACEScg"]}', "'lut_output_colorspace' is (a list)", 2),
    ('{"lut_colorspace": "ACEScg", "lut_colorspace": "ACEScg"}', "repeats the key 'lut_colorspace'", 2),
    ('{"lut_colorspace": "ACEScgg"}', "ACEScgg", 5),
    ("folder", "sidecar is not a regular file", 2),
])
def test_a_sidecar_the_render_cannot_use_is_one_line(tmp_path, graded, gckpt, sidecar, expected, code):
    _, plate = graded
    lut = tmp_path / "x.cube"
    lut.write_text("LUT_3D_SIZE 2\n" + "0 0 0\n1 0 0\n0 1 0\n1 1 0\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n")
    if sidecar == "folder":
        (tmp_path / "x.cube.json").mkdir()
    else:
        (tmp_path / "x.cube.json").write_text(sidecar)
    failed = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", gckpt, "--grade", lut, code=code)
    assert expected in failed.stderr and failed.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.png"))
    (tmp_path / "x.cube.json").rmdir() if sidecar == "folder" else (tmp_path / "x.cube.json").unlink()
    done = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", gckpt, "--grade", lut, "-q")
    assert "has no sidecar (x.cube.json): applied to sRGB Encoded Rec.709 (sRGB) values" in done.stderr


@pytest.mark.parametrize("ext, body", [
    (".cube", "LUT_3D_SIZE 2\n0 0 0\n1 0 0\n0 1 0\nnan nan nan\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n"),
    (".spi3d", "SPILUT 1.0\n3 3\n2 2 2\n" + "".join(f"{r} {g} {b} {r} {g} {'inf' if r + g + b == 3 else b}\n"
                                                   for r in (0, 1) for g in (0, 1) for b in (0, 1))),
])
def test_a_lut_with_nan_or_inf_rows_is_refused(tmp_path, graded, gckpt, ext, body):
    _, plate = graded
    (tmp_path / f"x{ext}").write_text(body)
    failed = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", gckpt, "--grade", tmp_path / f"x{ext}",
                  code=5)
    assert "holds NaN or infinite values" in failed.stderr and failed.stderr.count("\n") == 1


def test_grade_records_are_read_strictly_as_float32_within_limits(tmp_path, graded, gckpt):
    work, plate = graded
    good = (work / "sh.json").read_text()
    data = json.loads(good)
    row = data["parameters"][0]

    def refused(text, expected):
        (tmp_path / "r.json").write_text(text)
        failed = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", gckpt, "--grade", tmp_path / "r.json",
                      code=2)
        assert expected in failed.stderr and failed.stderr.count("\n") == 1, failed.stderr
        assert not list(tmp_path.glob("o/*.png"))

    def edited(**changes):
        return json.dumps({**data, **changes})

    refused(edited(parameters=[[1e39, *row[1:]]]), "parameter 0 (black) of every frame is 1e+39, outside ±10")
    refused(edited(parameters=[[*row[:6], 200.0, *row[7:]]]), "parameter 6 (gamma) of every frame is 200, outside ±5")
    refused(edited(parameters=[[True, *row[1:]]]), "found a string, true/false or null")
    refused(edited(parameters=[["0.5", *row[1:]]]), "found a string, true/false or null")
    refused(edited(temporal={"shot": 1}), "'temporal' is (a dict)")
    refused(edited(window=True), "'window' is True")
    refused(edited(version=True), "version True")
    refused(edited(frames=[1001, 1002, True]), "'frames' must be a list of distinct frame numbers")
    refused(good.replace('"temporal": "shot",', '"temporal": "shot", "temporal": "frame",'),
            "repeats the key 'temporal'")
    refused(good.replace('"frames": [', '"frames": [' + "9" * 3001 + ",", 1), "number of 3,001 characters")
    refused(good.replace('"window": 0', '"window": ' + "9" * 5001), "number of 5,001 characters")
    refused("[" * 5000 + "]" * 5000, "grade record nests deeper than 32 levels")
    # at the limits (the worst case for float32: gamma +5, levels that divide by 0.05, all else +-10)
    worst = [-0.5] * 3 + [-10.0] * 3 + [5.0] * 3 + [10.0] * 9 + [10.0] * 17 + [10.0, -10.0] * 8 + [10.0] * 10
    (tmp_path / "worst.json").write_text(edited(parameters=[worst]))
    bake("render", plate, "-o", tmp_path / "exr" / "p.####.exr", "--checkpoint", gckpt, "--grade",
         tmp_path / "worst.json", "-q")
    assert all(np.isfinite(read(p)[0]).all() for p in (tmp_path / "exr").glob("*.exr"))


def test_a_submitted_grade_record_edited_afterwards_is_refused(tmp_path, graded, gckpt):
    work, plate = graded
    data = json.loads((work / "sh.json").read_text())
    named = tmp_path / f"grade-{data['grade_sha256']}.json"  # as `submit` names it
    named.write_text(json.dumps(data))
    bake("render", plate, "-o", tmp_path / "o", "--checkpoint", gckpt, "--grade", named, "-q")
    data["parameters"][0][0] += 0.01  # a valid grade, but not the one the name promises
    named.write_text(json.dumps(data))
    failed = bake("render", plate, "-o", tmp_path / "o2", "--checkpoint", gckpt, "--grade", named, code=2)
    assert f"not the {named.name[6:22]} its name promises" in failed.stderr and failed.stderr.count("\n") == 1


def test_a_grade_record_shared_by_many_frames_stays_one_row_in_memory(tmp_path):
    import tracemalloc

    from bake_node.models.bakenet_global import GlobalConfig
    from bake_node.operators.bake import grade_form
    from bake_node.shot_grade import ShotGrade, load_grade

    config = GlobalConfig()
    row = np.linspace(-0.5, 0.5, config.grade_parameters, dtype=np.float32)
    frames = tuple(range(1, 200_001))
    estimated = ShotGrade("shot", 0, frames, np.repeat(row[None], len(frames), axis=0), grade_form(config))
    path = tmp_path / "many.json"
    path.write_text(json.dumps(estimated.record()))
    tracemalloc.start()
    grade = load_grade(str(path), config.grade_parameters, grade_form(config))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert grade.parameters.shape == (1, config.grade_parameters)
    assert peak < 10 * path.stat().st_size  # json.load alone: 5.5x; was frames x 61 float64: ~150 MB here
    assert grade.sha256 == estimated.sha256  # the same fingerprint as the render that estimated it
    assert np.array_equal(grade.for_frame(150_000), row)


def test_grade_never_replaces_a_file_it_did_not_just_check(tmp_path, graded, gckpt, monkeypatch):
    import bake_node.commands.grade as grade_command
    import bake_seq.sequences.safe_write as safe_write

    _, plate = graded
    lut, sidecar = tmp_path / "sh.cube", tmp_path / "sh.cube.json"
    sample = grade_command.sample_lut

    def colourist_saves_meanwhile(*args, **kwargs):
        lut.write_text("a colourist's edit\n")
        return sample(*args, **kwargs)

    monkeypatch.setattr(grade_command, "sample_lut", colourist_saves_meanwhile)
    failed = bake("grade", plate, "-o", lut, "--checkpoint", gckpt, code=6)
    # checked again by the safe writer after estimating, before anything is placed
    assert "sh.cube: already exists" in failed.stderr and failed.stderr.count("\n") == 2
    assert lut.read_text() == "a colourist's edit\n" and not sidecar.exists()  # the record placed first is gone
    monkeypatch.setattr(grade_command, "sample_lut", sample)
    assert "already exists" in bake("grade", plate, "-o", lut, "--checkpoint", gckpt, code=6).stderr
    bake("grade", plate, "-o", lut, "--checkpoint", gckpt, "--overwrite")
    assert lut.read_text().startswith("TITLE") and sidecar.exists()
    # a sidecar that cannot be written leaves no LUT either
    publish = safe_write.publish

    def disk_full_for_records(temp, target, replace):
        if target.endswith(".json"):
            raise OSError(28, "No space left on device")
        return publish(temp, target, replace)

    monkeypatch.setattr(safe_write, "publish", disk_full_for_records)
    failed = bake("grade", plate, "-o", tmp_path / "new.cube", "--checkpoint", gckpt, code=10)
    assert "No space left on device" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sh.cube", "sh.cube.json"]  # no LUT, no temp
