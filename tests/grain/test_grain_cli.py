"""`bake-seq grain analyze` and `bake-seq render --op grain` on real files (CliRunner)."""
import numpy as np
import OpenImageIO as oiio
import pytest
from click.testing import CliRunner

from bake_node.cli import cli
from bake_node.grain.linear import to_linear, to_working
from bake_node.grain.profile import CHANNELS, load_profile, preset_profile
from bake_node.grain.synth import GrainSettings, add_grain
from tests.grain.conftest import scene
from tests.sequences.conftest import _write_raw

FRAMES = (1001, 1002, 1003)


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def write_png16(folder, frames_linear):
    folder.mkdir(parents=True, exist_ok=True)
    for n, linear in frames_linear.items():
        codes = np.rint(np.clip(to_working(linear), 0, 1) * 65535).astype(np.uint16)
        _write_raw(folder / f"plate.{n:04d}.png", codes, "uint16")
    return str(folder / "plate.####.png")


def read(path):
    image = oiio.ImageBuf(str(path))
    return image.get_pixels(oiio.FLOAT)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("grain")
    grain = preset_profile("coarse")
    clean = {n: scene(240, 320) for n in FRAMES}
    grainy = {n: add_grain(clean[n], grain, n, GrainSettings(seed=9)) for n in FRAMES}
    return root, write_png16(root / "clean", clean), write_png16(root / "plate", grainy)


def test_regrain_analyse_plate_then_apply_to_clean_render(files):
    root, clean, plate = files
    run("grain", "analyze", plate, "-o", root / "plate.yaml")
    measured = load_profile(root / "plate.yaml")
    for name in CHANNELS:  # 16-bit PNG quantisation and 3 small frames: 8 %
        reference = preset_profile("coarse").channels[name]
        points = np.array(measured.channels[name].sigma)
        assert np.abs(points[:, 1] / reference.sigma_at(points[:, 0]) - 1).max() < 0.08
    run("render", clean, "--op", "grain", "--grain-profile", root / "plate.yaml", "-o", root / "regrain")
    run("grain", "analyze", root / "regrain/plate.####.png", "-o", root / "regrain.yaml")
    again = load_profile(root / "regrain.yaml")
    for name in CHANNELS:
        points = np.array(again.channels[name].sigma)
        assert np.abs(points[:, 1] / measured.channels[name].sigma_at(points[:, 0]) - 1).max() < 0.08
        assert again.channels[name].size == pytest.approx(measured.channels[name].size, rel=0.08)


def test_render_grain_needs_no_checkpoint_and_keeps_the_mean(files):
    root, clean, _ = files
    run("render", clean, "--op", "grain", "--grain-preset", "medium", "-o", root / "medium", "-q")
    before, after = read(root / "clean/plate.1001.png"), read(root / "medium/plate.1001.png")
    assert np.abs(after - before).max() > 0
    patch = (slice(100, 140), slice(140, 180))  # a flat 0.35 patch
    assert np.allclose(to_linear(after)[patch].mean(axis=(0, 1)), to_linear(before)[patch].mean(axis=(0, 1)),
                       rtol=0.01)


def test_chunks_and_reruns_give_identical_frames(files):
    root, clean, _ = files
    args = ["--op", "grain", "--grain-preset", "fine", "--grain-seed", "4", "-q"]
    run("render", clean, *args, "-o", root / "whole")
    run("render", clean, *args, "--frames", "1001", "-o", root / "chunks")
    run("render", clean, *args, "--frames", "1002-1003", "--tile", "64", "-o", root / "chunks")
    for n in FRAMES:
        assert np.array_equal(read(root / f"whole/plate.{n}.png"), read(root / f"chunks/plate.{n}.png"))
    assert not np.array_equal(read(root / "whole/plate.1001.png"), read(root / "whole/plate.1002.png"))
    result = run("render", clean, *args, "-o", root / "whole", "--json")
    assert '"skipped_complete": 3' in result.output


def test_an_edited_profile_renders_again(files, tmp_path):
    _, clean, _ = files
    profile = tmp_path / "p.yaml"
    profile.write_text(preset_profile("fine").dumps())
    args = ["render", clean, "--op", "grain", "--grain-profile", profile, "-o", tmp_path / "out", "--json"]
    run(*args)
    profile.write_text(profile.read_text().replace("size: 0.5", "size: 0.9"))
    assert '"rendered": 3' in run(*args).output


def test_user_errors_are_one_line(files, tmp_path):
    _, clean, _ = files
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: bake-seq-grain/1\nchannels: {red: {size: 1}}\n")
    result = run("render", clean, "--op", "grain", "--grain-profile", bad, "-o", tmp_path / "o", code=2)
    assert "bad.yaml: not a grain profile" in result.output and "Traceback" not in result.output
    tiny = write_png16(tmp_path / "tiny", {1: np.full((16, 16, 3), 0.2, np.float32)})
    result = run("grain", "analyze", tiny, "-o", tmp_path / "t.yaml", code=3)
    assert "no flat areas" in result.output


def test_help_lists_the_grain_knobs():
    text = run("render", "--help").output
    for flag in ("--grain-profile", "--grain-preset", "--grain-mode", "--grain-seed", "--grain-amount",
                 "--grain-size", "--grain-response", "--checkpoint"):
        assert flag in text
    assert "--max-frames" in run("grain", "analyze", "--help").output


@pytest.mark.parametrize("value", ["nan", "inf", "-nan"])
def test_float_knobs_refuse_nan_and_inf_on_the_command_line_and_in_settings(tmp_path, value):
    """A NaN grain amount passed every range check and rendered all-NaN frames with exit 0."""
    plate = write_png16(tmp_path / "p", {FRAMES[0]: scene(64, 64)})
    result = run("render", plate, "--op", "grain", "--grain-amount", value, "-o", tmp_path / "o" / "g.####.png",
                 code=2)
    assert "not a finite number" in result.output and not (tmp_path / "o").exists()
    settings = tmp_path / "grain.yaml"
    settings.write_text(f"op: grain\nsettings:\n  grain_amount: {'.nan' if 'nan' in value else '.inf'}\n")
    result = run("render", plate, "--config", settings, "-o", tmp_path / "o2" / "g.####.png", code=2)
    assert "not a finite number" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o2").exists()
