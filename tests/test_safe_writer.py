"""Every command that writes a file goes through the one safe writer (issue 34): run each one
against the same hostile targets and check its exit code, one line without a traceback, inputs
byte-identical, and no stray file.

The commands are listed from the CLI itself: a new command must be added to WRITERS (with a
cheap invocation) or to WRITES_NOTHING, or this test fails.

    input         a hard link to one of the command's inputs, named as its output   -> 6
    existing      an existing file that is no input, without --overwrite            -> 6
    device        a link (with the output's name) to /dev/full                      -> 6
    through_file  a path that goes through a file                                   -> 6
    full          a full tmpfs                                                      -> 10
    read_only     a read-only tmpfs                                                 -> 10
    sys           /sys                                                              -> 10

A command that wrote with its own open()/save() would replace the input or the existing file
(hash changed), report /dev/full as written (exit 0), or end a full disk in a traceback.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bake_node.cli import cli
from bake_seq.sequences.plate import write_plate
from tests.conftest import make_checkpoint

SRGB = "sRGB Encoded Rec.709 (sRGB)"
CASES = {"input": 6, "existing": 6, "device": 6, "through_file": 6, "full": 10, "read_only": 10, "sys": 10}
WRITES_NOTHING = {"status", "plugins describe", "zoo info"}


def commands(group: click.Group = cli, prefix: str = "") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix}{name} ")
        else:
            found.append(f"{prefix}{name}")
    return found


# command -> (output name, kind, argv given the world W and the target T). kind "file": T is the
# file written; "folder": T is the folder written into (for a folder, "input" and "existing"
# are files standing where the folder should be).
WRITERS = {
    "render": ("out", "folder", lambda w, t: ["render", w.plate, "--checkpoint", w.ckpt, "-o", t, "-q"]),
    "config": ("out.yaml", "file", lambda w, t: ["config", "--config", w.settings, "-o", t]),
    "convert": ("out.safetensors", "file", lambda w, t: ["convert", w.reference, "-o", t, "--preset", "cpu"]),
    "bench": ("bench.json", "file", lambda w, t: ["bench", "--checkpoint", w.ckpt, "--size", "64x48", "--rss-size",
                                                  "none", "--frames", "1", "--json-file", t]),
    "demo": ("out", "folder", lambda w, t: ["demo", "-o", t, "--frames", "1", "--checkpoint", w.ckpt]),
    "eval": ("out", "folder", lambda w, t: ["eval", "--data", w.data, "--checkpoint", w.ckpt, "-o", t,
                                            "--cases", "1", "--no-compare-cpu"]),
    "export": ("out.pt", "file", lambda w, t: ["export", "--format", "torchscript", "--checkpoint", w.ckpt, "-o", t]),
    "grade": ("out.cube", "file", lambda w, t: ["grade", w.plate, "-o", t]),
    "info": ("out.json", "file", lambda w, t: ["info", w.plate, "--temporal", "--write", t]),
    "grain analyze": ("out.yaml", "file", lambda w, t: ["grain", "analyze", w.plate, "-o", t]),
    "learn": ("out.safetensors", "file", lambda w, t: ["learn", w.plate, "--key", f"1001={w.key}", "-o", t]),
    "plugins install": ("", "folder", lambda w, t: ["plugins", "install", "comfyui", "--dest", t]),
    "submit openjd": ("out", "folder", lambda w, t: ["submit", "openjd", w.plate, "-o", w.farm_out, "--bundle", t]),
    "submit opencue": ("out", "folder", lambda w, t: ["submit", "opencue", w.plate, "-o", w.farm_out, "--write", t]),
    "train": ("out", "folder", lambda w, t: ["train", "--data", w.data, "--run", t, "--preset", "cpu", "--crop", "32",
                                             "--steps", "1", "--threads", "1", "--config", w.train_config]),
}


def test_every_command_is_listed():
    """A new command must say how it writes (or that it does not), so it is tested below."""
    listed = set(WRITERS) | WRITES_NOTHING
    assert set(commands()) == listed, f"unlisted: {set(commands()) - listed}, gone: {listed - set(commands())}"


class World:
    """Small real inputs on disk: a 3-frame 16-bit PNG plate, a key, a tiny checkpoint, a
    reference .pth, settings, a training image."""

    def __init__(self, root: Path):
        rng = np.random.default_rng(3)
        y, x = np.mgrid[0:192, 0:256] / 256.0
        base = np.stack([0.5 + 0.4 * np.sin(7 * x + 3 * y), 0.5 + 0.4 * np.cos(5 * y - 2 * x), 0.3 + 0.5 * x], -1)
        pixels = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1).astype(np.float32)
        for n in (1001, 1002, 1003):
            write_plate(str(root / "plate" / f"p.{n}.png"), pixels, channel_names=["R", "G", "B"], metadata={},
                        colorspace=SRGB)
        self.plate = str(root / "plate" / "p.####.png")
        self.key = str(root / "keys" / "k.1001.png")
        write_plate(self.key, np.clip(pixels * [1.1, 1.0, 0.85], 0, 1).astype(np.float32),
                    channel_names=["R", "G", "B"], metadata={}, colorspace=SRGB)
        self.data = str(root / "data")
        write_plate(str(root / "data" / "a.png"), pixels[:48, :64], channel_names=["R", "G", "B"], metadata={},
                    colorspace=SRGB)
        self.ckpt = str(make_checkpoint(root / "models" / "tiny.safetensors"))
        self.reference = str(root / "models" / "reference.pth")
        from bake_node.models.bakenet import PRESETS, BakeNet
        torch.save({"model_state_dict": BakeNet(PRESETS["cpu"]).state_dict()}, self.reference)
        self.settings = str(root / "settings" / "bake.yaml")
        os.makedirs(os.path.dirname(self.settings))
        Path(self.settings).write_text("op: bake\nsettings: {}\n")
        self.train_config = str(root / "settings" / "tiny-train.yaml")
        Path(self.train_config).write_text("dim: 8\ndepth: 10\ndownscale: 1\nval_every: 0\nsample_every: 0\n")
        self.farm_out = str(root.parent / "farm_out" / "####.png")  # an output: submit stores the shot's record there
        self.inputs = {"render": self.plate.replace("####", "1001"), "config": self.settings,
                       "convert": self.reference, "bench": self.ckpt, "demo": self.ckpt, "eval": self.ckpt,
                       "export": self.ckpt, "grade": self.plate.replace("####", "1002"),
                       "info": self.plate.replace("####", "1003"),
                       "grain analyze": self.plate.replace("####", "1003"), "learn": self.key,
                       "plugins install": self.ckpt, "submit openjd": self.plate.replace("####", "1001"),
                       "submit opencue": self.plate.replace("####", "1001"), "train": self.train_config}
        self.root = root


def hashes(root: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if not p.is_dir())


def mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    w = World(root / "inputs")
    w.mounts = root / "mounts"
    w.mounts.mkdir()
    w.full = w.mounts / "full"
    w.read_only = w.mounts / "read_only"
    w.can_mount = mount_tmpfs(w.full, "size=256k") and mount_tmpfs(w.read_only, "ro,size=64k")
    if w.can_mount:
        fd = os.open(w.full / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it to the last block
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
    yield w
    for mount in (w.full, w.read_only):
        subprocess.run(["umount", str(mount)], capture_output=True)


def target_for(world: World, case: str, command: str, tmp_path: Path) -> str:
    name, kind, _ = WRITERS[command]
    if case == "input":
        link = tmp_path / "links" / (name or "dest")
        link.parent.mkdir()
        os.link(world.inputs[command], link)  # the same file under the output's name: identity, not name
        return str(link)
    if case == "existing":
        path = tmp_path / "existing" / (name or "dest")
        path.parent.mkdir()
        path.write_bytes(b"a colourist's file\n")
        return str(path)
    if case == "device":
        link = tmp_path / "devices" / (name or "dest")
        link.parent.mkdir()
        link.symlink_to("/dev/full")
        return str(link)
    if case == "through_file":
        (tmp_path / "blocker").write_bytes(b"a file, not a folder\n")
        return str(tmp_path / "blocker" / (name or "dest"))
    if case in ("full", "read_only"):
        if not world.can_mount:
            pytest.skip("cannot mount a tmpfs here (needs root); the other cases still ran")
        folder = getattr(world, case)
        return str(folder / name) if name else str(folder)
    if not os.path.isdir("/sys"):
        pytest.skip("no /sys here")
    return f"/sys/{name or ''}".rstrip("/") or "/sys"


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_hostile_target_is_one_line_and_nothing_is_lost(world, command, case, tmp_path):
    target = target_for(world, command=command, case=case, tmp_path=tmp_path)
    before = hashes(world.root)
    mounted = {m: files(m) for m in (world.full, world.read_only) if world.can_mount}
    _, _, argv = WRITERS[command]
    result = CliRunner().invoke(cli, [str(a) for a in argv(world, target)])
    errors = [line for line in result.stderr.splitlines() if line.startswith("bake-seq: error:")]
    assert result.exit_code == CASES[case], (command, case, result.output, result.exception)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert len(errors) == 1, result.stderr
    assert hashes(world.root) == before, "an input changed"
    if case in ("input", "existing"):
        assert os.path.isfile(target) and Path(target).read_bytes() != b"" and \
            (case == "input" or Path(target).read_bytes() == b"a colourist's file\n")
    stray = [str(p) for p in tmp_path.rglob("*") if ".partial" in p.name or "write-test" in p.name]
    assert not stray, stray
    assert {m: files(m) for m in mounted} == mounted, "a file was left on a mount"
