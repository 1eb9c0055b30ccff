"""The farm's unit, `bake-seq render --frames A-B`, is safe to retry: re-running a chunk or
overlapping chunks changes nothing that is done; failures say whether a retry can help; paths
map across platforms; the log has lines a farm monitor can read."""
import json
import os
import re
import shutil

import PyOpenColorIO as ocio_lib
import pytest
from click.testing import CliRunner

from bake_node.cli import cli, map_path
from bake_node.errors import EXIT_WRITE, RETRYABLE
from bake_seq.ocio.config import DEFAULT_CONFIG
from tests.plugins.farm.conftest import assert_same_frames, bake


def frame_files(folder):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir() if p.is_file()}


def test_same_chunk_twice_and_overlapping_chunks(tmp_path, plate, tiny_checkpoint):
    bake("render", plate, "-o", tmp_path / "whole" / "####.png", "--checkpoint", tiny_checkpoint, "-q")
    out = tmp_path / "chunks"
    first = bake("render", plate, "-o", out / "####.png", "--frames", "1001-1003", "--checkpoint", tiny_checkpoint)
    assert "chunk 1001-1003 done 3 frames" in first.stderr and "(3 rendered, 0 already done)" in first.stderr
    before = frame_files(out)
    again = bake("render", plate, "-o", out / "####.png", "--frames", "1001-1003", "--checkpoint", tiny_checkpoint)
    assert "(0 rendered, 3 already done)" in again.stderr
    assert frame_files(out) == before  # a retried task touches nothing that is done
    overlap = bake("render", plate, "-o", out / "####.png", "--frames", "1002-1004", "--checkpoint", tiny_checkpoint)
    assert "(1 rendered, 2 already done)" in overlap.stderr
    assert_same_frames(out, tmp_path / "whole")


def test_log_lines_for_a_farm_monitor(tmp_path, plate, tiny_checkpoint):
    result = bake("render", plate, "-o", tmp_path / "o" / "####.png", "--frames", "1001-1002",
                  "--checkpoint", tiny_checkpoint)
    lines = result.stderr.splitlines()
    assert re.fullmatch(r"bake-seq: chunk 1001-1002 start: bake, 2 frames of .* 0 already done, 2 to render", lines[0])
    assert re.fullmatch(r"bake-seq: frame 1001 done \d+\.\d\ds \(1/2, eta \d+s\)", lines[1])
    assert re.fullmatch(r"bake-seq: frame 1002 done \d+\.\d\ds \(2/2, eta 0s\)", lines[2])
    # --json: the summary alone on stdout, the same progress lines on stderr (a log has no terminal)
    result = bake("render", plate, "-o", tmp_path / "j" / "####.png", "--frames", "1001-1002",
                  "--checkpoint", tiny_checkpoint, "--json")
    assert json.loads(result.stdout)["rendered"] == 2
    assert "frame 1002 done" in result.stderr and "eta" in result.stderr
    assert re.fullmatch(r"bake-seq: chunk 1001-1002 done 2 frames \d+\.\ds \(2 rendered, 0 already done\)", lines[3])


def test_unwritable_output_is_retryable_exit_10(tmp_path, plate, tiny_checkpoint, monkeypatch):
    import errno
    import tempfile

    def full(*args, **kwargs):  # root ignores permissions: a full disk stands in for any write failure
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    result = bake("render", plate, "-o", tmp_path / "out" / "####.png", "--checkpoint", tiny_checkpoint,
                  code=EXIT_WRITE)
    assert EXIT_WRITE in RETRYABLE
    [line] = result.stderr.strip().splitlines()[-1:]
    assert "out" in line and "cannot write" in line and "No space left" in line and "Traceback" not in result.output
    assert "frame 1001" not in result.stderr  # found before the first frame is computed


def test_output_through_a_file_is_permanent_and_found_first(tmp_path, plate, tiny_checkpoint):
    (tmp_path / "blocked").write_text("not a folder")
    result = bake("render", plate, "-o", tmp_path / "blocked" / "####.png", "--checkpoint", tiny_checkpoint, code=6)
    assert "blocked" in result.stderr and "not a folder" in result.stderr and "frame 1001" not in result.stderr


def test_bad_input_is_permanent(tmp_path, plate, tiny_checkpoint):
    result = bake("render", plate, "--frames", "1001-1009", "--checkpoint", tiny_checkpoint, code=3)
    assert 3 not in RETRYABLE and "1005-1009" in result.stderr


@pytest.mark.parametrize("path, rules, want", [
    ("Z:\\shots\\sh010\\####.dpx", ["Z:\\shots=/mnt/shots"], "/mnt/shots/sh010/####.dpx"),
    ("z:/Shots/sh010/a.exr", ["Z:\\shots=/mnt/shots"], "/mnt/shots/sh010/a.exr"),
    ("/mnt/shots/sh010/a.exr", ["/mnt/shots=Z:\\shots"], "Z:\\shots\\sh010\\a.exr"),
    ("/mnt/shots2/a.exr", ["/mnt/shots=/x"], "/mnt/shots2/a.exr"),  # whole folder names only
    ("/Mnt/shots/a.exr", ["/mnt/shots=/x"], "/Mnt/shots/a.exr"),  # POSIX stays case-sensitive
    ("/proj/shots/a.exr", ["/proj=/a", "/proj/shots=/b"], "/b/a.exr"),  # longest prefix wins
    ("ocio://studio-config-latest", ["/proj=/a"], "ocio://studio-config-latest"),
])
def test_map_path(path, rules, want):
    assert map_path(path, rules) == want


def test_path_map_rewrites_plate_output_checkpoint_and_ocio(tmp_path, plate, tiny_checkpoint, monkeypatch):
    shutil.copy(tiny_checkpoint, tmp_path / "model.safetensors")
    (tmp_path / "studio.ocio").write_text(ocio_lib.Config.CreateFromFile(DEFAULT_CONFIG).serialize())
    elsewhere = "Z:\\show"  # how a Windows submitter named tmp_path
    args = ["render", f"{elsewhere}\\plate\\plate.####.png", "-o", f"{elsewhere}\\out\\####.png",
            "--checkpoint", f"{elsewhere}\\model.safetensors", "--ocio", f"{elsewhere}\\studio.ocio",
            "--frames", "1001", "--path-map", f"{elsewhere}={tmp_path}"]
    bake(*args)
    assert (tmp_path / "out" / "1001.png").exists()
    monkeypatch.setenv("BAKE_SEQ_PATH_MAP", f"Y:\\nothing=/x;{elsewhere}={tmp_path}")  # per-node rules
    result = CliRunner().invoke(cli, args[:-2] + ["--json"])
    assert result.exit_code == 0, result.output
    assert '"skipped_complete": 1' in result.stdout
    info = bake("info", f"{elsewhere}\\plate\\plate.####.png", "--path-map", f"{elsewhere}={tmp_path}")
    assert "1001-1004" in info.stdout


def test_ocio_config_identified_by_content_not_path(tmp_path, plate, tiny_checkpoint):
    """Nodes that mount the config under other paths make frames that count as the same."""
    text = ocio_lib.Config.CreateFromFile(DEFAULT_CONFIG).serialize()
    for folder in ("linux", "windows"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.ocio").write_text(text)
    common = [plate, "-o", tmp_path / "o" / "####.png", "--checkpoint", tiny_checkpoint, "--frames", "1001"]
    bake("render", *common, "--ocio", tmp_path / "linux" / "config.ocio", "-q")
    again = bake("render", *common, "--ocio", tmp_path / "windows" / "config.ocio")
    assert "(0 rendered, 1 already done)" in again.stderr


def test_opencue_core_booking_is_followed(tmp_path, plate, tiny_checkpoint, monkeypatch):
    """RQD says how many cores the task booked in $CUE_THREADS: torch uses that many, not the host's."""
    import torch

    monkeypatch.setenv("CUE_THREADS", "1")
    monkeypatch.delenv("BAKE_SEQ_THREADS", raising=False)
    torch.set_num_threads(2)
    bake("render", plate, "-o", tmp_path / "o" / "####.png", "--frames", "1001", "--checkpoint", tiny_checkpoint)
    assert torch.get_num_threads() == 1 and os.environ["BAKE_SEQ_THREADS"] == "1"
    monkeypatch.delenv("BAKE_SEQ_THREADS")
