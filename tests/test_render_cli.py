"""End-to-end: real plates on disk -> `bake-seq render` (CliRunner and subprocess) -> real files."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio_lib
import pytest
from click.testing import CliRunner

from bake_node.cli import cli
from bake_node.node import get_operator
from bake_seq.ocio.config import DEFAULT_CONFIG
from tests.conftest import make_checkpoint
from tests.sequences.conftest import _write_raw as write_raw

SRGB = "sRGB Encoded Rec.709 (sRGB)"


def read(path):
    inp = oiio.ImageInput.open(str(path))
    assert inp, oiio.geterror()
    spec = inp.spec()
    pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
    attribs = {a.name: a.value for a in spec.extra_attribs}
    fmt = str(spec.format)
    inp.close()
    return pixels, attribs, fmt, list(spec.channelnames)


def tagged_space(attribs):
    """OIIO stores colour-space tags as interop IDs (ACEScg -> lin_ap1_scene): resolve them."""
    config = ocio_lib.Config.CreateFromFile(DEFAULT_CONFIG)
    return config.getColorSpace(attribs["oiio:ColorSpace"]).getName()


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def gradient(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    base = np.stack([x, y, 1 - x * y], axis=2)
    return np.clip(base * 0.8 + rng.random((h, w, 3)) * 0.2, 0, 1)


def png16_with_10bit_codes(folder, frames, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(frames):
        codes = np.rint(gradient(seed=seed + i) * 1023).astype(np.uint16)
        write_raw(folder / f"plate.{n:04d}.png", codes, "uint16")
    return str(folder / "plate.####.png")


def dpx10(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(frames):
        codes = np.rint(gradient(seed=i) * 1023)
        write_raw(folder / f"{n:04d}.dpx", np.rint(codes * 65535 / 1023).astype(np.uint16), "uint16", bits=10,
                  attributes=[("smpte:TimeCode", "timecode", [0x01000000 + n, 0])])
    return str(folder / "####.dpx")


@pytest.fixture
def ckpt(tiny_checkpoint):
    return tiny_checkpoint


def expected_from_model(ckpt, rgb):
    op = get_operator("bake")
    op.prepare({"checkpoint": ckpt, "device": "cpu", "tile": 0})
    return op.process(np.ascontiguousarray(rgb, np.float32), 0)


def test_png16_holding_10bit_codes(tmp_path, ckpt):
    seq = png16_with_10bit_codes(tmp_path / "plate", [1001, 1002])
    out = tmp_path / "out" / "bake.####.png"
    result = bake("render", seq, "--bit_depth", "10", "-o", out, "--checkpoint", ckpt,
                  "--input-colorspace", SRGB, "--json", "--tile", "32")
    summary = json.loads(result.stdout)
    assert summary["rendered"] == 2 and summary["bit_depth"] == 10
    pixels, attribs, fmt, _ = read(tmp_path / "out" / "bake.1001.png")
    assert fmt == "uint16"
    source = np.rint(gradient(seed=0) * 1023) / 1023  # code 1023 -> 1.0, not 1023/65535
    want = np.clip(expected_from_model(ckpt, source), 0, 1)
    assert np.abs(np.rint(pixels * 65535) - np.rint(want * 65535)).max() <= 1
    assert tagged_space(attribs) == SRGB


def test_dpx10_default_output_metadata_and_info(tmp_path, ckpt):
    seq = dpx10(tmp_path / "shot_010", [1, 2, 3])
    info = bake("info", seq, "--json")
    report = json.loads(info.stdout)
    assert report["bit_depth"] == 10 and "header" in report["bit_depth_reason"]
    assert report["frame_count"] == 3 and report["size"] == "56x40"
    bake("render", seq, "--checkpoint", ckpt, "-q")
    out = tmp_path / "shot_010_bake"
    assert sorted(p for p in os.listdir(out) if not p.startswith(".")) == ["0001.dpx", "0002.dpx", "0003.dpx"]
    pixels, attribs, fmt, _ = read(out / "0002.dpx")
    assert fmt == "uint16" and attribs.get("oiio:BitsPerSample") == 16
    assert "smpte:TimeCode" in attribs
    assert attribs.get("ImageDescription") == f"colour space: {report['input_colorspace']}"


def test_exr_rgba_alpha_untouched_and_highlights_kept(tmp_path, ckpt):
    folder = tmp_path / "cg"
    folder.mkdir()
    rgba = np.concatenate([gradient() * 3.0, np.linspace(0, 1, 40 * 56).reshape(40, 56, 1)], axis=2)
    rgba[0, 0, :3] = (12.0, 0.5, -0.01)
    write_raw(folder / "cg.0010.exr", rgba.astype(np.float16), "half")
    bake("render", str(folder / "cg.####.exr"), "--checkpoint", ckpt, "-i", "ACEScg",
         "-o", tmp_path / "o" / "cg.####.exr")
    pixels, attribs, fmt, names = read(tmp_path / "o" / "cg.0010.exr")
    assert fmt == "half" and names == ["R", "G", "B", "A"]
    np.testing.assert_array_equal(pixels[:, :, 3], rgba[:, :, 3].astype(np.float16).astype(np.float32))
    assert pixels[0, 0, 0] > 5.0  # scene-linear highlight survives the [0,1] model domain
    assert tagged_space(attribs) == "ACEScg"


def test_ocio_in_and_out_match_direct_pyopencolorio(tmp_path, ckpt):
    folder = tmp_path / "lin"
    folder.mkdir()
    rgb = (gradient() * 2.0).astype(np.float32)
    write_raw(folder / "x.0001.exr", rgb, "float")
    bake("render", str(folder / "x.####.exr"), "--checkpoint", ckpt, "-i", "ACEScg",
         "--output-colorspace", "Linear Rec.709 (sRGB)", "-o", tmp_path / "o" / "x.####.exr")
    got, _, _, _ = read(tmp_path / "o" / "x.0001.exr")
    config = ocio_lib.Config.CreateFromFile(DEFAULT_CONFIG)
    to_work = config.getProcessor("ACEScg", SRGB).getDefaultCPUProcessor()
    to_out = config.getProcessor(SRGB, "Linear Rec.709 (sRGB)").getDefaultCPUProcessor()
    work = rgb.copy()
    to_work.applyRGB(work)
    result = np.ascontiguousarray(expected_from_model(ckpt, work))
    to_out.applyRGB(result)
    np.testing.assert_allclose(got, result.astype(np.float16).astype(np.float32), rtol=2e-3, atol=2e-4)


def test_missing_frames_listed_then_skip_missing(tmp_path, ckpt):
    seq = png16_with_10bit_codes(tmp_path / "p", [1, 2, 3, 7])
    out = tmp_path / "o" / "####.png"
    result = bake("render", seq, "--frames", "1-8", "--checkpoint", ckpt, "-o", out, code=3)
    line = result.stderr.strip()
    assert "\n" not in line and "4-6" in line and "8" in line and "--skip-missing" in line
    bake("render", seq, "--frames", "1-8", "--skip-missing", "--checkpoint", ckpt, "-o", out, "-q")
    assert sorted(os.listdir(tmp_path / "o"))[-4:] == ["0001.png", "0002.png", "0003.png", "0007.png"]


def test_resume_overwrite_and_stale(tmp_path, ckpt):
    seq = png16_with_10bit_codes(tmp_path / "p", [1, 2, 3])
    out = tmp_path / "o" / "####.png"
    first = json.loads(bake("render", seq, "--checkpoint", ckpt, "-o", out, "--json").stdout)
    assert first["rendered"] == 3
    again = json.loads(bake("render", seq, "--checkpoint", ckpt, "-o", out, "--json").stdout)
    assert again["rendered"] == 0 and again["skipped_complete"] == 3
    forced = json.loads(bake("render", seq, "--checkpoint", ckpt, "-o", out, "--json", "--overwrite").stdout)
    assert forced["rendered"] == 3
    other = make_checkpoint(tmp_path / "other.safetensors", seed=5)
    stale = json.loads(bake("render", seq, "--checkpoint", other, "-o", out, "--json").stdout)
    assert stale["rendered"] == 3  # made with another checkpoint: not "complete"


def test_never_overwrites_inputs(tmp_path, ckpt):
    seq = png16_with_10bit_codes(tmp_path / "p", [1, 2])
    before = (tmp_path / "p" / "plate.0001.png").read_bytes()
    result = bake("render", seq, "-o", seq, "--overwrite", "--checkpoint", ckpt, code=6)
    assert "input" in result.stderr
    result = bake("render", seq, "-o", tmp_path / "p", "--overwrite", "--checkpoint", ckpt, code=6)
    assert (tmp_path / "p" / "plate.0001.png").read_bytes() == before


def test_truncated_frame_is_one_line_naming_file(tmp_path, ckpt):
    seq = png16_with_10bit_codes(tmp_path / "p", [1, 2, 3])
    broken = tmp_path / "p" / "plate.0002.png"
    broken.write_bytes(broken.read_bytes()[:200])
    result = bake("render", seq, "--checkpoint", ckpt, "-o", tmp_path / "o" / "####.png", code=3)
    assert "plate.0002.png" in result.stderr and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if "error" in line and "bake-seq" in line]
    assert len(errors) == 1 and "truncated or corrupt" in errors[0]
    assert not (tmp_path / "o" / "0002.png").exists()


def test_unknown_colourspace_suggests(tmp_path, ckpt):
    seq = png16_with_10bit_codes(tmp_path / "p", [1])
    result = bake("render", seq, "-i", "ACEScgg", "--checkpoint", ckpt, code=5)
    assert "ACEScg" in result.stderr


def test_nan_pixels_policy(tmp_path, ckpt):
    folder = tmp_path / "n"
    folder.mkdir()
    rgb = gradient().astype(np.float32)
    rgb[3, 4, 1] = np.nan
    write_raw(folder / "n.0001.exr", rgb, "float")
    seq = str(folder / "n.####.exr")
    result = bake("render", seq, "--checkpoint", ckpt, "-i", SRGB, code=3)
    assert "NaN" in result.stderr and "n.0001.exr" in result.stderr
    bake("render", seq, "--checkpoint", ckpt, "-i", SRGB, "--nan-policy", "zero", "-q")


def test_greyscale_plate_becomes_rgb(tmp_path, ckpt):
    folder = tmp_path / "g"
    folder.mkdir()
    write_raw(folder / "g.1.png", np.rint(gradient()[:, :, :1] * 255).astype(np.uint8), "uint8")
    bake("render", str(folder / "g.#.png"), "--checkpoint", ckpt, "-o", tmp_path / "o" / "g.#.png")
    pixels, _, fmt, names = read(tmp_path / "o" / "g.1.png")
    assert names == ["R", "G", "B"] and fmt == "uint16"


def test_reruns_bit_identical_across_processes_and_tiles(tmp_path, ckpt):
    seq = png16_with_10bit_codes(tmp_path / "p", [1, 2])
    bake("render", seq, "--checkpoint", ckpt, "-o", tmp_path / "a" / "####.png", "--tile", "24")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run([sys.executable, "-m", "bake_node", "render", seq, "--checkpoint", ckpt, "-q",
                    "-o", str(tmp_path / "b" / "####.png"), "--tile", "24"], check=True, env=env)
    bake("render", seq, "--checkpoint", ckpt, "-o", tmp_path / "c" / "####.png", "--tile", "0")
    for n in ("0001.png", "0002.png"):
        a, b, c = (read(tmp_path / d / n)[0] for d in "abc")
        assert np.array_equal(a, b)
        assert np.abs(np.rint(a * 65535) - np.rint(c * 65535)).max() <= 1


def test_sigkill_mid_sequence_leaves_no_partial_frame_and_resumes(tmp_path):
    slow = make_checkpoint(tmp_path / "slow.safetensors", config=__import__("bake_node.models.bakenet", fromlist=["x"]).PRESETS["cpu"])
    folder = tmp_path / "big"
    folder.mkdir()
    frames = range(1, 9)
    for n in frames:
        write_raw(folder / f"b.{n:04d}.exr", np.tile(gradient(seed=n), (6, 6, 1)).astype(np.float16), "half")
    seq, out = str(folder / "b.####.exr"), tmp_path / "o"
    cmd = [sys.executable, "-m", "bake_node", "render", seq, "--checkpoint", str(slow), "-i", SRGB,
           "-o", str(out / "b.####.exr"), "-q"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(cmd, env=env)
    records = out / ".bake-seq"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(records.glob("*.json")) if records.exists() else []) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert 2 <= len(finals) < 8
    for name in finals:  # every file under a final name is a whole, readable frame
        pixels, _, _, _ = read(out / name)
        assert pixels.shape == (240, 336, 3)
    rerun = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, check=True)
    summary = json.loads(rerun.stdout)
    assert summary["skipped_complete"] >= 2 and summary["rendered"] + summary["skipped_complete"] == 8
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [f"b.{n:04d}.exr" for n in frames]
    assert not [p for p in out.iterdir() if "partial" in p.name]


def test_console_script_is_quiet_at_exit(tmp_path, ckpt):
    seq = png16_with_10bit_codes(tmp_path / "p", [1])
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-m", "bake_node", "render", seq, "--checkpoint", ckpt, "-q",
                           "-o", str(tmp_path / "o" / "####.png")], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "leak" not in done.stderr.lower() and done.stderr == ""
    version = subprocess.run([sys.executable, "-m", "bake_node", "--version"], env=env, capture_output=True, text=True)
    assert "bake-seq" in version.stdout and "leak" not in version.stderr
