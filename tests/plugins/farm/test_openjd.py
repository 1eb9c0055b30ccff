"""`bake-seq submit openjd`: a job bundle that `openjd check` accepts and `openjd run` renders
bit-identically to one local render; every render option reaches the task."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import PyOpenColorIO as ocio_lib
import pytest
import yaml

from bake_node.cli import render_cmd
from bake_node.node import all_operators
from bake_seq.ocio.config import DEFAULT_CONFIG
from bake_seq.plugins.farm.task import SET_BY_JOB, default_exe
from tests.plugins.farm.conftest import assert_same_frames, bake, subprocess_env

SRGB = "sRGB Encoded Rec.709 (sRGB)"
OPENJD = shutil.which("openjd") or str(Path(sys.executable).with_name("openjd"))


def load_bundle(folder):
    template = yaml.safe_load((folder / "template.yaml").read_text())
    values = yaml.safe_load((folder / "parameter_values.yaml").read_text())
    return template, values


def task_args(template, values, frames):
    """The task's argv as a worker would run it: job parameters and the chunk filled in."""
    table = {f"Param.{k}": str(v) for k, v in values.items()} | {"Task.Param.Frame": frames}
    action = template["steps"][0]["script"]["actions"]["onRun"]
    fill = lambda text: re.sub(r"\{\{\s*([\w.]+)\s*\}\}", lambda m: table[m[1]], text)  # noqa: E731
    return fill(action["command"]), [fill(arg) for arg in action["args"]]


@pytest.mark.skipif(not Path(OPENJD).exists(), reason="openjd-cli is not installed")
def test_openjd_run_matches_one_local_render(tmp_path, plate, bake_seq_exe, tiny_checkpoint):
    options = ["--checkpoint", tiny_checkpoint, "--bit_depth", "10", "-i", SRGB, "--range-policy", "clip"]
    bake("render", plate, "-o", tmp_path / "local" / "b.####.png", *options, "-q")
    bundle = tmp_path / "job"
    bake("submit", "openjd", plate, "-o", tmp_path / "farm" / "b.####.png", "--chunk", "2",
         "--bundle", bundle, "--bake-seq-exe", bake_seq_exe, *options)
    template, values = load_bundle(bundle)
    assert template["specificationVersion"] == "jobtemplate-2023-09"
    assert template["extensions"] == ["TASK_CHUNKING"]
    frame = template["steps"][0]["parameterSpace"]["taskParameterDefinitions"][0]
    assert frame["type"] == "CHUNK[INT]" and frame["chunks"]["rangeConstraint"] == "CONTIGUOUS"
    assert values["Frames"] == "1001-1004" and values["ChunkSize"] == 2

    check = subprocess.run([OPENJD, "check", str(bundle / "template.yaml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # From another folder: the job must not depend on where it was written or run.
    run = subprocess.run([OPENJD, "run", str(bundle / "template.yaml"),
                          "-p", f"file://{bundle / 'parameter_values.yaml'}"],
                         capture_output=True, text=True, cwd=tmp_path / "plate", env=subprocess_env())
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for chunk in ("1001-1002", "1003-1004"):  # two tasks, each with its own log lines
        assert f"bake-seq: chunk {chunk} start" in run.stdout
        assert f"bake-seq: chunk {chunk} done 2 frames" in run.stdout
    assert re.search(r"bake-seq: frame 1003 done \d+\.\d\ds", run.stdout)
    assert_same_frames(tmp_path / "farm", tmp_path / "local")
    # Same fingerprint as the local render's settings: options reached the tasks intact.
    bake("status", tmp_path / "farm" / "b.####.png", plate, *options)


def given_value(param: click.Option, tmp_path: Path, operator: str = "bake") -> list[str]:
    """A valid command-line form for any render option, so new options are covered unseen."""
    special = {"input_colorspace": SRGB, "output_colorspace": SRGB, "op_name": operator,
               "path_map": "Z:\\shots=/mnt/shots"}
    flag = next(opt for opt in param.opts if opt.startswith("--"))
    if param.is_flag:
        return [param.secondary_opts[0] if param.secondary_opts else flag]
    if param.name == "ocio_config":  # a real config file: the plan loads it
        config = tmp_path / "studio.ocio"
        config.write_text(ocio_lib.Config.CreateFromFile(DEFAULT_CONFIG).serialize())
        value = str(config)
    elif param.name == "config":  # a real settings file: submit reads it
        settings = tmp_path / "bake.yaml"
        settings.write_text("op: bake\nsettings:\n  range_policy: clip\n" if operator == "bake"
                            else f"op: {operator}\nsettings: {{}}\n")
        value = str(settings)
    elif param.name in special:
        value = special[param.name]
    elif isinstance(param.type, click.Choice):
        value = param.type.choices[-1]
    elif isinstance(param.type, click.Path):
        path = tmp_path / f"{param.name}.file"
        path.write_text("x")
        value = str(path)
    elif isinstance(param.type, (click.IntRange, click.FloatRange)):
        value = str(param.type.min if param.type.min is not None else param.type.max or 1)
    else:
        value = "1"
    return [flag, value] * (2 if param.multiple else 1)


@pytest.mark.parametrize("operator", sorted(all_operators()))
def test_every_render_option_reaches_the_task(tmp_path, plate, bake_seq_exe, operator):
    # every option render takes, with the knobs of one operator (another's knobs are refused)
    knobs = {k.name for cls in all_operators().values() for k in cls.knobs}
    own = {k.name for k in all_operators()[operator].all_knobs()}
    given = []
    for param in render_cmd.params:
        if isinstance(param, click.Option) and param.name not in SET_BY_JOB and (param.name not in knobs or param.name in own):
            given += given_value(param, tmp_path, operator)
    bundle = tmp_path / "job"
    bake("submit", "openjd", plate, "--bundle", bundle, "--bake-seq-exe", bake_seq_exe, *given)
    template, values = load_bundle(bundle)
    exe, args = task_args(template, values, "1001-1002")
    assert exe == bake_seq_exe and args[0] == "render"
    got = render_cmd.make_context("render", args[1:]).params
    want = render_cmd.make_context("render", [plate, *given]).params
    assert got["frames"] == [1001, 1002] and got["sequence"] == plate
    for name, value in want.items():
        if name not in SET_BY_JOB:
            assert got[name] == value, name
    definitions = {d["name"]: d for d in template["parameterDefinitions"]}
    assert definitions["OcioConfig"]["type"] == "PATH" and "default" not in definitions["OcioConfig"]
    if operator == "bake":
        assert definitions["Checkpoint"]["dataFlow"] == "IN"


def test_relative_paths_become_absolute_and_deadline_values(tmp_path, plate, bake_seq_exe, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.safetensors").write_text("x")
    bake("submit", "openjd", plate, "-o", "out/x.####.exr", "--bundle", "job", "--deadline-cloud",
         "--checkpoint", "m.safetensors", "--frames", "1001-1003", "--bake-seq-exe", bake_seq_exe,
         "--temporal", "frame")  # a per-frame job: submit loads no model (the file here is not one)
    template, values = load_bundle(tmp_path / "job")
    named = {v["name"]: v["value"] for v in values["parameterValues"]}
    assert named["Checkpoint"] == str(tmp_path / "m.safetensors")
    assert named["OutputFolder"] == str(tmp_path / "out") and named["OutputName"] == "x.####.exr"
    assert named["Frames"] == "1001-1003"
    # Deadline Cloud refuses absolute PATH defaults: paths live in the values file only.
    assert all("default" not in d for d in template["parameterDefinitions"] if d["type"] == "PATH")


def test_submit_fails_before_the_farm_on_bad_input(tmp_path, plate, bake_seq_exe):
    result = bake("submit", "openjd", plate, "--frames", "1001-1010", "--bundle", tmp_path / "job",
                  "--bake-seq-exe", bake_seq_exe, code=3)
    assert "1005-1010" in result.stderr and not (tmp_path / "job").exists()
    bake("submit", "openjd", plate, "-i", "ACEScgg", "--bundle", tmp_path / "job",
         "--bake-seq-exe", bake_seq_exe, code=5)


def test_default_executable_is_absolute(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "bake-seq").write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    assert default_exe() == str(tmp_path / "bin" / "bake-seq")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(Exception, match="--bake-seq-exe"):
        default_exe()


def test_submit_reads_the_settings_file_before_the_farm(tmp_path, plate, bake_seq_exe):
    settings = tmp_path / "zoo.yaml"
    settings.write_text("op: zoo\nsettings:\n  zoo_overlapp: 48\n")  # a misspelt knob
    result = bake("submit", "openjd", plate, "--config", settings, "--bundle", tmp_path / "job",
                  "--bake-seq-exe", bake_seq_exe, code=2)
    assert "zoo.yaml" in result.stderr and not (tmp_path / "job").exists()


@pytest.mark.skipif(not Path(OPENJD).exists(), reason="openjd-cli is not installed")
@pytest.mark.parametrize("temporal", ["shot", "window"])
def test_openjd_chunks_apply_one_shot_correction_bit_identical_to_a_local_render(tmp_path, bake_seq_exe, temporal):
    from tests.bake_node.test_global_model import make_global_checkpoint
    from tests.bake_node.test_shot_grade import panning_plate

    plate = panning_plate(tmp_path / "plate", frames=range(1001, 1006))
    options = ["--checkpoint", make_global_checkpoint(tmp_path / "g.safetensors"), "--temporal", temporal,
               "--window", "3"]
    bake("render", plate, "-o", tmp_path / "local" / "b.####.png", *options, "-q")
    bundle = tmp_path / "job"
    submitted = bake("submit", "openjd", plate, "-o", tmp_path / "farm" / "b.####.png", "--chunk", "2",
                     "--bundle", bundle, "--bake-seq-exe", bake_seq_exe, *options)
    assert f"estimating one correction ({temporal}) from 5 frames" in submitted.stderr
    template, values = load_bundle(bundle)
    [grade] = (tmp_path / "farm" / ".bake-seq").glob("grade-*.json")
    assert values["Grade"] == str(grade)  # a PATH job parameter: path mapping reaches it
    run = subprocess.run([OPENJD, "run", str(bundle / "template.yaml"),
                          "-p", f"file://{bundle / 'parameter_values.yaml'}"],
                         capture_output=True, text=True, cwd=tmp_path, env=subprocess_env())
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "bake-seq: chunk 1005 done 1 frames" in run.stdout and "estimating" not in run.stdout
    assert_same_frames(tmp_path / "farm", tmp_path / "local")  # chunks of 2, 2 and 1 frames: one correction
    # resume fingerprints agree: the local render's settings judge the farm's frames done
    bake("status", tmp_path / "farm" / "b.####.png", plate, *options)


@pytest.mark.skipif(not Path(OPENJD).exists(), reason="openjd-cli is not installed")
def test_openjd_format_strings_in_user_values_stay_literal(tmp_path, bake_seq_exe, tiny_checkpoint):
    from bake_seq.plugins.farm.openjd_bundle import check_template
    from tests.test_render_cli import png16_with_10bit_codes

    plate = png16_with_10bit_codes(tmp_path / "shot {{Session.WorkingDirectory}}", range(1001, 1003))
    path_map = "Z:\\{{Param.Frames}}=/mnt/{{Session.HasPathMappingRules}}"
    bundle = tmp_path / "job"
    bake("submit", "openjd", plate, "--bundle", bundle, "--bake-seq-exe", bake_seq_exe, "--checkpoint",
         tiny_checkpoint, "--path-map", path_map, "--name", "sh010 {{ broken", "-i", SRGB)
    check = subprocess.run([OPENJD, "check", str(bundle / "template.yaml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    template, values = load_bundle(bundle)
    _, args = task_args(template, values, "1001-1002")
    assert args[args.index("--path-map") + 1] == path_map and args[1] == plate  # verbatim on the worker
    with pytest.raises(Exception, match="would be refused"):
        check_template({**template, "name": "{{ Param.Nope"})


def test_the_submitting_machines_ocio_config_travels_with_the_job_and_chunks_fit_deadline(
        tmp_path, plate, bake_seq_exe, monkeypatch):
    config = tmp_path / "studio.ocio"
    config.write_text(ocio_lib.Config.CreateFromFile(DEFAULT_CONFIG).serialize())
    monkeypatch.setenv("OCIO", str(config))
    bake("submit", "openjd", plate, "--bundle", tmp_path / "job", "--bake-seq-exe", bake_seq_exe, "-i", SRGB,
         "--temporal", "frame")
    template, values = load_bundle(tmp_path / "job")
    assert values["OcioConfig"] == str(config)  # not whatever $OCIO the nodes have
    _, args = task_args(template, values, "1001-1002")
    assert args[args.index("--ocio") + 1] == str(config)
    chunk = next(d for d in template["parameterDefinitions"] if d["name"] == "ChunkSize")
    assert chunk["maxValue"] == 150
    failed = bake("submit", "openjd", plate, "--bundle", tmp_path / "job2", "--bake-seq-exe", bake_seq_exe,
                  "--chunk", "200", code=2)
    assert "at most 150 frames per chunk" in failed.stderr and not (tmp_path / "job2").exists()


@pytest.mark.skipif(not Path(OPENJD).exists(), reason="openjd-cli is not installed")
def test_openjd_run_applies_a_learned_correction_like_one_local_render(tmp_path, bake_seq_exe):
    """`bake-seq learn` once (two keys: frames between them blend), then every chunk applies the
    same file: bit-identical to one local render."""
    from tests.train.test_learn_keys import FIRST, FRAMES as SHOT, make_shot

    plate, _, _ = make_shot(tmp_path / "shot")
    last = FIRST + SHOT - 1
    keys = tmp_path / "shot" / "clean"
    learned = tmp_path / "shot.safetensors"
    bake("learn", plate, "--key", f"{FIRST}={keys / f'{FIRST}.png'}", "--key", f"{last}={keys / f'{last}.png'}",
         "-o", learned, "-q")
    options = ["--checkpoint", learned, "-i", SRGB]
    bake("render", plate, "-o", tmp_path / "local" / "####.png", *options, "-q")
    bundle = tmp_path / "job"
    bake("submit", "openjd", plate, "-o", tmp_path / "farm" / "####.png", "--chunk", "2", "--bundle", bundle,
         "--bake-seq-exe", bake_seq_exe, *options)
    run = subprocess.run([OPENJD, "run", str(bundle / "template.yaml"), "-p", f"file://{bundle / 'parameter_values.yaml'}"],
                         capture_output=True, text=True, cwd=tmp_path, env=subprocess_env())
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert_same_frames(tmp_path / "farm", tmp_path / "local")
