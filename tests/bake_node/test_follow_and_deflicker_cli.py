"""Through the CLI, with real files: a learned correction that follows a plate whose light drifts
(`learn` then `render --follow auto|off`), the steady rule on constant light, `--op deflicker` on
flickering and steady plates, resume, `status`, the farm (the analysis stored once per shot and
given to every chunk: `openjd run` bit-identical to one local render) and a damaged record."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skdata

from bake_node import temporal
from bake_node.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE
from bake_seq.train import grades
from bake_seq.train.flicker import pan_views
from tests.plugins.farm.conftest import REPO, assert_same_frames, subprocess_env
from tests.plugins.farm.test_openjd import OPENJD, load_bundle, task_args
from tests.train.test_learn_keys import FIRST, FRAMES, bake, codes, make_shot, mean_de, png, write_png

SRGB = "sRGB Encoded Rec.709 (sRGB)"
HAS_OPENJD = Path(OPENJD).exists()


def farm_exe(folder: Path) -> str:
    """What a farm node runs (as tests/plugins/farm/conftest.py's bake_seq_exe)."""
    exe = folder / "bin" / "bake-seq"
    exe.parent.mkdir(parents=True)
    exe.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m bake_node "$@"\n')
    exe.chmod(0o755)
    return str(exe)


def openjd_run(bundle: Path, cwd: Path) -> subprocess.CompletedProcess:
    run = subprocess.run([OPENJD, "run", str(bundle / "template.yaml"),
                          "-p", f"file://{bundle / 'parameter_values.yaml'}"],
                         capture_output=True, text=True, cwd=cwd, env=subprocess_env())
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("bake-seq: error:")]


# --- a learned correction follows the plate ------------------------------------------------------

def drifting(i: int, view: torch.Tensor) -> torch.Tensor:
    """A fixed grade (make_shot's 'cdl', seed 3), then white balance drifting 0.12 stops a frame
    (red up, blue down): 0.6 stops by the last frame."""
    graded = grades.degrade("cdl", view[None], torch.Generator().manual_seed(3))[0].float()
    drift = temporal.Change.of((0.12 * i, 0.0, -0.12 * i), (1.0, 1.0, 1.0))
    return torch.from_numpy(temporal.apply(drift, graded.permute(1, 2, 0).numpy())).permute(2, 0, 1).clamp(0, 1)


@pytest.fixture(scope="module")
def drift_shot(tmp_path_factory):
    """(folder, plate pattern, the learned file, learn's stderr): one key, the first frame."""
    folder = tmp_path_factory.mktemp("drift")
    plate, _, _ = make_shot(folder, grading=drifting)
    model = folder / "shot.safetensors"
    learned = bake("learn", plate, "--key", f"{FIRST}={folder / 'clean' / f'{FIRST}.png'}", "-o", model)
    return folder, plate, model, learned.stderr


def test_a_learned_correction_follows_light_that_drifts(drift_shot):
    folder, plate, model, learned = drift_shot
    assert "--follow auto" in learned and "1006" in learned  # learn says the plate changes, and how far
    auto = bake("render", plate, "--checkpoint", model, "-o", folder / "auto" / "####.png")  # follow auto: the default
    assert "measuring the plate's colour change over 6 frames" in auto.stderr
    bake("render", plate, "--checkpoint", model, "--follow", "off", "-o", folder / "off" / "####.png", "-q")
    clean = {n: png(folder / "clean" / f"{n}.png") for n in range(FIRST, FIRST + FRAMES)}
    far = range(FIRST + 3, FIRST + FRAMES)  # 0.36-0.6 stops of drift since the key
    followed = [mean_de(png(folder / "auto" / f"{n}.png"), clean[n]) for n in far]
    blended = [mean_de(png(folder / "off" / f"{n}.png"), clean[n]) for n in far]
    # Measured: followed 0.091, 0.097, 0.123; the key's correction alone (--follow off) 5.0, 6.7,
    # 8.3 (the plate itself: 5.5, 3.9, 2.8). Bounds ~6x and 4x the measured.
    assert np.mean(followed) < 0.1 * np.mean(blended), (followed, blended)
    assert max(followed) < 0.5, followed
    # the key frame itself: its change to itself is the identity, so the same arithmetic as off
    assert np.array_equal(codes(folder / "auto" / f"{FIRST}.png"), codes(folder / "off" / f"{FIRST}.png"))
    # resume tells the two apart: they are different corrections
    again = bake("render", plate, "--checkpoint", model, "--follow", "off", "-o", folder / "auto" / "####.png")
    assert f"0 already done, {FRAMES} to render" in again.stderr


def test_constant_light_renders_as_without_following(tmp_path):
    """The steady rule: a plate whose colour stays put (measured within 0.02 stops and contrast)
    renders exactly as with --follow off."""
    plate, _, _ = make_shot(tmp_path)  # one fixed grade on every frame of the pan
    model = tmp_path / "shot.safetensors"
    bake("learn", plate, "--key", f"{FIRST}={tmp_path / 'clean' / f'{FIRST}.png'}", "-o", model, "-q")
    auto = bake("render", plate, "--checkpoint", model, "-o", tmp_path / "auto" / "####.png")
    assert "measuring the plate's colour change" in auto.stderr  # measured, then found steady
    bake("render", plate, "--checkpoint", model, "--follow", "off", "-o", tmp_path / "off" / "####.png", "-q")
    for n in range(FIRST, FIRST + FRAMES):
        assert np.array_equal(codes(tmp_path / "auto" / f"{n}.png"), codes(tmp_path / "off" / f"{n}.png")), n


@pytest.mark.skipif(not HAS_OPENJD, reason="openjd-cli is not installed")
def test_openjd_chunks_follow_the_plate_like_one_local_render(drift_shot, tmp_path):
    folder, plate, model, _ = drift_shot
    options = ["--checkpoint", model, "-i", SRGB]
    bake("render", plate, "-o", tmp_path / "local" / "####.png", *options, "-q")
    bundle = tmp_path / "job"
    bake("submit", "openjd", plate, "-o", tmp_path / "farm" / "####.png", "--chunk", "3", "--bundle", bundle,
         "--bake-seq-exe", farm_exe(tmp_path), *options)
    template, values = load_bundle(bundle)
    _, args = task_args(template, values, "1004-1006")
    stored = Path(args[args.index("--follow-analysis") + 1])
    assert re.fullmatch(r"temporal-[0-9a-f]{16}\.json", stored.name)
    assert stored.parent == tmp_path / "farm" / ".bake-seq"
    assert temporal.load_analysis(str(stored)).record(FIRST + 5).state != temporal.IDENTITY
    run = openjd_run(bundle, tmp_path)
    assert "measuring" not in run.stdout  # every chunk applies the stored analysis
    assert_same_frames(tmp_path / "farm", tmp_path / "local")


def test_a_damaged_follow_analysis_is_one_line_exit_2(drift_shot, tmp_path):
    folder, plate, model, _ = drift_shot
    bad = tmp_path / "follow.json"
    bad.write_text('{"format": "bake-seq-temporal", "version": 1, "frames": [')
    result = bake("render", plate, "--checkpoint", model, "--follow-analysis", bad, "-o", tmp_path / "o" / "####.png",
                  code=EXIT_USAGE)
    [line] = error_lines(result)
    assert str(bad) in line and "Traceback" not in result.output
    assert not list((tmp_path / "o").glob("*.png"))


# --- deflicker ----------------------------------------------------------------------------------

N = 16
SIZE = (96, 144)


def picture(name: str) -> torch.Tensor:
    return torch.from_numpy(getattr(skdata, name)()).permute(2, 0, 1).float() / 255


def level_stops(folder: Path) -> np.ndarray:
    """Each frame's mean linear light, in stops."""
    linear = (temporal.srgb_eotf(torch.from_numpy(png(folder / f"{FIRST + i}.png")).double()) for i in range(N))
    return np.array([np.log2(float(frame.mean())) for frame in linear])


@pytest.fixture(scope="module")
def flicker_plate(tmp_path_factory):
    """A diagonal pan with a push-in over chelsea, each frame's exposure off by a random amount
    (0.15 stops sigma, its straight-line trend taken out: flicker only, no ramp). Returns the
    folder, with clean/ and plate/."""
    folder = tmp_path_factory.mktemp("flicker")
    wobble = np.random.default_rng(5).normal(0, 0.15, N)
    t = np.arange(N)
    wobble -= np.polyval(np.polyfit(t, wobble, 1), t)
    for i, view in enumerate(pan_views(picture("chelsea"), N, SIZE)):
        write_png(folder / "clean" / f"{FIRST + i}.png", view)
        flashed = temporal.apply(temporal.Change.of((wobble[i],) * 3, (1, 1, 1)), view.permute(1, 2, 0).numpy())
        write_png(folder / "plate" / f"{FIRST + i}.png", torch.from_numpy(flashed).permute(2, 0, 1))
    return folder


@pytest.fixture(scope="module")
def steady_plate(tmp_path_factory):
    """Constant light, but real motion: a pan over chelsea with a red card crossing it (8 px a
    frame), a hard cut to a pan over coffee at frame 1011, fresh grain (1 % sigma) on every frame."""
    folder = tmp_path_factory.mktemp("steady")
    first, second = pan_views(picture("chelsea"), N, SIZE), pan_views(picture("coffee"), N, SIZE)
    noise = torch.Generator().manual_seed(1)
    for i in range(N):
        view = (first[i] if i < 10 else second[i]).clone()
        view[:, 30:50, 5 + 8 * i:29 + 8 * i] = torch.tensor([0.9, 0.3, 0.2])[:, None, None]
        view = (view + 0.01 * torch.randn(view.shape, generator=noise)).clamp(0, 1)
        write_png(folder / "plate" / f"{FIRST + i}.png", view)
    return folder


def test_deflicker_removes_flicker(flicker_plate, tmp_path):
    out = tmp_path / "out"
    result = bake("render", flicker_plate / "plate" / "####.png", "--op", "deflicker", "-o", out / "####.png")
    assert f"measuring the plate's colour change over {N} frames" in result.stderr
    clean = level_stops(flicker_plate / "clean")  # the pan's own level changes are not flicker
    before = np.abs(np.diff(level_stops(flicker_plate / "plate") - clean)).mean()
    after = np.abs(np.diff(level_stops(out) - clean)).mean()
    # Measured: 0.164 -> 0.0082 stops a frame (0.05 x; seeds 5-10: 0.011-0.14 x). Bound 4x.
    assert after < 0.2 * before, (after, before)
    nothing = np.mean([mean_de(png(flicker_plate / "plate" / f"{FIRST + i}.png"),
                               png(flicker_plate / "clean" / f"{FIRST + i}.png")) for i in range(N)])
    fixed = np.mean([mean_de(png(out / f"{FIRST + i}.png"), png(flicker_plate / "clean" / f"{FIRST + i}.png"))
                     for i in range(N)])
    # Against the clean pan (up to the overall level no plate can tell): measured 1.78 -> 0.26
    # CIEDE2000 (0.14 x; seeds 5-10: 0.06-0.33 x, the smoothed level sitting a little off the
    # clean one). Bound 2x the measured.
    assert fixed < 0.3 * nothing, (fixed, nothing)


def test_deflicker_leaves_a_steady_plate_alone(steady_plate, tmp_path):
    plate = steady_plate / "plate" / "####.png"
    bake("render", plate, "--op", "deflicker", "-o", tmp_path / "out" / "####.png", "-q")
    change = [mean_de(png(tmp_path / "out" / f"{FIRST + i}.png"), png(steady_plate / "plate" / f"{FIRST + i}.png"))
              for i in range(N)]
    # Measured: at most 0.038-0.049 CIEDE2000 (3 grain seeds; 0.39-0.42 with 3 % grain on these
    # 96 x 144 frames, whose thumbnail averages none of it). Bound: the 0.5.
    assert max(change) < 0.5, change
    info = json.loads(bake("info", plate, "--temporal", "--json").stdout)
    assert info["cuts"] == [FIRST + 10]  # the cut was found, so the two pictures were never smoothed together


def test_deflicker_resumes_and_status_says_done(steady_plate, tmp_path):
    plate, out = steady_plate / "plate" / "####.png", tmp_path / "out" / "####.png"
    first = bake("render", plate, "--op", "deflicker", "-o", out)
    assert f"({N} rendered, 0 already done)" in first.stderr
    again = bake("render", plate, "--op", "deflicker", "-o", out)
    assert f"(0 rendered, {N} already done)" in again.stderr  # the same analysis: the same fingerprint
    status = bake("status", out, plate, "--op", "deflicker", code=EXIT_OK)
    assert "complete" in status.stdout
    assert "complete" in bake("status", out, code=EXIT_OK).stdout  # judged by the records alone
    report = json.loads(bake("status", out, plate, "--op", "deflicker", "--deflicker-window", "2", "--json",
                             code=EXIT_INCOMPLETE).stdout)
    assert report["counts"] == {"stale": N} and "deflicker_window" in report["groups"][0]["reason"]
    redo = bake("render", plate, "--op", "deflicker", "--deflicker-window", "2", "-o", out, "--json")
    assert json.loads(redo.stdout)["rendered"] == N


def test_deflicker_farm_bundle_stores_the_analysis_and_chunks_match_one_local_render(flicker_plate, tmp_path):
    plate = flicker_plate / "plate" / "####.png"
    options = ["--op", "deflicker", "-i", SRGB]
    bake("render", plate, "-o", tmp_path / "local" / "####.png", *options, "-q")
    bundle = tmp_path / "job"
    submitted = bake("submit", "openjd", plate, "-o", tmp_path / "farm" / "####.png", "--chunk", "5",
                     "--bundle", bundle, "--bake-seq-exe", farm_exe(tmp_path), *options)
    assert f"measuring the plate's colour change over {N} frames" in submitted.stderr
    template, values = load_bundle(bundle)
    [stored] = (tmp_path / "farm" / ".bake-seq").glob("temporal-*.json")
    analysis = temporal.load_analysis(str(stored))  # the name's hash matches its content
    assert stored.name == f"temporal-{temporal.analysis_sha256(analysis)}.json"
    assert [f.frame for f in analysis.frames] == list(range(FIRST, FIRST + N))  # the whole shot, not a chunk
    assert values["DeflickerAnalysis"] == str(stored)  # a PATH job parameter: path mapping reaches it
    for chunk in ("1001-1005", "1016"):
        _, args = task_args(template, values, chunk)
        assert args[args.index("--deflicker-analysis") + 1] == str(stored)
        assert args[args.index("--op") + 1] == "deflicker"
    if not HAS_OPENJD:
        pytest.skip("openjd-cli is not installed: the bundle is checked, not run")
    run = openjd_run(bundle, tmp_path)
    chunks = re.findall(r"bake-seq: chunk (\S+) done (\d+) frames", run.stdout)
    assert len(chunks) > 1 and sum(int(n) for _, n in chunks) == N, chunks
    assert "measuring" not in run.stdout  # no chunk analyses: each smooths with the whole shot's analysis
    assert_same_frames(tmp_path / "farm", tmp_path / "local")
    bake("status", tmp_path / "farm" / "####.png", plate, *options, code=EXIT_OK)  # the local settings judge them done


def test_a_deflicker_analysis_that_is_not_json_is_one_line_exit_2(flicker_plate, tmp_path):
    bad = tmp_path / "temporal.json"
    bad.write_text("frame 1001: +0.1 stops\n")
    result = bake("render", flicker_plate / "plate" / "####.png", "--op", "deflicker", "--deflicker-analysis", bad,
                  "-o", tmp_path / "o" / "####.png", code=EXIT_USAGE)
    [line] = error_lines(result)
    assert str(bad) in line and "JSON" in line and "Traceback" not in result.output
    assert result.output.count("\n") == 1
    assert not list((tmp_path / "o").glob("*.png"))
