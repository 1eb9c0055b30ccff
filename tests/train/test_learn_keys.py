"""`bake-seq learn`: a shot's correction from keyframes, through real files, the real CLI, the
one checkpoint reader, render, grade (LUT read back by OpenImageIO's oiiotool) and the
Colorize operator."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import data as skdata

from bake_node.cli import cli
from bake_node.models.shot import ShotConfig, key_weights
from bake_seq.train import grades
from bake_seq.train.ciede2000 import delta_e_srgb
from bake_seq.train.flicker import pan_views
from tests.test_render_cli import read, write_raw

FIRST = 1001
FRAMES = 6
SIZE = (72, 108)  # small: the colour stages' cost is per sampled pixel


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def photo() -> torch.Tensor:
    return torch.from_numpy(skdata.chelsea()).permute(2, 0, 1).float() / 255


def write_png(path: Path, rgb: torch.Tensor) -> None:
    """(3, H, W) in [0, 1] -> a 16-bit sRGB PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_raw(path, np.rint(rgb.permute(1, 2, 0).clamp(0, 1).numpy() * 65535).astype(np.uint16), "uint16")


def make_shot(folder: Path, family: str = "cdl", seed: int = 3, grading=None):
    """(plate pattern, clean frames, plate frames): a pan over a photo with one fixed degradation
    (``grading(frame index, view)`` instead, for light that changes)."""
    clean = pan_views(photo(), FRAMES, SIZE)
    plate = []
    for i, view in enumerate(clean):
        if grading is None:
            graded = grades.degrade(family, view[None], torch.Generator().manual_seed(seed))[0].float()
        else:
            graded = grading(i, view)
        plate.append(graded)
        write_png(folder / "plate" / f"{FIRST + i}.png", graded)
        write_png(folder / "clean" / f"{FIRST + i}.png", view)
    return str(folder / "plate" / "####.png"), clean, plate


def mean_de(a: np.ndarray, b: np.ndarray) -> float:
    return float(delta_e_srgb(torch.from_numpy(np.ascontiguousarray(a)).float(), torch.from_numpy(np.ascontiguousarray(b)).float()).mean())


def png(path) -> np.ndarray:
    return read(path)[0][..., :3]


def codes(path) -> np.ndarray:
    return np.rint(read(path)[0] * 65535).astype(int)


@pytest.fixture(scope="module")
def cdl_shot(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cdl")
    plate, clean, _ = make_shot(folder)
    model = folder / "shot.safetensors"
    result = bake("learn", plate, "--key", f"{FIRST}={folder / 'clean' / f'{FIRST}.png'}", "-o", model, "--json")
    return folder, plate, model, json.loads(result.stdout)


def test_one_key_restores_the_other_frames(cdl_shot, tmp_path):
    folder, plate, model, summary = cdl_shot
    bake("render", plate, "--checkpoint", model, "-o", tmp_path / "out" / "####.png", "-q")
    nothing, learned = [], []
    for i in range(1, FRAMES):  # the frames the key did not show
        clean = png(folder / "clean" / f"{FIRST + i}.png")
        nothing.append(mean_de(png(folder / "plate" / f"{FIRST + i}.png"), clean))
        learned.append(mean_de(png(tmp_path / "out" / f"{FIRST + i}.png"), clean))
    assert np.mean(nothing) > 3.0  # the degradation is visible
    assert np.mean(learned) < 0.1 * np.mean(nothing), (learned, nothing)
    key = summary["keys"][0]
    assert key["frame"] == FIRST and len(key["sha256"]) == 64 and key["colorspace"].startswith("sRGB")
    assert key["grade"]["held_out_de"] < 0.2 * key["do_nothing_de"]
    assert summary["stages"]["grade"]["kept"] and summary["seed"] == 0 and "seconds" in summary


def test_the_record_travels_in_the_checkpoint(cdl_shot):
    from bake_node.checkpoint import load_checkpoint

    loaded = load_checkpoint(cdl_shot[2])
    assert loaded.info.preset == "shot" and loaded.info.config.frames == (FIRST,)
    record = loaded.info.training
    assert record["learned_by"] == "bake-seq learn" and record["keys"][0]["frame"] == FIRST
    assert "seconds" not in record  # wall time would make the same keys write a different file


def test_same_keys_same_file_whatever_the_thread_count(cdl_shot, tmp_path):
    folder, plate, model, _ = cdl_shot
    again = tmp_path / "again.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "bake_node", "learn", plate, "--key",
                    f"{FIRST}={folder / 'clean' / f'{FIRST}.png'}", "-o", str(again), "-q"], check=True, env=env)
    assert again.read_bytes() == Path(model).read_bytes()


def test_grade_writes_the_learned_correction_as_a_lut(cdl_shot, tmp_path):
    from tests.bake_node.test_shot_grade import OIIOTOOL

    folder, plate, model, _ = cdl_shot
    lut = tmp_path / "shot.cube"
    result = bake("grade", plate, "--checkpoint", model, "-o", lut)
    assert "learned correction" in result.output
    sidecar = json.loads(Path(str(lut) + ".json").read_text())
    assert sidecar["model"] == "shot" and sidecar["key_frames"] == [FIRST]
    bake("render", plate, "--checkpoint", model, "-o", tmp_path / "exact" / "####.png", "-q")
    frame = f"{FIRST + 3}.png"
    subprocess.run([OIIOTOOL, str(folder / "plate" / frame), "--ociofiletransform", str(lut), "-d", "uint16",
                    "-o", str(tmp_path / "lut.png")], check=True)
    off = np.abs(codes(tmp_path / "lut.png") - codes(tmp_path / "exact" / frame))
    # A learned grade can be steep near black (undoing a crushed channel): measured mean 1.2-1.6,
    # p99.9 43-59, max 84-200 codes for 65^3 (docs/keyframes.md); an unrelated LUT is thousands off.
    assert off.mean() < 4 and np.percentile(off, 99.9) < 400


def test_grade_refuses_what_no_single_lut_holds(tmp_path):
    from bake_node.checkpoint import CheckpointInfo, save_checkpoint
    from bake_node.models.shot import ShotCorrection

    plate, _, _ = make_shot(tmp_path)
    two = ShotCorrection(ShotConfig(frames=(FIRST, FIRST + 4)))
    with torch.no_grad():
        two.grades[1, 0] = 0.5
    save_checkpoint(tmp_path / "two.safetensors", two, CheckpointInfo(preset="shot", config=two.config))
    result = bake("grade", plate, "--checkpoint", tmp_path / "two.safetensors", "-o", tmp_path / "x.cube", code=2)
    assert "no single LUT" in result.output and not (tmp_path / "x.cube").exists()
    bake("grade", plate, "--checkpoint", tmp_path / "two.safetensors", "-o", tmp_path / "x.cube",
         "--frames", f"{FIRST + 2}")  # one frame: its blend is one colour map
    local = ShotCorrection(ShotConfig(frames=(FIRST,), local_dim=8))
    save_checkpoint(tmp_path / "local.safetensors", local, CheckpointInfo(preset="shot", config=local.config))
    result = bake("grade", plate, "--checkpoint", tmp_path / "local.safetensors", "-o", tmp_path / "y.cube", code=2)
    assert "--local" in result.output


def test_key_weights_blend_by_frame_distance():
    assert key_weights((10,), 3) == [(0, 1.0)]
    assert key_weights((10, 20), 5) == [(0, 1.0)] and key_weights((10, 20), 25) == [(1, 1.0)]
    assert key_weights((10, 20), 20) == [(1, 1.0)]
    assert key_weights((10, 20, 40), 25) == [(1, 0.75), (2, 0.25)]


def test_keys_at_both_ends_follow_light_that_changes(tmp_path):
    """Light warming less through the shot (a 3200 K to 4800 K white balance): one key at each end.
    Measured: the blend leaves the middle frames at ~0.16 x doing nothing, either key's correction
    alone at 0.4-1.5 x."""
    def drift(i, view):
        kelvin = 3200.0 + (4800.0 - 3200.0) * i / (FRAMES - 1)
        gen = torch.Generator().manual_seed(1)
        return grades.white_balance(view[None], gen, (kelvin, kelvin), 0.0)[0].float().clamp(0, 1)

    plate, clean, graded = make_shot(tmp_path, grading=drift)
    last = FIRST + FRAMES - 1
    result = bake("learn", plate, "--key", f"{FIRST}={tmp_path / 'clean' / f'{FIRST}.png'}",
                  "--key", f"{last}={tmp_path / 'clean' / f'{last}.png'}", "-o", tmp_path / "two.safetensors")
    assert "keys disagree" in result.stderr  # one correction cannot hold 3200 K and 4800 K
    from bake_node.checkpoint import load_checkpoint

    record = load_checkpoint(tmp_path / "two.safetensors").info.training
    assert "blend" in record and all("held_out_key_de" in k for k in record["keys"])
    bake("render", plate, "--checkpoint", tmp_path / "two.safetensors", "-o", tmp_path / "out" / "####.png", "-q")
    middle = [mean_de(png(tmp_path / "out" / f"{FIRST + i}.png"), png(tmp_path / "clean" / f"{FIRST + i}.png"))
              for i in range(1, FRAMES - 1)]
    nothing = [mean_de(png(tmp_path / "plate" / f"{FIRST + i}.png"), png(tmp_path / "clean" / f"{FIRST + i}.png"))
               for i in range(1, FRAMES - 1)]
    assert np.mean(middle) < 0.35 * np.mean(nothing), (middle, nothing)


def shifted(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    return torch.roll(image, (dy, dx), dims=(1, 2))


@pytest.mark.parametrize("case", ["size", "shift2", "shift1", "zoom", "identical", "other_frame", "nan"])
def test_bad_keys_one_line_exit_3_nothing_written(tmp_path, case):
    plate, clean, graded = make_shot(tmp_path, family="white_balance")
    key = tmp_path / f"key.{case}.png"
    view = clean[0]
    if case == "size":
        view = view[:, :-8, :]
    elif case == "shift2":
        view = shifted(view, 2, 0)
    elif case == "shift1":
        view = shifted(view, 0, 1)
    elif case == "zoom":  # a 4 % push-in, as a reformat would do
        big = torch.nn.functional.interpolate(view[None], scale_factor=1.04, mode="bilinear", align_corners=False)[0]
        top, left = (big.shape[1] - view.shape[1]) // 2, (big.shape[2] - view.shape[2]) // 2
        view = big[:, top:top + view.shape[1], left:left + view.shape[2]]
    elif case == "identical":
        view = graded[0]
    elif case == "other_frame":
        view = clean[FRAMES - 1]
    if case == "nan":
        key = tmp_path / "key.nan.exr"
        pixels = clean[0].permute(1, 2, 0).numpy().copy()
        pixels[3, 4, 1] = np.nan
        write_raw(key, pixels.astype(np.float32), "float")
    else:
        write_png(key, view)
    out = tmp_path / "shot.safetensors"
    result = bake("learn", plate, "--key", f"{FIRST}={key}", "-o", out, code=3)
    lines = [line for line in result.output.splitlines() if line.startswith("bake-seq: error")]
    assert len(lines) == 1 and f"frame {FIRST}" in lines[0] and str(key) in lines[0], result.output
    assert not out.exists()


def test_bad_usage_exit_2(tmp_path):
    plate, clean, _ = make_shot(tmp_path)
    key = tmp_path / "clean" / f"{FIRST}.png"
    bake("learn", plate, "--key", f"{FIRST}={key}", "--key", f"{FIRST}={key}", "-o", tmp_path / "a.safetensors", code=2)
    bake("learn", plate, "--key", f"x={key}", "-o", tmp_path / "a.safetensors", code=2)
    bake("learn", plate, "--key", f"{FIRST}={key}", "-o", tmp_path / "a.pt", code=2)
    missing = bake("learn", plate, "--key", f"999={key}", "-o", tmp_path / "a.safetensors", code=3)
    assert "999" in missing.output
    (tmp_path / "exists.safetensors").write_bytes(b"x")
    bake("learn", plate, "--key", f"{FIRST}={key}", "-o", tmp_path / "exists.safetensors", code=6)
    assert (tmp_path / "exists.safetensors").read_bytes() == b"x"


def test_colourise_from_a_colour_key(tmp_path):
    from bake_node.colorize_checkpoint import load_colorize
    from bake_node.models.colorize import grey_lightness
    from bake_seq.train.colorize import grey_srgb

    clean = pan_views(photo(), 3, (64, 96))
    for i, view in enumerate(clean):
        write_png(tmp_path / "grey" / f"{FIRST + i}.png", grey_srgb(grey_lightness(view[None]))[0])
        write_png(tmp_path / "colour" / f"{FIRST + i}.png", view)
    out = tmp_path / "colour.safetensors"
    result = bake("learn", tmp_path / "grey" / "####.png", "--op", "colorize", "--key",
                  f"{FIRST}={tmp_path / 'colour' / f'{FIRST}.png'}", "-o", out, "--steps", "30", "--json")
    summary = json.loads(result.stdout)
    loaded = load_colorize(out)
    assert loaded.info.preset == "shot" and 0.0 <= loaded.info.config.chroma <= 1.5
    assert summary["keys"][0]["held_out_de"] <= summary["keys"][0]["grey_held_out_de"]  # 0 is in the grid
    bake("render", tmp_path / "grey" / "####.png", "--op", "colorize", "--colorize-checkpoint", out,
         "-o", tmp_path / "out" / "####.png", "-q")
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_local_stage_runs_and_is_judged_on_held_out_regions(tmp_path):
    plate, clean, _ = make_shot(tmp_path)
    out = tmp_path / "local.safetensors"
    result = bake("learn", plate, "--key", f"{FIRST}={tmp_path / 'clean' / f'{FIRST}.png'}", "--local",
                  "--steps", "3", "-o", out, "--json")
    summary = json.loads(result.stdout)
    local = summary["stages"]["local"]
    assert local["steps"] == 3 and isinstance(local["kept"], bool)
    assert {"held_out_de_before", "held_out_de"} <= set(summary["keys"][0]["local"])


def test_a_local_stage_renders_the_same_tiled_and_whole(tmp_path):
    from bake_node.checkpoint import CheckpointInfo, save_checkpoint
    from bake_node.models.shot import ShotCorrection

    plate, _, _ = make_shot(tmp_path)
    torch.manual_seed(0)
    model = ShotCorrection(ShotConfig(frames=(FIRST,), lut=5, local_dim=8))
    with torch.no_grad():
        model.grades.normal_(0, 0.2)
        model.lattice.normal_(0, 0.02)
        model.local.head_out.weight.mul_(4.0)
    save_checkpoint(tmp_path / "m.safetensors", model, CheckpointInfo(preset="shot", config=model.config))
    for tile in (0, 64):
        bake("render", plate, "--checkpoint", tmp_path / "m.safetensors", "--tile", tile, "-o",
             tmp_path / f"t{tile}" / "####.png", "-q", "--frames", f"{FIRST}-{FIRST + 1}")
    for n in (FIRST, FIRST + 1):
        whole, tiled = codes(tmp_path / "t0" / f"{n}.png"), codes(tmp_path / "t64" / f"{n}.png")
        assert np.abs(whole - tiled).max() <= 1  # halo = receptive field (30 px)


def test_checkpoint_reader_checks_the_shot_config(tmp_path):
    from bake_node.checkpoint import CheckpointInfo, save_checkpoint
    from bake_node.models.shot import ShotCorrection

    model = ShotCorrection(ShotConfig(frames=(5, 9)))
    info = CheckpointInfo(preset="shot", config=model.config)
    bad = json.loads(info.to_json())
    bad["config"]["frames"] = [9, 5]
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "bad.safetensors"),
              metadata={"bake_seq": json.dumps(bad)})
    plate, _, _ = make_shot(tmp_path)
    result = bake("render", plate, "--checkpoint", tmp_path / "bad.safetensors", "-o", tmp_path / "o" / "####.png", code=4)
    assert "frames" in result.output
    save_checkpoint(tmp_path / "ok.safetensors", model, info)
    bake("render", plate, "--checkpoint", tmp_path / "ok.safetensors", "--temporal", "shot", "-o", tmp_path / "o2" / "####.png", code=2)
