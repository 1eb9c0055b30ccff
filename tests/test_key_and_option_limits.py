"""Issue 34 items 3-4: keys too small to check, export frames outside the keys, empty colour spaces."""
from __future__ import annotations

import torch
from click.testing import CliRunner

from bake_node.cli import cli
from bake_seq.train.keyframes import MIN_KEY_SIDE
from bake_seq.train.flicker import pan_views
from tests.train.test_learn_keys import FIRST, make_shot, photo, write_png


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result


def one_line(result, expected):
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("bake-seq: error:"), result.stderr
    assert expected in result.stderr, result.stderr


def small_plate(folder, height, width):
    """One frame of a photo at this size, and a key of it (a warmer grade)."""
    frame = pan_views(photo(), 1, (height, width))[0]
    write_png(folder / "plate" / f"{FIRST}.png", frame)
    write_png(folder / "keys" / f"{FIRST}.png", (frame * torch.tensor([1.1, 1.0, 0.8])[:, None, None]).clamp(0, 1))
    return folder / "plate" / "####.png", folder / "keys" / f"{FIRST}.png"


def test_keys_below_the_checkable_size_are_refused_with_one_line(tmp_path):
    plate, key = small_plate(tmp_path / "small", MIN_KEY_SIDE - 16, 64)
    result = bake("learn", plate, "--key", f"{FIRST}={key}", "-o", tmp_path / "s.safetensors", code=3)
    one_line(result, f"below {MIN_KEY_SIDE} px on the short side")
    assert not (tmp_path / "s.safetensors").exists()
    plate, key = small_plate(tmp_path / "ok", MIN_KEY_SIDE, 96)  # at the minimum the check runs and passes
    bake("learn", plate, "--key", f"{FIRST}={key}", "-o", tmp_path / "ok.safetensors", "-q")


def test_export_frames_outside_the_keys_say_so_and_impossible_numbers_are_refused(tmp_path):
    plate, _, _ = make_shot(tmp_path / "shot")
    learned = tmp_path / "shot.safetensors"
    bake("learn", plate, "--key", f"{FIRST}={tmp_path / 'shot' / 'clean' / f'{FIRST}.png'}", "-o", learned, "-q")
    out = tmp_path / "x.pt"
    result = bake("export", "--format", "torchscript", "--checkpoint", learned, "--frame", "-5", "-o", out)
    assert f"frame -5 is before the first key (frame {FIRST})" in result.stderr and out.exists()
    result = bake("export", "--format", "torchscript", "--checkpoint", learned, "--frame", "2000", "-o", out, "--overwrite")
    assert f"frame 2000 is after the last key (frame {FIRST})" in result.stderr
    result = bake("export", "--format", "torchscript", "--checkpoint", learned, "--frame", "99999999999999999999", "-o", tmp_path / "y.pt",
                  code=2)
    assert "99999999999999999999" in result.output and not (tmp_path / "y.pt").exists()


def test_empty_colour_space_options_are_refused(tmp_path):
    plate, key = small_plate(tmp_path / "p", 64, 96)
    for args in (["render", plate, "-i", "", "-o", tmp_path / "o"],
                 ["render", plate, "--output-colorspace", " ", "-o", tmp_path / "o"],
                 ["info", plate, "--input-colorspace", ""],
                 ["learn", plate, "--key", f"{FIRST}={key}", "--key-colorspace", "", "-o", tmp_path / "k.safetensors"]):
        result = bake(*args, code=2)
        assert "is empty: name a colour space" in result.output, result.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "k.safetensors").exists()
