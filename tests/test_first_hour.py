"""A new user's first hour: no silent wrong results, failures before the work, help that runs.
(Issue 18: each test here fails without its fix.)"""
import os
import textwrap

import numpy as np
import OpenImageIO as oiio
import pytest
from click.testing import CliRunner

from bake_node.cli import cli
from bake_seq.sequences.plate import read_header, write_plate
from tests.conftest import make_checkpoint
from tests.test_render_cli import dpx10, png16_with_10bit_codes, read, tagged_space


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(make_checkpoint(tmp_path_factory.mktemp("c") / "tiny.safetensors"))


def test_a_colour_space_guessed_from_the_file_type_is_said_first_and_submit_refuses_it(tmp_path, ckpt):
    plate = dpx10(tmp_path / "dpx", range(1001, 1003))  # no colour-space tag: DPX -> film log by convention
    out = bake("render", plate, "-o", tmp_path / "a" / "####.dpx", "--checkpoint", ckpt, "-q")
    first = out.stderr.splitlines()[0]
    assert first.startswith("bake-seq: warning: input colour space 'ADX10' is a guess from the file type")
    assert "--input-colorspace" in first
    told = bake("render", plate, "-o", tmp_path / "b" / "####.dpx", "--checkpoint", ckpt, "-i", "ADX10")
    assert "warning" not in told.stderr and "start: bake," in told.stderr  # the start line names the operator
    refused = bake("submit", "openjd", plate, "--bundle", tmp_path / "job", "--checkpoint", ckpt, code=5)
    assert "only a guess" in refused.stderr and "--accept-guessed-colorspace" in refused.stderr
    assert not (tmp_path / "job").exists()
    bake("submit", "openjd", plate, "--bundle", tmp_path / "job", "--checkpoint", ckpt, "--accept-guessed-colorspace")
    bake("submit", "openjd", plate, "--bundle", tmp_path / "job2", "--checkpoint", ckpt, "-i", "ARRI LogC3 (EI800)")
    assert bake("info", plate).stdout.count("a guess") == 0  # info states the reason; the flag is in --json


def test_holes_inside_a_sequence_are_missing_frames(tmp_path, ckpt):
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1009))
    for n in (1004, 1007):
        os.remove(tmp_path / "p" / f"plate.{n}.png")
    failed = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, code=3)
    assert "missing frames 1004,1007 (2 of 8)" in failed.stderr and not (tmp_path / "o").exists()
    bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, "--skip-missing", "-q")
    assert len(list((tmp_path / "o").glob("*.png"))) == 6
    assert "1004,1007" in bake("info", plate).stdout
    status = bake("status", tmp_path / "o" / "plate.####.png", plate, "--checkpoint", ckpt, code=7)
    assert "missing" in status.stdout
    twos = png16_with_10bit_codes(tmp_path / "twos", range(1001, 1008, 2))  # on twos: whole
    bake("render", twos, "-o", tmp_path / "t", "--checkpoint", ckpt, "-q")


def test_exr_output_of_a_log_plate_is_scene_linear_and_every_output_states_its_space(tmp_path, ckpt):
    plate = dpx10(tmp_path / "dpx", range(1001, 1002))
    bake("render", plate, "-o", tmp_path / "exr" / "####.exr", "--checkpoint", ckpt, "-i", "ADX10", "-q")
    pixels, attribs, _, _ = read(tmp_path / "exr" / "1001.exr")
    assert tagged_space(attribs) == "ACEScg"  # Nuke reads EXR as linear: it is linear
    assert pixels.max() > 1.0 or pixels.min() < 0.2  # linear light, not the 0.1..0.7 log code values
    record = (tmp_path / "exr" / ".bake-seq" / "1001.exr.json").read_text()
    assert '"output_colorspace": "ACEScg"' in record
    # DPX keeps 31 characters of description: the space is stated whole (an alias if needed),
    # replaces a plate description that would cut it, and a re-read resolves it.
    for space in ("ARRI LogC3 (EI800)", "ACEScg", "sRGB Encoded Rec.709 (sRGB)"):
        out = tmp_path / "dpxout" / space.replace(" ", "_").replace("(", "").replace(")", "")
        bake("render", plate, "-o", out / "####.dpx", "--checkpoint", ckpt, "-i", "ADX10",
             "--output-colorspace", space, "-q")
        header = read_header(str(out / "1001.dpx"))
        found = bake("info", str(out / "####.dpx"), "--json").stdout
        assert f'"input_colorspace": "{space}"' in found, (space, header.colorspace_tag)


def test_grain_leaves_transparent_pixels_of_a_premultiplied_plate_alone(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.random((48, 64, 3), dtype=np.float32) * 0.5 + 0.2
    alpha = np.zeros((48, 64, 1), np.float32)
    alpha[:, 32:] = 1.0
    (tmp_path / "cg").mkdir()
    write_plate(str(tmp_path / "cg" / "cg.1001.exr"), np.concatenate([rgb * alpha, alpha], axis=2),
                channel_names=["R", "G", "B", "A"], metadata={}, colorspace="ACEScg", frame=1001)
    bake("render", tmp_path / "cg" / "cg.####.exr", "-o", tmp_path / "g", "--op", "grain", "--grain-amount", "2", "-q")
    out = read(tmp_path / "g" / "cg.1001.exr")[0]
    assert np.abs(out[:, :32, :3]).max() < 1e-3 and out[:, :, :3].min() >= -1e-3  # no grain where alpha = 0
    assert np.abs(out[:, 32:, :3] - rgb[:, 32:]).std() > 1e-3  # grain where the CG is
    bake("render", tmp_path / "cg" / "cg.####.exr", "-o", tmp_path / "s", "--op", "grain", "--grain-amount", "2",
         "--no-grain-premultiplied", "-q")
    assert np.abs(read(tmp_path / "s" / "cg.1001.exr")[0][:, :32, :3]).max() > 1e-3  # straight alpha: grain everywhere


def test_fail_before_the_work(tmp_path, ckpt):
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1003))
    (tmp_path / "file").write_text("not a folder")
    failed = bake("render", plate, "-o", tmp_path / "file" / "out" / "####.png", "--checkpoint", ckpt, code=6)
    assert "which is a file, not a folder" in failed.stderr and "frame 1001" not in failed.stderr
    config = tmp_path / "broken.ocio"
    config.write_text(textwrap.dedent("""\
        ocio_profile_version: 2
        search_path: luts
        roles: {default: linear, scene_linear: linear}
        displays: {sRGB: [!<View> {name: Raw, colorspace: linear}]}
        colorspaces:
          - !<ColorSpace> {name: linear}
          - !<ColorSpace> {name: sRGB Encoded Rec.709 (sRGB), from_scene_reference: !<ExponentTransform> {value: 2.2, direction: inverse}}
          - !<ColorSpace> {name: scanner, from_scene_reference: !<FileTransform> {src: missing_scanner.cube}}
        """))
    failed = bake("render", plate, "--ocio", config, "-i", "scanner", "-o", tmp_path / "o2", "--checkpoint", ckpt,
                  code=5)
    assert "OCIO cannot convert 'scanner'" in failed.stderr and failed.stderr.count("\n") == 1
    failed = bake("info", plate, "--ocio", config, "-i", "scanner", code=5)  # info reports it too
    assert "OCIO cannot convert 'scanner'" in failed.stderr
    assert not (tmp_path / "o2").exists()


def test_help_that_runs_as_printed(tmp_path):
    listed = bake("info", "--list-colorspaces")  # the fix printed by an unknown-colour-space error
    assert "ARRI LogC3 (EI800)" in listed.stdout.splitlines()
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1002))
    wrong = bake("info", plate, "-i", "logc3", code=5)
    assert "did you mean 'ARRI LogC3 (EI800)'" in wrong.stderr
    frames = bake("info", plate, "--frames", "1001:1008", code=2)
    assert "cannot read the frame range '1001:1008'" in frames.stderr and "did not match" not in frames.stderr
    op = bake("render", plate, "--op", "nope", code=2)
    assert "bake" in op.stderr and "grain" in op.stderr  # the operators are listed
    helped = bake("render", "--help").stdout
    assert "--bit-depth" in helped and "--bit_depth" not in helped and "[default: None]" not in helped
    assert "Options of --op grain (Film Grain):" in helped and "Options of every operator:" in helped
    grain_part = helped.split("Options of --op grain")[1].split("Options of --op zoo")[0]
    assert "--grain-amount" in grain_part and "--checkpoint" not in grain_part
    assert "--device" not in bake("status", "--help").stdout  # status shows what decides the frames
    # old and other spellings still work, hidden from the help
    from bake_node.cli import render_cmd
    assert render_cmd.make_context("render", [plate, "--bit_depth", "10"]).params["bit_depth"] == "10"
    from bake_node.commands.eval import command as eval_cmd
    from bake_node.commands.export import command as export_cmd
    assert eval_cmd.make_context("eval", ["--data", ".", "--out", "x"]).params["out"] == "x"
    assert eval_cmd.make_context("eval", ["--data", ".", "--output", "y"]).params["out"] == "y"
    assert export_cmd.make_context("export", ["--format", "onnx", "-o", "m", "--colour-maths", "float32"]
                                   ).params["colour_maths"] == "float32"


def test_progress_within_a_frame(ckpt):
    from bake_node.node import get_operator

    op = get_operator("bake")
    op.prepare({"checkpoint": ckpt, "device": "cpu", "tile": 64})
    seen = []
    op.on_tile = lambda done, total: seen.append((done, total))  # what the terminal bar shows per tile
    op.process(np.random.default_rng(0).random((130, 170, 3), dtype=np.float32), 1)
    assert len(seen) > 1 and seen[-1][0] == seen[-1][1] == len(seen) and [d for d, _ in seen] == list(range(1, len(seen) + 1))


def test_ctrl_c_while_starting_is_one_line_and_exit_130():
    import signal
    import subprocess
    import sys
    import time

    from tests.plugins.farm.conftest import subprocess_env

    proc = subprocess.Popen([sys.executable, "-m", "bake_node", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())
    time.sleep(0.4)  # still importing torch
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the start-up finished before the signal on this machine")
    assert proc.returncode == 130 and err.strip() == "bake-seq: interrupted", err
