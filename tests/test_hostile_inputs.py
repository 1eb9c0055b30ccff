"""Hostile files and full disks (issue 17 item 4): every failure is one line with the documented
exit code, no traceback, no temp file left behind, and small files stay small in memory."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from bake_node.cli import cli
from bake_seq.sequences.plate import write_plate
from tests.conftest import make_checkpoint
from tests.plugins.farm.conftest import subprocess_env
from tests.test_render_cli import png16_with_10bit_codes


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(make_checkpoint(tmp_path_factory.mktemp("c") / "tiny.safetensors"))


def test_a_resume_record_that_cannot_be_written_is_retryable_and_leaves_no_temp(tmp_path, ckpt, monkeypatch):
    import json

    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1003))
    real_dump = json.dump

    def disk_full(obj, fh, **kwargs):
        if "fingerprint" in obj:  # the resume record, not anything else
            raise OSError(28, "No space left on device")
        return real_dump(obj, fh, **kwargs)

    monkeypatch.setattr(json, "dump", disk_full)
    result = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, code=10)
    line = result.stderr.strip().splitlines()[-1]
    assert "cannot write the resume record" in line and "No space left" in line
    assert not [p for p in (tmp_path / "o" / ".bake-seq").iterdir() if "partial" in p.name]
    monkeypatch.setattr(json, "dump", real_dump)
    again = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt)
    assert "2 to render" in again.stderr  # the frame without a record is rendered again


def test_a_resume_record_that_is_not_a_mapping_means_render_again(tmp_path, ckpt):
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1002))
    bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, "-q")
    (tmp_path / "o" / ".bake-seq" / "plate.1001.png.json").write_text("[1, 2, 3]")
    assert "1 to render" in bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt).stderr
    bake("status", tmp_path / "o" / "plate.####.png", plate, "--checkpoint", ckpt)


@pytest.mark.parametrize("body, expected", [
    ("op: [bake]\n", "unknown operator (a list)"),
    ("op: bake\nsettings:\n  tile: .inf\n", "tile: inf is not a int"),
    ("op: bake\nsettings:\n  window: [1, 2]\n", "window: (a list) is not a int"),
    ("op: bake\nsettings:\n  7: 1\n", "unknown setting 7 for operator bake"),
])
def test_malformed_settings_are_one_line(tmp_path, ckpt, body, expected):
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1002))
    (tmp_path / "s.yaml").write_text(body)
    result = bake("render", plate, "--config", tmp_path / "s.yaml", "--checkpoint", ckpt, code=2)
    assert expected in result.stderr and result.stderr.count("\n") == 1


def test_billion_laughs_settings_stay_small(tmp_path, ckpt):
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1002))
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\nop: bake\nsettings:\n  window: *a9\n")
    assert (tmp_path / "bomb.yaml").stat().st_size < 1000
    started = time.perf_counter()
    result = bake("render", plate, "--config", tmp_path / "bomb.yaml", "--checkpoint", ckpt, code=2)
    assert time.perf_counter() - started < 10  # 9^10 strings if anything printed it
    assert "unknown entry" in result.stderr or "(a list)" in result.stderr
    (tmp_path / "big.yaml").write_text("op: bake\n#" + "x" * (2 << 20) + "\n")
    assert "not a settings file" in bake("render", plate, "--config", tmp_path / "big.yaml", code=2).stderr


def test_nan_alpha_is_a_plate_error_before_any_frame_is_done(tmp_path, ckpt):
    (tmp_path / "cg").mkdir()
    for n in (1001, 1002):
        rgba = np.full((16, 16, 4), 0.5, np.float32)
        if n == 1002:
            rgba[3, 3, 3] = np.nan
        write_plate(str(tmp_path / "cg" / f"c.{n}.exr"), rgba, channel_names=["R", "G", "B", "A"], metadata={},
                    colorspace="ACEScg", frame=n)
    result = bake("render", tmp_path / "cg" / "c.####.exr", "-o", tmp_path / "o", "--checkpoint", ckpt, "--frames",
                  "1002", code=3)
    assert "NaN/Inf values in alpha" in result.stderr and "--nan-policy zero" in result.stderr
    bake("render", tmp_path / "cg" / "c.####.exr", "-o", tmp_path / "o", "--checkpoint", ckpt, "--nan-policy", "zero")


def test_paths_that_are_not_utf8_are_one_line(tmp_path, ckpt):
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1002))
    bad = os.fsencode(str(tmp_path)) + b"/out\xff/####.png"
    run = subprocess.run([sys.executable, "-m", "bake_node", "render", plate, "-o", bad, "--checkpoint", ckpt],
                         capture_output=True, env=subprocess_env(), timeout=120)
    err = run.stderr.decode("utf-8", "replace")
    assert run.returncode == 2 and "is not valid UTF-8" in err and "Traceback" not in err, err
    assert err.count("\n") == 1


def test_dpx_outputs_are_byte_identical_between_runs(tmp_path, ckpt):
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1002))
    seen = []
    for _ in range(2):  # two processes: another pid in the temp name each time
        run = subprocess.run([sys.executable, "-m", "bake_node", "render", plate, "-o", str(tmp_path / "o" / "####.dpx"),
                              "--checkpoint", ckpt, "--overwrite", "-q"], capture_output=True, text=True,
                             env=subprocess_env(), timeout=120)
        assert run.returncode == 0, run.stderr
        seen.append((tmp_path / "o" / "1001.dpx").read_bytes())
    assert seen[0] == seen[1]
    assert str(tmp_path / "o" / "1001.dpx").encode() in seen[0][36:136]  # the header names the file itself


def test_a_source_rewritten_with_the_same_size_and_old_mtime_renders_again(tmp_path, ckpt):
    from tests.test_render_cli import dpx10

    plate = dpx10(tmp_path / "p", range(1001, 1003))  # DPX: every frame the same size
    options = ["-o", tmp_path / "o", "--checkpoint", ckpt, "-i", "ADX10"]
    bake("render", plate, *options, "-q")
    source = tmp_path / "p" / "1002.dpx"
    stat = source.stat()
    source.write_bytes((tmp_path / "p" / "1001.dpx").read_bytes())  # same size, other pixels
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the old mtime: only the content tells
    assert source.stat().st_size == stat.st_size
    assert "1 already done, 1 to render" in bake("render", plate, *options).stderr
    os.utime(tmp_path / "p" / "1001.dpx")  # touched, not changed: still done
    assert "2 already done, 0 to render" in bake("render", plate, *options).stderr


def test_a_small_png_claiming_a_giant_frame_is_refused_before_reading(tmp_path, ckpt):
    import resource
    import struct
    import zlib

    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1002))
    path = tmp_path / "p" / "plate.1001.png"
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 12000, 12000)  # IHDR width and height: 144 MP in a few hundred bytes
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # a valid chunk CRC
    path.write_bytes(bytes(data))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, code=3)
    assert "12000x12000 (144 MP): beyond bake-seq's 100 MP limit" in result.stderr
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


def test_concurrent_renders_share_the_frames_through_per_frame_locks(tmp_path, ckpt):
    from bake_seq.sequences.manifest import lock_path
    from bake_seq.sequences.plate import _HOST

    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1005))
    out = tmp_path / "o" / "plate.####.png"
    other = subprocess.Popen(["sleep", "60"])  # stands in for another live render on this host
    try:
        (tmp_path / "o" / ".bake-seq").mkdir(parents=True)
        with open(lock_path(str(out).replace("####", "1002")), "w") as fh:
            fh.write(f"{_HOST} {other.pid}\n")
        with open(lock_path(str(out).replace("####", "1003")), "w") as fh:
            fh.write(f"{_HOST} 999999999\n")  # a render that died: its lock is taken over
        result = bake("render", plate, "-o", out, "--checkpoint", ckpt)
    finally:
        other.kill()
    assert "(3 rendered, 0 already done, 1 being rendered by another process: 1002)" in result.stderr
    assert not (tmp_path / "o" / "plate.1002.png").exists() and (tmp_path / "o" / "plate.1003.png").exists()
    assert sorted(p.name for p in (tmp_path / "o" / ".bake-seq").glob("*.lock")) == ["plate.1002.png.lock"]
    os.remove(lock_path(str(out).replace("####", "1002")))
    assert "(1 rendered, 3 already done)" in bake("render", plate, "-o", out, "--checkpoint", ckpt).stderr


def test_two_renders_into_one_folder_render_each_frame_once(tmp_path, ckpt):
    import json

    from tests.test_render_cli import write_raw

    (tmp_path / "p").mkdir()
    rng = np.random.default_rng(0)
    for n in range(1001, 1013):  # frames slow enough (tiles of a per-pixel model) for the two to overlap
        write_raw(tmp_path / "p" / f"plate.{n}.png", (rng.random((384, 384, 3)) * 65535).astype(np.uint16), "uint16")
    command = [sys.executable, "-m", "bake_node", "render", str(tmp_path / "p" / "plate.####.png"), "-o",
               str(tmp_path / "o"), "--checkpoint", ckpt, "--json", "--tile", "128"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
            for _ in range(2)]
    summaries = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        summaries.append(json.loads(out))
    assert sum(s["rendered"] for s in summaries) == 12  # no frame twice, none lost
    assert len(list((tmp_path / "o").glob("*.png"))) == 12 and not list((tmp_path / "o" / ".bake-seq").glob("*.lock"))
