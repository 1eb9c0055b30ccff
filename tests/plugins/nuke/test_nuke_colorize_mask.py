"""The Colorize node in Nuke: its mask-pattern knob is a file knob, and a Nuke-style %04d
pattern reaches `bake-seq render --mask` (and its reader) unchanged."""
import numpy as np

from bake_node.cli import render_cmd
from bake_node.operators.colorize import read_mask
from bake_seq.sequences.plate import write_plate
from tests.plugins.nuke.test_nuke_plugin import BAKE_SEQ, config  # noqa: F401  (fixture)


def test_colorize_node_exposes_the_mask_pattern(bake_nuke, nuke, config, tmp_path):  # noqa: F811
    specs = {s["name"]: s for s in bake_nuke.knob_specs(bake_nuke.operator(config, "colorize"))}
    assert specs["mask"]["class"] == "File_Knob" and specs["colorize_checkpoint"]["class"] == "File_Knob"
    assert specs["detect_damage"]["class"] == "Boolean_Knob" and specs["detect_damage"]["default"] is True
    node = bake_nuke.create_node("colorize", config)
    assert node.knob("mask") is not None and node["mask"].tooltip.startswith("damage masks")
    read = nuke.nodes.Read(file="/plates/010/plate.%04d.exr", first=1001, last=1002)
    node.setInput(0, read)
    node["mask"].setValue(str(tmp_path / "masks" / "m.%04d.png"))
    node["detect_damage"].setValue(False)
    op = bake_nuke.operator(config, "colorize")
    command = bake_nuke.render_command(config, op, bake_nuke.node_values(node, op),
                                       *bake_nuke.read_plate(bake_nuke.upstream_read(node)))
    assert command[:3] == [*BAKE_SEQ, "render"][:3]
    parsed = render_cmd.make_context("render", command[4:]).params
    assert parsed["op_name"] == "colorize" and parsed["mask"].endswith("m.%04d.png")
    assert parsed["detect_damage"] is False
    mask = np.zeros((6, 8, 3), np.float32)
    mask[2:4, 1:5] = 1.0
    write_plate(str(tmp_path / "masks" / "m.1002.png"), mask, channel_names=["R", "G", "B"], metadata={},
                colorspace=None)
    assert read_mask(parsed["mask"], 1002, (6, 8)).sum() == 8
