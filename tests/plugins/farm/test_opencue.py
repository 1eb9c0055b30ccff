"""`bake-seq submit opencue`: the outline script (pyoutline) is built and serialised without a
Cuebot, and its command, with the chunk's frames filled in as RQD does, renders the frames."""
import json
import pathlib
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET

import fileseq
import pytest

from bake_seq.plugins.farm import opencue_outline
from bake_seq.plugins.farm.opencue_outline import frame_runs
from tests.plugins.farm.conftest import REPO, assert_same_frames, bake, subprocess_env
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
    assert "--frames '#FRAME_START#'" in layer["cmd"] and tiny_checkpoint in layer["cmd"]
    assert "--chunk-of 1001-1004 --chunk-size 2" in layer["cmd"]  # the task counts its own chunk
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
    assert ["--chunk-of 1001-1002" in layers[0]["cmd"], "--chunk-of 1004" in layers[1]["cmd"]] == [True, True]


def test_chunks_are_right_on_any_cuebot_stepped_and_last(tmp_path, bake_seq_exe, monkeypatch):
    """Cuebots before mid-2024 fill #FRAME_END# as start + chunk - 1: with 1-5x2 in chunks of 2
    that made the first task 1-2x2 (frame 3 skipped) and the last 5-6 (frame 6 missing: a failed
    task). The command uses #FRAME_START# only and bake-seq counts the chunk in the layer's frames."""
    monkeypatch.delenv("CUEBOT_HOSTS", raising=False)
    plate = png16_with_10bit_codes(tmp_path / "p", range(1, 6))
    bake("submit", "opencue", plate, "--frames", "1-5x2", "--chunk", "2", "--write", tmp_path / "job",
         "--bake-seq-exe", bake_seq_exe, "-o", tmp_path / "out" / "####.png", "--temporal", "frame")
    [layer] = layers_of((tmp_path / "job" / "opencue_job.xml").read_text())
    assert list(fileseq.FrameSet(layer["range"])) == [1, 3, 5]  # pyoutline may spell it 1,3,5
    assert "#FRAME_END#" not in layer["cmd"]
    for start, old_end in ((1, 2), (5, 6)):  # what an old Cuebot would put in #FRAME_END#
        command = layer["cmd"].replace("#FRAME_START#", str(start)).replace("#FRAME_END#", str(old_end))
        task = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=subprocess_env())
        assert task.returncode == 0, task.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["0001.png", "0003.png", "0005.png"]


# Issue 17 item 1: paths are data. A delivered folder may be named like Python (or shell) code;
# neither bake-seq nor the written script may run it, and the farm must see the path unchanged.
SHIPPED_SCRIPT = REPO / "plugins" / "farm" / "opencue_job.py"
PAYLOAD = '__import__("os").system("touch MARKER")'
HOSTILE_NAMES = {
    "triple_double": f'vendor_x""";{PAYLOAD};r"""',
    "triple_single": f"vendor_x''';{PAYLOAD};r'''",
    "backslash_newline": f'x\\"\\\n{PAYLOAD}\nr"\\',
    "braces": "{{Param.PlateFolder}} {job} {0} %s {{__import__('os').system('touch MARKER')}}",
    "shell": "$(touch MARKER) `touch MARKER`; touch MARKER' \"touch MARKER",
    "non_ascii": f'plåte ñ 日本 \u00a0{PAYLOAD}"""',
}


@pytest.fixture
def argv_dump(tmp_path):
    """Stands in for bake-seq on a farm node: writes the arguments it was given as JSON."""
    exe = tmp_path / "bin" / "argv-dump"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f"#!{sys.executable}\nimport json, sys\n"
                   "frames = sys.argv[sys.argv.index('--frames') + 1]\n"
                   "json.dump(sys.argv[1:], open(frames + '.argv.json', 'w'))\n")
    exe.chmod(0o755)
    return str(exe)


def no_marker(root):
    return [str(p) for p in root.rglob("MARKER*")] == []


@pytest.mark.parametrize("hostile", list(HOSTILE_NAMES.values()), ids=list(HOSTILE_NAMES))
def test_hostile_paths_are_never_run_and_reach_the_farm_unchanged(tmp_path, argv_dump, hostile, monkeypatch):
    monkeypatch.delenv("CUEBOT_HOSTS", raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # where `touch MARKER` would land
    plate = png16_with_10bit_codes(tmp_path / hostile / "plate", range(1, 4))
    output = str(tmp_path / f"out {hostile}" / "####.png")
    job = tmp_path / "job"
    bake("submit", "opencue", plate, "-o", output, "--frames", "1-3", "--chunk", "3", "--write", job,
         "--bake-seq-exe", argv_dump, "--show", hostile, "--shot", hostile, "--service", hostile)
    assert no_marker(tmp_path)

    # The written script runs (as users launch it, without a Cuebot) without running the path.
    printed = subprocess.run([sys.executable, str(job / "opencue_job.py"), "--spec"], capture_output=True,
                             text=True, env=subprocess_env(), cwd=work)
    assert printed.returncode == 0, printed.stderr
    assert no_marker(tmp_path)
    [layer] = layers_of((job / "opencue_job.xml").read_text(encoding="utf-8"))
    assert layers_of(printed.stdout) == [layer]
    spec = ET.fromstring(printed.stdout.split("?>", 1)[1].split(">", 1)[1])
    assert spec.findtext("show") == hostile and spec.findtext("shot") == hostile
    assert spec.find(".//service").text == hostile.split(",")[0].strip()  # pyoutline keeps the first

    # Round trip: the task's command, through a POSIX shell as RQD runs it, hands over the exact paths.
    command = layer["cmd"].replace("#FRAME_START#", "1")
    task = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, cwd=work)
    assert task.returncode == 0, task.stderr
    args = json.loads(pathlib.Path("1.argv.json").read_text())
    # one correction for the shot, estimated at submit and written beside the output (issue 14)
    [grade] = (tmp_path / f"out {hostile}" / ".bake-seq").glob("grade-*.json")
    assert args == ["render", plate, "-o", output, "--frames", "1", "--grade", str(grade),
                    "--chunk-of", "1-3", "--chunk-size", "3"]
    assert no_marker(tmp_path)

    # The script holds no value of the job: it is the shipped module; the values are JSON beside it.
    assert (job / "opencue_job.py").read_text(encoding="utf-8") == SHIPPED_SCRIPT.read_text(encoding="utf-8")
    values = json.loads((job / "opencue_job.json").read_text(encoding="ascii"))
    assert (values["plate"], values["output"], values["show"]) == (plate, output, hostile)
    assert shlex.split(values["layers"][0]["command"]) == [
        argv_dump, "render", plate, "-o", output, "--frames", "#FRAME_START#", "--grade", str(grade),
        "--chunk-of", "1-3", "--chunk-size", "3"]


def test_launches_when_a_cuebot_is_configured(tmp_path, bake_seq_exe, monkeypatch):
    launched = []

    class Job:
        def name(self):
            return "testing-sh010-me_bake"

    cue = opencue_outline.load_job_module()
    monkeypatch.setattr(cue, "launch", lambda ol, cuebot: launched.append((ol, cuebot)) or [Job()])
    monkeypatch.setenv("CUEBOT_HOSTS", "cuebot.example")
    monkeypatch.chdir(tmp_path)
    plate = png16_with_10bit_codes(tmp_path / HOSTILE_NAMES["triple_double"], range(1, 3))
    out = bake("submit", "opencue", plate, "--bake-seq-exe", bake_seq_exe)
    assert "launched testing-sh010-me_bake" in out.stdout and launched[0][1] is None
    [layer] = launched[0][0].get_layers()
    assert layer.get_name() == "render" and shlex.split(layer.get_arg("command"))[2] == plate
    assert no_marker(tmp_path)

    def refuse(ol, cuebot):
        raise ConnectionError("failed to connect to all addresses\nsecond line")

    monkeypatch.setattr(cue, "launch", refuse)
    failed = bake("submit", "opencue", plate, "--cuebot", "nowhere", "--bake-seq-exe", bake_seq_exe, code=10)
    error = [line for line in failed.stderr.splitlines() if "error" in line]
    assert error == [line for line in failed.stderr.splitlines() if "failed" in line] and len(error) == 1


def test_without_pyoutline_the_script_and_its_values_are_still_written(tmp_path, bake_seq_exe, monkeypatch):
    monkeypatch.setitem(sys.modules, "outline", None)  # `import outline` raises ImportError
    monkeypatch.delitem(sys.modules, "bake_seq.plugins.farm.opencue_job", raising=False)
    monkeypatch.delenv("CUEBOT_HOSTS", raising=False)
    monkeypatch.chdir(tmp_path)
    plate = png16_with_10bit_codes(tmp_path / HOSTILE_NAMES["triple_double"], range(1, 3))
    out = bake("submit", "opencue", plate, "--write", tmp_path / "job", "--bake-seq-exe", bake_seq_exe)
    assert not (tmp_path / "job" / "opencue_job.xml").exists() and "job spec not written" in out.stderr
    script = (tmp_path / "job" / "opencue_job.py").read_text(encoding="utf-8")
    assert script == SHIPPED_SCRIPT.read_text(encoding="utf-8")
    assert json.loads((tmp_path / "job" / "opencue_job.json").read_text())["plate"] == plate
    assert no_marker(tmp_path)
