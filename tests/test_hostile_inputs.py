"""Hostile files and full disks (issue 17 item 4): every failure is one line with the documented
exit code, no traceback, no temp file left behind, and small files stay small in memory."""
import os
import re
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
    from bake_seq.sequences import safe_write

    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1003))
    real_write = safe_write._write_temp

    def disk_full(target, content, executable):
        if target.endswith(".png.json"):  # the resume record, not anything else: half written, then full
            def half(temp):
                with open(temp, "w") as fh:
                    fh.write("{")
                raise OSError(28, "No space left on device")
            return real_write(target, half, executable)
        return real_write(target, content, executable)

    monkeypatch.setattr(safe_write, "_write_temp", disk_full)
    result = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, code=10)
    line = result.stderr.strip().splitlines()[-1]
    assert "cannot write the resume record" in line and "No space left" in line
    assert not [p for p in (tmp_path / "o" / ".bake-seq").iterdir() if "partial" in p.name]
    monkeypatch.setattr(safe_write, "_write_temp", real_write)
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
    assert "settings file is 2,097,163 bytes, more than the 1,048,576" in bake(
        "render", plate, "--config", tmp_path / "big.yaml", code=2).stderr


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


def lock_of(out_folder, name):
    return out_folder / ".bake-seq" / f"{name}.lock"


def test_lock_rules_dead_pid_at_once_everything_else_after_the_lease(tmp_path, monkeypatch):
    """The lease rule on its own (no render): which locks claim_frame takes at once, after one
    lease, and that a pid check never raises."""
    from bake_seq.sequences.manifest import claim_frame, release_frame
    from bake_seq.sequences.safe_write import HOST as _HOST

    monkeypatch.setenv("BAKE_SEQ_LOCK_LEASE_S", "1")
    (tmp_path / ".bake-seq").mkdir()
    now = time.time()
    bodies = {"foreign": "nodeA 4242\n", "garbage": "hello world\n", "negative": f"{_HOST} -5\n",
              "huge": f"{_HOST} 99999999999999999999999\n", "live_not_a_render": f"{_HOST} 1\n", "empty": "",
              "dead": f"{_HOST} 999999999\n", "tomorrow": "nodeA 4242\n"}
    for name, body in bodies.items():
        lock_of(tmp_path, name).write_text(body)
    os.utime(lock_of(tmp_path, "tomorrow"), (now + 86400, now + 86400))
    lock_of(tmp_path, "folder").mkdir()
    frame = lambda name: str(tmp_path / name)
    taken_at_once = {name for name in [*bodies, "folder"] if claim_frame(frame(name))}
    assert taken_at_once == {"dead", "tomorrow"}
    time.sleep(1.2)  # nobody refreshed the others: one lease later they are stale
    assert all(claim_frame(frame(name)) for name in [*bodies, "folder"] if name not in taken_at_once)
    assert time.time() - os.stat(lock_of(tmp_path, "dead")).st_mtime < 0.8  # ours: refreshed while held
    assert not claim_frame(frame("dead"))
    for name in [*bodies, "folder"]:
        assert lock_of(tmp_path, name).read_text() == f"{_HOST} {os.getpid()}\n"
        release_frame(frame(name))
    assert sorted(p.name for p in (tmp_path / ".bake-seq").iterdir()) == []  # no temp or moved-aside lock left


def test_a_render_holding_a_frame_keeps_its_lock_past_the_lease(tmp_path, monkeypatch):
    from bake_seq.sequences.manifest import claim_frame, release_frame

    monkeypatch.setenv("BAKE_SEQ_LOCK_LEASE_S", "0.5")
    frame = str(tmp_path / "plate.0001.png")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from bake_seq.sequences.manifest import claim_frame\n"
                               "print(claim_frame(sys.argv[1]), flush=True)\ntime.sleep(60)", frame],
                              stdout=subprocess.PIPE, text=True, env={**subprocess_env(), "BAKE_SEQ_LOCK_LEASE_S": "0.5"})
    try:
        assert holder.stdout.readline().strip() == "True"
        time.sleep(1.5)  # three leases: the holder's refreshes keep it
        assert not claim_frame(frame)
    finally:
        holder.kill()
        holder.wait()
    assert claim_frame(frame)  # its process is gone: taken at once
    release_frame(frame)


def test_a_live_process_that_is_no_render_delays_a_frame_by_one_lease(tmp_path, ckpt, monkeypatch):
    from bake_seq.sequences.safe_write import HOST as _HOST

    monkeypatch.setenv("BAKE_SEQ_LOCK_LEASE_S", "1.5")
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1005))
    out = tmp_path / "o" / "plate.####.png"
    other = subprocess.Popen(["sleep", "60"])  # a live pid on this host that never refreshes a lock
    try:
        (tmp_path / "o" / ".bake-seq").mkdir(parents=True)
        written = time.time()
        lock_of(tmp_path / "o", "plate.1002.png").write_text(f"{_HOST} {other.pid}\n")
        lock_of(tmp_path / "o", "plate.1003.png").write_text(f"{_HOST} 999999999\n")  # dead: taken at once
        result = bake("render", plate, "-o", out, "--checkpoint", ckpt)
    finally:
        other.kill()
    assert "(4 rendered, 0 already done)" in result.stderr
    assert os.stat(tmp_path / "o" / "plate.1002.png").st_mtime >= written + 1.5 - 0.1  # (file time granularity)
    assert not list((tmp_path / "o" / ".bake-seq").glob("*.lock*"))
    assert "(0 rendered, 4 already done)" in bake("render", plate, "-o", out, "--checkpoint", ckpt).stderr


def test_frames_a_live_render_never_finishes_exit_12_naming_them(tmp_path, ckpt, monkeypatch):
    import threading

    monkeypatch.setenv("BAKE_SEQ_LOCK_LEASE_S", "0.3")  # gives up after 10 leases without news: 3 s
    plate = png16_with_10bit_codes(tmp_path / "p", range(1001, 1004))
    (tmp_path / "o" / ".bake-seq").mkdir(parents=True)
    lock = lock_of(tmp_path / "o", "plate.1002.png")
    lock.write_text("nodeA 4242\n")
    stop = threading.Event()

    def hung_render_refreshing_its_lease():
        while not stop.wait(0.05):
            os.utime(lock)

    refresher = threading.Thread(target=hung_render_refreshing_its_lease)
    refresher.start()
    try:
        result = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, code=12)
    finally:
        stop.set()
        refresher.join()
    line = result.stderr.strip().splitlines()[-1]
    assert "frames left unfinished by another render: 1002" in line and "run again" in line
    assert (tmp_path / "o" / "plate.1001.png").exists() and (tmp_path / "o" / "plate.1003.png").exists()
    lock.unlink()  # that render is gone: the rerun finishes the shot
    assert "(1 rendered, 2 already done)" in bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt).stderr


def render_command(plate, out, ckpt, *extra):
    return [sys.executable, "-m", "bake_node", "render", str(plate), "-o", str(out), "--checkpoint", ckpt, *extra]


def test_another_hosts_locks_are_taken_over_after_the_lease(tmp_path, ckpt):
    import json

    plate = png16_with_10bit_codes(tmp_path / "p", range(1, 5))
    (tmp_path / "o" / ".bake-seq").mkdir(parents=True)
    written = time.time()
    for n in range(1, 5):  # a farm node that crashed mid-chunk
        lock_of(tmp_path / "o", f"plate.{n:04d}.png").write_text("nodeA 4242\n")
    run = subprocess.run(render_command(plate, tmp_path / "o", ckpt, "--frames", "1-4", "--json"),
                         capture_output=True, text=True, timeout=120,
                         env={**subprocess_env(), "BAKE_SEQ_LOCK_LEASE_S": "3"})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["rendered"] == 4
    for n in range(1, 5):  # not before the lease ran out
        assert os.stat(tmp_path / "o" / f"plate.{n:04d}.png").st_mtime >= written + 3 - 0.1
    assert not list((tmp_path / "o" / ".bake-seq").glob("*.lock*"))


def test_garbage_locks_never_hang_or_crash_and_every_frame_is_rendered(tmp_path, ckpt):
    from bake_seq.sequences.safe_write import HOST as _HOST

    plate = png16_with_10bit_codes(tmp_path / "p", range(1, 11))
    (tmp_path / "o" / ".bake-seq").mkdir(parents=True)
    lock = lambda n: lock_of(tmp_path / "o", f"plate.{n:04d}.png")
    lock(1).mkdir()
    lock(2).write_text("hello world\n")
    lock(3).write_text(f"{_HOST} 1\n")  # a live process of this host that is no render
    lock(4).write_text(f"{_HOST} 4242\n")
    os.utime(lock(4), (time.time() + 86400,) * 2)  # dated tomorrow
    lock(5).write_text(f"{_HOST} -5\n")
    lock(6).write_text(f"{_HOST} 99999999999999999999999\n")  # was an OverflowError in os.kill
    os.mkfifo(lock(7))  # opening it for reading would hang
    lock(8).write_bytes(b"\x00\xff" * 50)
    precious = tmp_path / "precious.txt"
    precious.write_text("not a lock")
    lock(9).symlink_to(precious)
    lock(10).write_text("")
    run = subprocess.run(render_command(plate, tmp_path / "o", ckpt), capture_output=True, text=True,
                         timeout=120, env={**subprocess_env(), "BAKE_SEQ_LOCK_LEASE_S": "2"})
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "(10 rendered, 0 already done)" in run.stderr
    assert all((tmp_path / "o" / f"plate.{n:04d}.png").exists() for n in range(1, 11))
    assert precious.read_text() == "not a lock"  # a symlinked lock is moved aside, never followed
    assert not list((tmp_path / "o" / ".bake-seq").glob("*.lock*"))


def slow_plate(tmp_path, size=384):
    """12 frames slow enough (tiles of a per-pixel model) for two renders to overlap."""
    from tests.test_render_cli import write_raw

    (tmp_path / "p").mkdir()
    rng = np.random.default_rng(0)
    for n in range(1001, 1013):
        write_raw(tmp_path / "p" / f"plate.{n}.png", (rng.random((size, size, 3)) * 65535).astype(np.uint16), "uint16")
    return tmp_path / "p" / "plate.####.png"


def frames_done(stderr):
    return [int(n) for n in re.findall(r"frame (\d+) done", stderr)]


def test_two_renders_into_one_folder_render_each_frame_once(tmp_path, ckpt):
    import json

    command = render_command(slow_plate(tmp_path), tmp_path / "o", ckpt, "--json", "--tile", "128")
    env = {**subprocess_env(), "BAKE_SEQ_LOCK_LEASE_S": "3"}  # shorter than a lock is held: refreshing must work
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    summaries, done = [], []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        summaries.append(json.loads(out))
        done.append(frames_done(err))
    assert sum(s["rendered"] for s in summaries) == 12  # no frame twice, none lost
    assert sorted(done[0] + done[1]) == list(range(1001, 1013))
    assert len(list((tmp_path / "o").glob("plate.*.png"))) == 12
    assert not list((tmp_path / "o" / ".bake-seq").glob("*.lock*"))


def test_a_render_killed_mid_shot_leaves_no_frame_missing(tmp_path, ckpt):
    import signal

    plate = slow_plate(tmp_path, size=192)  # the survivor waits for the frames the other holds: no need to be slow
    command = render_command(plate, tmp_path / "o", ckpt, "--tile", "128")
    killed, survivor = (subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                         env=subprocess_env()) for _ in range(2))
    for line in killed.stderr:
        if frames_done(line):
            break
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    first = frames_done(line)[0]
    assert (tmp_path / "o" / f"plate.{first}.png").exists()  # "frame N done" means on disk
    _, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err
    assert all((tmp_path / "o" / f"plate.{n}.png").exists() for n in range(1001, 1013))
    assert not list((tmp_path / "o" / ".bake-seq").glob("*.lock*"))
    again = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, "--tile", "128")
    assert "12 already done, 0 to render" in again.stderr  # every frame complete, its record matching


# Issue 24 B-F: hostile corrections, records and paths: one line with the documented exit code,
# or the right result; never a traceback, a hang or unbounded memory.

@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    """A 2-frame plate, the test global model and its LUT + sidecar from `bake-seq grade`."""
    from tests.bake_node.test_global_model import make_global_checkpoint
    from tests.bake_node.test_shot_grade import panning_plate

    work = tmp_path_factory.mktemp("shot")
    plate = panning_plate(work / "plate", frames=range(1001, 1003))
    gckpt = make_global_checkpoint(work / "global.safetensors")
    bake("grade", plate, "-o", work / "sh.cube", "--checkpoint", gckpt)
    return work, plate, gckpt


def one_line(result, expected):
    assert expected in result.stderr and result.stderr.count("\n") == 1, result.stderr


HOSTILE_JSON = {"nested 5000 deep": "[" * 5000 + "]" * 5000, "3001 digits": "[" + "9" * 3001 + "]",
                "5001 digits": '{"a": ' + "9" * 5001 + "}"}


@pytest.mark.parametrize("body", HOSTILE_JSON.values(), ids=list(HOSTILE_JSON))
def test_hostile_json_is_one_line_as_a_setting_and_no_record_as_a_resume_record(tmp_path, shot, body):
    import shutil

    work, plate, gckpt = shot
    render = ["render", plate, "--checkpoint", gckpt, "-o"]
    problem = "nests deeper than 32 levels" if body.startswith("[[") else f"holds a number of {body.count('9'):,}"
    (tmp_path / "r.json").write_text(body)
    one_line(bake(*render, tmp_path / "o", "--grade", tmp_path / "r.json", code=2), f"grade record {problem}")
    shutil.copy(work / "sh.cube", tmp_path / "x.cube")
    (tmp_path / "x.cube.json").write_text(body)
    one_line(bake(*render, tmp_path / "o", "--grade", tmp_path / "x.cube", code=2), f"LUT sidecar {problem}")
    for ext in ("json", "yaml"):  # the JSON is YAML too
        (tmp_path / f"s.{ext}").write_text(body)
        one_line(bake(*render, tmp_path / "o", "--config", tmp_path / f"s.{ext}", code=2), f"settings file {problem}")
    assert not list(tmp_path.glob("o/*.png"))
    # a resume record: not what bake-seq writes, so no record (render again; status: unrecorded)
    bake(*render, tmp_path / "o", "-q")
    (tmp_path / "o" / ".bake-seq" / "p.1001.png.json").write_text(body)
    for judged_against in ([plate, "--checkpoint", gckpt], []):
        report = json_out(bake("status", tmp_path / "o", *judged_against, "--json", code=7))
        assert report["frame_states"] == {"1001": "unrecorded", "1002": "done"}
    assert "1 already done, 1 to render" in bake(*render, tmp_path / "o").stderr


def json_out(result):
    import json

    return json.loads(result.stdout)


@pytest.mark.parametrize("ext", [".cube", ".spi3d"])
def test_binary_garbage_as_a_lut_is_one_line(tmp_path, shot, ext):
    _, plate, gckpt = shot
    (tmp_path / f"x{ext}").write_bytes(np.random.default_rng(0).bytes(3000))
    failed = bake("render", plate, "-o", tmp_path / "o", "--checkpoint", gckpt, "--grade", tmp_path / f"x{ext}", code=5)
    one_line(failed, "not a LUT file (binary data)")


def test_fifos_devices_and_oversized_luts_are_refused_unread(tmp_path, shot, monkeypatch):
    import signal

    import bake_node.lut

    work, plate, gckpt = shot
    render = ["render", plate, "--checkpoint", gckpt, "-o", tmp_path / "o"]

    def hung(*_):
        raise TimeoutError("a FIFO or device was read")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        one_line(bake(*render, "--grade", "/dev/zero", code=2), "/dev/zero: the grade record is not a regular file")
        for name in ("fifo.json", "fifo.cube", "fifo.yaml"):
            os.mkfifo(tmp_path / name)
        one_line(bake(*render, "--grade", tmp_path / "fifo.json", code=2), "grade record is not a regular file")
        one_line(bake(*render, "--grade", tmp_path / "fifo.cube", code=2), "the LUT is not a regular file")
        one_line(bake(*render, "--config", tmp_path / "fifo.yaml", code=2), "settings file is not a regular file")
        bake(*render, "-q")
        record = tmp_path / "o" / ".bake-seq" / "p.1002.png.json"
        record.unlink()
        os.mkfifo(record)  # a resume record that is a FIFO: no record, never waited on
        assert json_out(bake("status", tmp_path / "o", "--json", code=7))["frame_states"]["1002"] == "unrecorded"
        assert "1 already done, 1 to render" in bake(*render).stderr
    finally:
        signal.alarm(0)
    monkeypatch.setattr(bake_node.lut, "MAX_LUT_BYTES", 1000)  # OCIO's largest LUT as text is ~90 MB of 256
    one_line(bake(*render, "--grade", work / "sh.cube", code=2), "bytes, more than the 1,000 such a file may have")


def test_output_paths_fail_before_any_work_with_one_code_per_cause(tmp_path, shot):
    work, plate, gckpt = shot
    (tmp_path / "file").write_text("not a folder")
    through = tmp_path / "file" / "x"
    failed = bake("grade", plate, "-o", through / "sh.cube", "--checkpoint", gckpt, code=6)
    one_line(failed, "goes through " + str(tmp_path / "file") + ", which is a file, not a folder")
    one_line(bake("render", plate, "-o", through, "--checkpoint", gckpt, code=6), "which is a file, not a folder")
    submit = ["submit", "openjd", plate, "--checkpoint", gckpt, "--bundle", tmp_path / "job", "-i",
              "sRGB Encoded Rec.709 (sRGB)", "-o"]
    one_line(bake(*submit, through / "p.####.png", code=6), "which is a file, not a folder")  # was 10 (retryable)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / ".bake-seq").write_text("a file where the record folder goes")
    one_line(bake("render", plate, "-o", tmp_path / "o", "--checkpoint", gckpt, code=6), ".bake-seq: is a file")
    one_line(bake(*submit, tmp_path / "o" / "p.####.png", code=6), ".bake-seq: is a file")
    one_line(bake("grade", plate, "-o", "/sys/sh.cube", "--checkpoint", gckpt, code=10),  # sysfs takes no new
             "cannot write the LUT or grade record in /sys")                                                # file, even from root
    assert "estimating" not in failed.stderr and not (tmp_path / "job").exists()
    bake("grade", plate, "-o", tmp_path / "new" / "folder" / "sh.cube", "--checkpoint", gckpt)  # made, like render's
    assert (tmp_path / "new" / "folder" / "sh.cube.json").exists()


def test_status_judges_records_strictly_and_walks_only_frames_on_disk(tmp_path, ckpt):
    import json

    plate = png16_with_10bit_codes(tmp_path / "p", [1, 9_999_999])
    bake("render", plate, "-o", tmp_path / "o", "--checkpoint", ckpt, "-q")
    started = time.perf_counter()
    report = json_out(bake("status", tmp_path / "o", "--json", code=7))
    assert time.perf_counter() - started < 30  # was a walk over 10 M frames to a MemoryError
    assert report["counts"] == {"done": 2, "missing": 9_999_997} and report["frames"] == "1-9999999"
    assert report["frame_states"] == {"1": "done", "9999999": "done"}
    records = tmp_path / "o" / ".bake-seq"
    (records / "plate.0001.png.json").write_text(json.dumps({"frame": 1}))  # was a KeyError
    settings = json.loads((records / "plate.9999999.png.json").read_text())
    (records / "plate.9999999.png.json").write_text(json.dumps({**settings, "settings": "notadict"}))
    other = make_checkpoint(tmp_path / "other.safetensors", seed=3)  # stale frames name what changed: an AttributeError
    report = json_out(bake("status", tmp_path / "o", plate, "--checkpoint", other, "--json", code=7))
    assert report["frame_states"] == {"1": "unrecorded", "9999999": "unrecorded"}
    one_line(bake("status", f"{tmp_path}/nonexist/", code=2), "nonexist/: does not exist")


def test_status_of_a_folder_finds_outputs_of_another_extension(tmp_path, ckpt):
    plate = png16_with_10bit_codes(tmp_path / "p", range(1, 3))
    bake("render", plate, "-o", tmp_path / "o" / "plate.####.exr", "--checkpoint", ckpt, "-q")
    assert "complete" in bake("status", tmp_path / "o", plate, "--checkpoint", ckpt).stdout  # EXR outputs of PNG plates
    assert "complete" in bake("status", tmp_path / "o").stdout
