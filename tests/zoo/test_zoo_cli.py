"""`bake-seq render --op zoo`, `bake-seq zoo info`, `bake-seq config` and `--config`: real plates and
weight files on disk, real click invocations."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from bake_node.cli import cli, make_request
from bake_node.node import get_operator
from bake_node.render import load_frame, plan_render
from bake_seq.sequences.manifest import read_record
from tests.sequences.conftest import _write_raw as write_raw


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def read(path):
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)  # PNG alpha as stored, not premultiplied on read
    inp = oiio.ImageInput.open(str(path), config)
    assert inp, oiio.geterror()
    spec = inp.spec()
    pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
    attribs = {a.name: a.value for a in spec.extra_attribs}
    inp.close()
    return pixels, attribs, str(spec.format), list(spec.channelnames)


def rgba(h=24, w=30, seed=0):
    rng = np.random.default_rng(seed)
    colour = rng.random((h, w, 3))
    alpha = np.linspace(0, 1, h * w).reshape(h, w, 1)
    return np.concatenate([colour, alpha], axis=2)


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_render_2x_png16_rgba_resolution_alpha_and_pixels(tmp_path, zoo_weights):
    weights = zoo_weights("compact")
    plate = tmp_path / "plate"
    plate.mkdir()
    frames = {n: rgba(seed=n) for n in (1001, 1002)}
    for n, pixels in frames.items():  # (OIIO stores this colour un-premultiplied: compare with what render reads)
        write_raw(plate / f"p.{n}.png", np.rint(pixels * 65535).astype(np.uint16), "uint16",
                  channel_names=["R", "G", "B", "A"])
    bake("render", plate / "p.####.png", "--op", "zoo", "--weights", weights, "-o", tmp_path / "up" / "p.####.png", "-q")
    op = get_operator("zoo")
    op.prepare({"weights": weights, "device": "cpu"})
    plan = plan_render(make_request(str(plate / "p.####.png")))
    assert plan.input_colorspace.value == "sRGB Encoded Rec.709 (sRGB)"  # = the working space
    for n in frames:
        pixels, _, fmt, names = read(tmp_path / "up" / f"p.{n}.png")
        assert fmt == "uint16" and names == ["R", "G", "B", "A"] and pixels.shape == (48, 60, 4)
        source = load_frame(plan, n)  # the frame as the render read it
        expected = op.process(source.rgb.copy(), n)
        assert np.abs(pixels[:, :, :3] - np.clip(expected, 0, 1)).max() <= 1.5 / 65535
        alpha = op.process_alpha(source.alpha, n)
        assert alpha.shape == (48, 60) and np.abs(pixels[:, :, 3] - alpha).max() <= 1.5 / 65535
    record = read_record(str(tmp_path / "up" / "p.1001.png"))
    assert record["operator"]["arch"] == "Compact" and record["operator"]["scale"] == 2


def test_render_2x_exr_rgba_keeps_metadata_highlights_and_resumes(tmp_path, zoo_weights):
    weights = zoo_weights("compact")
    plate = tmp_path / "cg"
    plate.mkdir()
    for n in (1, 2):
        pixels = rgba(seed=n)
        pixels[:, :, :3] *= 3.0
        pixels[0, 0, 0] = 20.0  # a scene-linear highlight, far outside the model's domain
        write_raw(plate / f"cg.{n:04d}.exr", pixels.astype(np.float16), "half",
                  attributes=[("smpte:TimeCode", "timecode", [0x01000000 + n, 0]), ("PixelAspectRatio", "float", 2.0),
                              ("XResolution", "float", 72.0), ("YResolution", "float", 72.0)])
    out = tmp_path / "o" / "cg.####.exr"
    args = ("render", plate / "cg.####.exr", "--op", "zoo", "--weights", weights, "-i", "ACEScg", "-o", out)
    bake(*args)
    for n in (1, 2):
        pixels, attribs, fmt, names = read(tmp_path / "o" / f"cg.{n:04d}.exr")
        assert fmt == "half" and names == ["R", "G", "B", "A"] and pixels.shape == (48, 60, 4)
        assert attribs["smpte:TimeCode"] == (0x01000000 + n, 0) and attribs["Frame"] == n
        assert attribs["PixelAspectRatio"] == 2.0  # a uniform 2x keeps the pixel shape...
        source = read(plate / f"cg.{n:04d}.exr")[1]  # (EXR derives YResolution from the aspect)
        assert (attribs["XResolution"], attribs["YResolution"]) == (source["XResolution"] * 2, source["YResolution"] * 2)  # ...and the physical size
        assert pixels[:2, :2, 0].max() > 10.0  # preserve: the highlight survives the [0,1] model
        assert 0.0 <= pixels[:, :, 3].min() and pixels[:, :, 3].max() <= 1.0
    again = bake(*args, "--json")
    assert json.loads(again.stdout)["skipped_complete"] == 2  # same settings: nothing to redo
    changed = bake(*args, "--zoo-overlap", "8", "--json")
    assert json.loads(changed.stdout)["rendered"] == 2  # overlap changes zoo pixels: re-rendered


def test_zoo_info_text_and_json(zoo_weights):
    path = zoo_weights("swinir")
    text = bake("zoo", "info", path).stdout
    for expected in ("architecture  SwinIR", "scale         2x", "channels      3 in, 3 out",
                     "parameters    7,072", "minimum 16 px", "tile a multiple of 4", "Apache-2.0"):
        assert expected in text
    report = json.loads(bake("zoo", "info", path, "--json").stdout)
    assert report["architecture"] == "SwinIR" and report["scale"] == 2 and report["parameters"] == 7072
    assert report["size_requirements"] == {"minimum": 16, "multiple_of": 1, "square": False, "fixed": None,
                                           "tile_multiple": 4}
    assert report["purpose"] == "SR" and report["tiling"] == "discouraged" and report["file_bytes"] == os.path.getsize(path)


@pytest.fixture
def plate(tmp_path):
    folder = tmp_path / "plate"
    folder.mkdir()
    write_raw(folder / "p.0001.png", np.rint(rgba()[:, :, :3] * 65535).astype(np.uint16), "uint16")
    return str(folder / "p.####.png")


def test_missing_weights_one_line_says_where_weights_come_from(tmp_path, plate):
    missing = tmp_path / "RealESRGAN_x2plus.pth"
    for args in (("render", plate, "--op", "zoo", "--weights", missing), ("zoo", "info", missing)):
        line = error_line(bake(*args, code=4))
        assert str(missing) in line and "not found" in line and "OpenModelDB" in line and "release page" in line
    line = error_line(bake("render", plate, "--op", "zoo", code=4))
    assert "--weights" in line


def test_unknown_architecture_is_one_line(tmp_path, plate):
    path = tmp_path / "mystery.safetensors"
    save_file({"encoder.weight": torch.randn(4, 4), "decoder.bias": torch.randn(4)}, str(path))
    line = error_line(bake("render", plate, "--op", "zoo", "--weights", path, code=4))
    assert str(path) in line and "unknown model architecture" in line and "SwinIR" in line


@pytest.mark.parametrize("ext", ["safetensors", "pth"])
def test_truncated_file_is_one_line(tmp_path, zoo_weights, ext):
    whole = open(zoo_weights("rrdb", ext), "rb").read()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(whole[: len(whole) // 2])
    line = error_line(bake("zoo", "info", path, code=4))
    assert str(path) in line and "corrupt" in line


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickled_code_is_refused_not_run(tmp_path, plate):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": RunsCode(marker)}, str(path))
    with open(tmp_path / "plain.pkl", "wb") as fh:  # the same trick without torch's zip container
        pickle.dump({"x": RunsCode(marker)}, fh)
    os.rename(tmp_path / "plain.pkl", tmp_path / "plain.pt")
    for weights in (path, tmp_path / "plain.pt"):
        line = error_line(bake("render", plate, "--op", "zoo", "--weights", weights, code=4))
        assert str(weights) in line and "refused to unpickle" in line
        assert not marker.exists()  # os.system never ran
    # and in a fresh process through the console script, as a farm node would run it
    exe = os.path.join(os.path.dirname(sys.executable), "bake-seq")
    done = subprocess.run([exe, "zoo", "info", str(path)], capture_output=True, text=True)
    assert done.returncode == 4 and "refused to unpickle" in done.stderr and not marker.exists()


def test_config_file_round_trip_override_and_errors(tmp_path, plate, zoo_weights):
    weights = zoo_weights("compact")
    config = tmp_path / "zoo.yaml"
    bake("config", "-o", config, "--op", "zoo", "--weights", weights, "--zoo-overlap", "48")
    saved = __import__("yaml").safe_load(config.read_text())
    assert saved["op"] == "zoo" and saved["settings"]["weights"] == weights
    assert saved["settings"]["zoo_overlap"] == 48 and saved["settings"]["zoo_range_policy"] == "preserve"
    out = tmp_path / "a" / "p.####.png"
    bake("render", plate, "--config", config, "-o", out, "-q")  # --op comes from the file
    record = read_record(str(tmp_path / "a" / "p.0001.png"))["operator"]
    assert record["zoo_overlap"] == 48 and record["arch"] == "Compact"
    # the same settings as flags: same fingerprint, so the frame counts as done
    flags = bake("render", plate, "--op", "zoo", "--weights", weights, "--zoo-overlap", "48", "-o", out, "--json")
    assert json.loads(flags.stdout)["skipped_complete"] == 1
    # command-line options win over the file
    bake("render", plate, "--config", config, "--zoo-range-policy", "clip", "-o", tmp_path / "b" / "p.####.png", "-q")
    assert read_record(str(tmp_path / "b" / "p.0001.png"))["operator"]["zoo_range_policy"] == "clip"
    # JSON too, and relative paths are read from the settings file's folder
    as_json = tmp_path / "cfg" / "zoo.json"
    as_json.parent.mkdir()
    os.symlink(weights, as_json.parent / "w.safetensors")
    as_json.write_text(json.dumps({"op": "zoo", "settings": {"weights": "w.safetensors", "zoo_alpha": "model"}}))
    bake("render", plate, "--config", as_json, "-o", tmp_path / "c" / "p.####.png", "-q")
    assert read_record(str(tmp_path / "c" / "p.0001.png"))["operator"]["zoo_alpha"] == "model"
    # errors: one line, exit 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("op: zoo\nsettings:\n  weights: x.pth\n  zoo_overlapp: 3\n")
    line = error_line(bake("render", plate, "--config", bad, code=2))
    assert str(bad) in line and "unknown setting 'zoo_overlapp'" in line
    line = error_line(bake("render", plate, "--config", config, "--op", "grain", code=2))
    assert "operator 'zoo'" in line
    line = error_line(bake("config", "-o", tmp_path / "g.yaml", "--op", "grain", "--zoo-overlap", "4", code=2))
    assert "--zoo-overlap is a setting of operator zoo, not of grain" in line and "add --op zoo" in line
    # render too: another operator's knob is never ignored silently (issue 18 item 2)
    for flags in (["--zoo-overlap", "4"], ["--grain-amount", "2"]):
        line = error_line(bake("render", plate, *flags, code=2))
        assert f"{flags[0]} is a setting of operator" in line and "not of bake" in line and "add --op" in line


def test_config_works_for_other_operators(tmp_path, plate):
    config = tmp_path / "grain.json"
    bake("config", "-o", config, "--op", "grain", "--grain-preset", "fine", "--grain-seed", "7")
    saved = json.loads(config.read_text())
    assert saved["op"] == "grain" and saved["settings"]["grain_seed"] == 7
    bake("render", plate, "--config", config, "-o", tmp_path / "g" / "p.####.png", "-q")
    record = read_record(str(tmp_path / "g" / "p.0001.png"))["operator"]
    assert record["op"] == "grain" and record["grain_seed"] == 7
