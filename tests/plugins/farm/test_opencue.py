"""`bake-seq submit opencue`: the outline script (pyoutline) is built and serialised without a
Cuebot, and its command, with the chunk's frames filled in as RQD does, renders the frames."""
import subprocess
import sys
import xml.etree.ElementTree as ET

import fileseq
import pytest

from plugins.farm import opencue_outline
from plugins.farm.opencue_outline import frame_runs
from tests.plugins.farm.conftest import assert_same_frames, bake, subprocess_env
from tests.test_render_cli import png16_with_10bit_codes

pytest.importorskip("outline", reason="pyoutline (opencue-pyoutline) is not installed")


def layers_of(spec_xml: str) -> list[dict]:
    root = ET.fromstring(spec_xml.split("?>", 1)[1].split(">", 1)[1])  # skip <?xml?> and DOCTYPE
    return [{child.tag: child.text for child in layer} | {"name": layer.get("name")}
            for layer in root.iter("layer")]


def test_outline_serialised_without_cuebot_and_its_command_renders(tmp_path, plate, bake_seq_exe,
                                                                    tiny_checkpoint, monkeypatch):
    monkeypatch.delenv("CUEBOT_HOSTS", raising=False)
    options = ["--checkpoint", tiny_checkpoint, "--tile", "0"]
    bake("render", plate, "-o", tmp_path / "local" / "####.png", "--frames", "1001-1002", *options, "-q")
    out = bake("submit", "opencue", plate, "-o", tmp_path / "cue" / "####.png", "--chunk", "2",
               "--write", tmp_path / "job", "--bake-seq-exe", bake_seq_exe, "--show", "testing",
               "--shot", "sh010", *options)
    assert "opencue_job.py" in out.stdout
    spec = (tmp_path / "job" / "opencue_job.xml").read_text()
    [layer] = layers_of(spec)
    assert layer["range"] == "1001-1004" and layer["chunk"] == "2"
    assert "--frames '#FRAME_START#-#FRAME_END#'" in layer["cmd"] and tiny_checkpoint in layer["cmd"]
    assert "<show>testing</show>" in spec and "<shot>sh010</shot>" in spec

    # The script on disk is a standalone pyoutline script: it prints the same spec by itself.
    printed = subprocess.run([sys.executable, str(tmp_path / "job" / "opencue_job.py"), "--spec"],
                             capture_output=True, text=True, env=subprocess_env())
    assert printed.returncode == 0, printed.stderr
    assert layers_of(printed.stdout) == [layer]

    # What RQD runs for the first chunk: tokens replaced, through a shell, from another folder.
    command = layer["cmd"].replace("#FRAME_START#", "1001").replace("#FRAME_END#", "1002")
    task = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, cwd=tmp_path / "job",
                          env=subprocess_env())
    assert task.returncode == 0, task.stderr
    assert "bake-seq: chunk 1001-1002 done 2 frames" in task.stderr
    assert_same_frames(tmp_path / "cue", tmp_path / "local")


def test_gaps_and_steps_become_layers_that_render_only_asked_frames(tmp_path, plate, bake_seq_exe, monkeypatch):
    monkeypatch.delenv("CUEBOT_HOSTS", raising=False)
    assert frame_runs([1, 3, 5, 9, 10, 11, 20]) == [("1-5x2", 2), ("9-11", 1), ("20", 1)]
    bake("submit", "opencue", plate, "--frames", "1001,1002,1004", "--write", tmp_path / "job",
         "--bake-seq-exe", bake_seq_exe)
    layers = layers_of((tmp_path / "job" / "opencue_job.xml").read_text())
    assert [(layer["name"], layer["range"]) for layer in layers] == [("render_1", "1001-1002"), ("render_2", "1004")]
    assert all("'#FRAME_START#-#FRAME_END#'" in layer["cmd"] for layer in layers)


def test_step_is_kept_after_the_frame_tokens(tmp_path, bake_seq_exe, monkeypatch):
    monkeypatch.delenv("CUEBOT_HOSTS", raising=False)
    plate = png16_with_10bit_codes(tmp_path / "p", range(1, 6))
    bake("submit", "opencue", plate, "--frames", "1-5x2", "--write", tmp_path / "job",
         "--bake-seq-exe", bake_seq_exe)
    [layer] = layers_of((tmp_path / "job" / "opencue_job.xml").read_text())
    assert list(fileseq.FrameSet(layer["range"])) == [1, 3, 5]  # pyoutline may spell it 1,3,5
    assert "'#FRAME_START#-#FRAME_END#x2'" in layer["cmd"]  # a chunk 1..5 renders 1,3,5 only


def test_launches_when_a_cuebot_is_configured(tmp_path, plate, bake_seq_exe, monkeypatch):
    launched = []

    class Job:
        def name(self):
            return "testing-sh010-me_bake"

    real_load = opencue_outline.load_script

    def load_script(text, *args):
        module = real_load(text, *args)
        module["launch"] = lambda ol, cuebot: launched.append((ol, cuebot)) or [Job()]
        return module

    monkeypatch.setattr(opencue_outline, "load_script", load_script)
    monkeypatch.setenv("CUEBOT_HOSTS", "cuebot.example")
    out = bake("submit", "opencue", plate, "--bake-seq-exe", bake_seq_exe)
    assert "launched testing-sh010-me_bake" in out.stdout and launched[0][1] is None
    assert [layer.get_name() for layer in launched[0][0].get_layers()] == ["render"]

    def refuse(ol, cuebot):
        raise ConnectionError("failed to connect to all addresses\nsecond line")

    monkeypatch.setattr(opencue_outline, "load_script", lambda text, *a: real_load(text, *a) | {"launch": refuse})
    failed = bake("submit", "opencue", plate, "--cuebot", "nowhere", "--bake-seq-exe", bake_seq_exe, code=10)
    assert failed.stderr.count("\n") == 1 and "failed to connect" in failed.stderr


def test_without_pyoutline_the_script_is_still_written(tmp_path, plate, bake_seq_exe, monkeypatch):
    def no_pyoutline(text, *args):
        raise ImportError("No module named 'outline'")

    monkeypatch.setattr(opencue_outline, "load_script", no_pyoutline)
    monkeypatch.delenv("CUEBOT_HOSTS", raising=False)
    out = bake("submit", "opencue", plate, "--write", tmp_path / "job", "--bake-seq-exe", bake_seq_exe)
    assert (tmp_path / "job" / "opencue_job.py").exists() and not (tmp_path / "job" / "opencue_job.xml").exists()
    assert "job spec not written" in out.stderr
