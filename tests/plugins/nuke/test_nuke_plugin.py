"""The Nuke plugin without Nuke: knob generation and command lines as plain Python, the node and
menu against a fake `nuke` module, and one real `bake-seq render` started the way the node does."""
import os
import sys

import numpy as np
import OpenImageIO as oiio
import pytest

from bake_node.cli import render_cmd
from bake_node.node import all_operators, describe_operators
from tests.plugins.host_stand_ins import REPO

BAKE_SEQ = [sys.executable, "-m", "bake_node"]


@pytest.fixture
def config():
    return {"command": BAKE_SEQ, "operators": describe_operators()}


def plate(folder, frames=(1, 2, 3), h=12, w=16):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in frames:
        out = oiio.ImageOutput.create(str(folder / f"plate.{n:04d}.png"))
        out.open(str(folder / f"plate.{n:04d}.png"), oiio.ImageSpec(w, h, 3, oiio.UINT16))
        out.write_image(rng.integers(0, 65535, (h, w, 3), dtype=np.uint16))
        out.close()
    return str(folder / "plate.####.png")


def bake_under_read(bake_nuke, nuke, config, file, first=1, last=3):
    read = nuke.nodes.Read(file=file, first=first, last=last)
    blur = nuke.nodes.Blur()
    blur.setInput(0, read)
    node = bake_nuke.create_node("bake", config)
    node.setInput(0, blur)
    return node


def test_knob_specs_mirror_the_contract(bake_nuke, config):
    for name, cls in all_operators().items():
        specs = bake_nuke.knob_specs(bake_nuke.operator(config, name))
        assert [s["name"] for s in specs] == [k.name for k in cls.all_knobs()]
    specs = {s["name"]: s for s in bake_nuke.knob_specs(bake_nuke.operator(config, "bake"))}
    assert specs["device"]["class"] == "Enumeration_Knob" and specs["device"]["values"] == ["auto", "cpu", "cuda"]
    assert specs["tile"]["class"] == "Int_Knob" and specs["checkpoint"]["class"] == "File_Knob"
    assert specs["checkpoint"]["default"] == "" and specs["range_policy"]["default"] == "preserve"


def test_knob_arguments_follow_the_contracts_rule(bake_nuke):
    samples = {"int": [3, 3.0], "float": [0.5, 2.0], "bool": [True, False], "path": ["/a b/c.safetensors"],
               "str": ["x"], "choice": []}
    for cls in all_operators().values():
        for knob in cls.all_knobs():
            described = knob.describe()
            for value in [None, "", *samples[knob.kind], *knob.choices]:
                expected = [] if value in (None, "") else knob.cli_args(knob.coerce(value))
                assert bake_nuke.knob_args(described, value) == expected, (knob.name, value)


def test_the_node_has_the_operators_knobs_and_the_menu_every_operator(bake_nuke, nuke, config):
    bake_nuke.add_menu(nuke.menu("Nodes"), config)
    entries = nuke.menu("Nodes").items["bake-seq"].items
    for name, cls in all_operators().items():
        assert entries[cls.label] == f"bake_nuke.create_node({name!r})"
    node = bake_nuke.create_node("bake", config)
    assert node.Class() == "Group" and node.name() == "Bake"
    assert [child.Class() for child in node.children] == ["Output", "Input", "Input"]  # plate, keys
    assert node.children[0].input(0) is node.children[1]  # the image passes through
    assert "bake_nuke.learn(nuke.thisNode())" in node["learn"].script
    assert node[bake_nuke.OP_KNOB].value() == "bake" and not node[bake_nuke.OP_KNOB].visible
    for knob in all_operators()["bake"].all_knobs():
        assert node.knob(knob.name) is not None and node[knob.name].tooltip == knob.help
    assert node["device"].value() == "auto" and "bake_nuke.render(nuke.thisNode())" in node["render"].script


def test_render_command_comes_from_the_upstream_read_and_parses(bake_nuke, nuke, config):
    node = bake_under_read(bake_nuke, nuke, config, "/plates/010/plate.%04d.exr", 1001, 1010)
    node["tile"].setValue(256)
    node["checkpoint"].setValue("/models/bake v5.safetensors")
    op = bake_nuke.operator(config, "bake")
    plate_file, frames = bake_nuke.read_plate(bake_nuke.upstream_read(node))
    command = bake_nuke.render_command(config, op, bake_nuke.node_values(node, op), plate_file, frames)
    assert command[:10] == [*BAKE_SEQ, "render", "/plates/010/plate.%04d.exr", "--op", "bake", "--frames",
                            "1001-1010", "-o"]
    assert command[10] == "/plates/010_bake/plate.%04d.exr"
    parsed = render_cmd.make_context("render", command[4:]).params  # bake-seq's own parser accepts it
    assert (parsed["frames"], parsed["tile"], parsed["checkpoint"]) == ([*range(1001, 1011)], 256,
                                                                        "/models/bake v5.safetensors")
    node["farm_args"].setValue("--chunk 5")
    submit = bake_nuke.submit_command(config, op, bake_nuke.node_values(node, op), plate_file, frames)
    assert submit[3:5] == ["submit", "openjd"] and submit[5:-2] == command[4:] and submit[-2:] == ["--chunk", "5"]
    lonely = bake_nuke.create_node("bake", config)
    with pytest.raises(ValueError, match="connect a Read"):
        bake_nuke.upstream_read(lonely)


def test_small_pure_helpers(bake_nuke):
    assert bake_nuke.frame_bounds("1001-1100x2") == (1001, 1100)
    assert bake_nuke.frame_bounds("1,5,10-20") == (1, 20) and bake_nuke.frame_bounds("-5--1") == (-5, -1)
    assert bake_nuke.default_output("/a/scan/0001.jpg") == "/a/scan_bake/0001.png"
    assert bake_nuke.parse_progress("bake-seq: frame 1003 done 2.31s (3/10)") == (3, 10)
    assert bake_nuke.parse_progress("bake-seq: frame 1003 done 2.31s (3/10, eta 16s)") == (3, 10)
    assert bake_nuke.parse_progress("bake-seq: chunk 1001-1010 start: 10 frames") is None


def test_render_button_runs_bake_seq_with_progress_and_reads_the_result(bake_nuke, nuke, config, tmp_path,
                                                                       tiny_checkpoint, monkeypatch):
    # Nuke's own Python variables would stop bake-seq's Python from starting (issue 15): not passed on
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "nuke-python-home"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "nuke-python-path"))
    node = bake_under_read(bake_nuke, nuke, config, plate(tmp_path / "shot"))
    node["checkpoint"].setValue(tiny_checkpoint)
    node["device"].setValue("cpu")
    bake_nuke.render(node, background=False, config=config)
    assert nuke.MESSAGES == []
    assert nuke.TASKS[-1].progress == [33, 66, 100]  # one update per frame, from bake-seq's log
    outputs = [f for f in sorted(os.listdir(tmp_path / "shot_bake")) if f.endswith(".png")]
    assert outputs == ["plate.0001.png", "plate.0002.png", "plate.0003.png"]
    read = [n for n in nuke.CREATED if n.Class() == "Read"][-1]
    assert (read["file"].value(), read["first"].value(), read["last"].value()) == (
        str(tmp_path / "shot_bake" / "plate.####.png"), 1, 3)


def test_errors_name_the_knobs_not_the_flags(bake_nuke, nuke, config):
    failing = ("print(\"bake-seq: error: unknown --input-colorspace 'X' — did you mean ...; or lower --tile\"); "
               "raise SystemExit(5)")
    config = {**config, "command": [sys.executable, "-c", failing]}
    bake_nuke.render(bake_under_read(bake_nuke, nuke, config, "/p/####.exr"), background=False, config=config)
    assert "unknown the 'input colour space' knob 'X'" in nuke.MESSAGES[-1]
    assert "lower the 'tile' knob" in nuke.MESSAGES[-1] and "--" not in nuke.MESSAGES[-1].split(":", 1)[1]


def test_a_failed_render_says_why(bake_nuke, nuke, config):
    failing = "print('bake-seq: error: /m.safetensors: checkpoint file not found — check'); raise SystemExit(4)"
    config = {**config, "command": [sys.executable, "-c", failing]}
    bake_nuke.render(bake_under_read(bake_nuke, nuke, config, "/p/####.exr"), background=False, config=config)
    assert "bake-seq render failed (exit 4)" in nuke.MESSAGES[-1] and "checkpoint file not found" in nuke.MESSAGES[-1]
    assert not [n for n in nuke.CREATED if n.Class() == "Read"][1:]  # no Read of a result that is not there


def test_submit_button_hands_the_job_to_the_farm_command(bake_nuke, nuke, config):
    config = {**config, "command": [sys.executable, "-c", "import sys; print('ARGS', *sys.argv[1:])"]}
    node = bake_under_read(bake_nuke, nuke, config, "/plates/010/plate.####.exr", 1001, 1002)
    node["farm"].setValue("opencue")
    node["farm_args"].setValue('--write "/jobs/shot 010" --chunk 5')
    thread = bake_nuke.submit(node, config)  # in a thread: the UI does not wait for the submitter
    thread.join(timeout=60)
    assert nuke.MESSAGES[-1].startswith("submitted:")
    assert "--write /jobs/shot 010 --chunk 5" in nuke.MESSAGES[-1]  # the quoted path stayed one argument
    values = bake_nuke.node_values(node, bake_nuke.operator(config, "bake"))
    assert bake_nuke.submit_command(config, bake_nuke.operator(config, "bake"), values, "/p/####.exr",
                                    "1-2")[-4:] == ["--write", "/jobs/shot 010", "--chunk", "5"]
    assert "ARGS submit opencue /plates/010/plate.####.exr --op bake --frames 1001-1002" in nuke.MESSAGES[-1]


def test_the_reads_path_is_evaluated_as_nuke_reads_it(bake_nuke, nuke, config):
    nuke.ROOT.addKnob(nuke.Knob("shot"))
    nuke.ROOT["shot"].setValue("sh010")
    nuke.ROOT["project_directory"].setValue("/proj")
    nuke.VIEWS[:] = ["left", "right"]
    node = bake_under_read(bake_nuke, nuke, config, "[value root.shot]/plate.%V.####.exr", 1001, 1002)
    plate_file, frames = bake_nuke.read_plate(bake_nuke.upstream_read(node))
    assert (plate_file, frames) == ("/proj/sh010/plate.left.####.exr", "1001-1002")



def test_learn_button_learns_from_a_second_read_and_sets_the_checkpoint(bake_nuke, nuke, config, tmp_path):
    """Plate Read on input 0, a Read of the corrected frames on the 'keys' input: Learn runs
    `bake-seq learn` and the node's checkpoint knob then names the learned file."""
    from tests.train.test_learn_keys import FIRST, make_shot

    pattern, _, _ = make_shot(tmp_path / "shot")
    node = bake_under_read(bake_nuke, nuke, config, pattern, FIRST, FIRST + 5)
    keys = nuke.nodes.Read(file=str(tmp_path / "shot" / "clean" / "####.png"), first=FIRST, last=FIRST + 5)
    node.setInput(1, keys)
    node["key_frames"].setValue(str(FIRST))
    bake_nuke.learn(node, background=False, config=config)
    learned = str(tmp_path / "shot" / "plate_learned.safetensors")
    assert node["checkpoint"].value() == learned and os.path.exists(learned), nuke.MESSAGES
    assert "stages kept: grade" in nuke.MESSAGES[-1]
    command = bake_nuke.learn_command(config, "bake", {"learned": "/o.safetensors"}, "/p/####.dpx", "/k/k.%04d.tif",
                                      bake_nuke.frame_list("1001,1100-1101"))
    assert command[-6:] == ["--key", "1001=/k/k.1001.tif", "--key", "1100=/k/k.1100.tif", "--key", "1101=/k/k.1101.tif"]
    assert bake_nuke.frame_file("/a/b.$F4.exr", 7) == "/a/b.0007.exr" and bake_nuke.frame_file("x.#.png", 12) == "x.12.png"


def test_learn_without_a_keys_read_says_which_input(bake_nuke, nuke, config):
    node = bake_under_read(bake_nuke, nuke, config, "/p/####.exr")
    with pytest.raises(ValueError, match="'keys' input"):
        bake_nuke.learn(node, background=False, config=config)
