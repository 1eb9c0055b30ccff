"""A tiny plate, a bake-seq executable for farm tasks, and helpers to compare rendered frames."""
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bake_node.cli import cli
from tests.test_render_cli import png16_with_10bit_codes, read

REPO = Path(__file__).resolve().parents[3]
FRAMES = (1001, 1002, 1003, 1004)


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def pixels_by_frame(folder) -> dict:
    return {p.name: read(p)[0] for p in sorted(Path(folder).iterdir()) if not p.name.startswith(".")}


def assert_same_frames(got_folder, want_folder):
    got, want = pixels_by_frame(got_folder), pixels_by_frame(want_folder)
    assert sorted(got) == sorted(want) and want
    for name in want:
        assert np.array_equal(got[name], want[name]), name  # bit-identical, not merely close


@pytest.fixture
def plate(tmp_path):
    return png16_with_10bit_codes(tmp_path / "plate", FRAMES)


@pytest.fixture
def bake_seq_exe(tmp_path):
    """What a farm node runs: an absolute executable, independent of the task's working folder."""
    exe = tmp_path / "bin" / "bake-seq"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m bake_node "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def subprocess_env():
    return {**os.environ, "PYTHONPATH": str(REPO)}
