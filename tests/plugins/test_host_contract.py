"""One declaration, every host: an operator registered by a test (no host code touched) shows up as
a ComfyUI node, a Nuke node with its knobs, and `bake-seq render` options, and runs in each."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bake_node.node import OPERATORS, describe_operators, register
from tests.plugins.host_stand_ins import COMFY_PACK, NUKE_PLUGIN, REPO, ComfyStandIns, load_custom_node, unload


@pytest.fixture
def throwaway():
    from tests.plugins.throwaway_operator import Posterise

    register(Posterise)  # again: only the first import registers it
    yield Posterise
    OPERATORS.pop(Posterise.name, None)


def test_a_new_operator_is_a_comfyui_node(throwaway, monkeypatch):
    stand_ins = ComfyStandIns()
    for name, module in stand_ins.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    pack = load_custom_node(COMFY_PACK)
    try:
        node = pack.NODE_CLASS_MAPPINGS["BakeSeqTestPosterise"]
        assert pack.NODE_DISPLAY_NAME_MAPPINGS["BakeSeqTestPosterise"] == "Test Posterise"
        levels = node.INPUT_TYPES()["required"]["test_levels"]
        assert levels[0] == "INT" and (levels[1]["default"], levels[1]["min"], levels[1]["max"]) == (4, 2, 256)
        image = torch.rand(2, 8, 8, 3)
        out, _ = node().run(image=image, test_levels=3, device="cpu", tile=0)
        assert set(np.unique(out.numpy())) <= {0.0, 0.5, 1.0} and stand_ins.bars == [[2, 2]]
    finally:
        unload(pack)


def test_a_new_operator_is_a_nuke_node(throwaway, monkeypatch):
    monkeypatch.syspath_prepend(str(NUKE_PLUGIN))
    monkeypatch.delitem(sys.modules, "bake_nuke", raising=False)
    import bake_nuke
    from tests.plugins.nuke.fake_nuke import Menu

    config = {"command": ["bake-seq"], "operators": json.loads(json.dumps(describe_operators()))}
    specs = {s["name"]: s for s in bake_nuke.knob_specs(bake_nuke.operator(config, "test_posterise"))}
    assert specs["test_levels"]["class"] == "Int_Knob" and specs["test_levels"]["range"] == (2, 256)
    menu = Menu("Nodes")
    bake_nuke.add_menu(menu, config)
    assert menu.items["bake-seq"].items["Test Posterise"] == "bake_nuke.create_node('test_posterise')"
    command = bake_nuke.render_command(config, bake_nuke.operator(config, "test_posterise"),
                                       {"test_levels": 3.0}, "/p/####.png", "1-2")
    assert command[-2:] == ["--test-levels", "3"] and "test_posterise" in command
    sys.modules.pop("bake_nuke", None)


def test_a_new_operator_is_a_render_option_and_renders(throwaway, tmp_path):
    from bake_seq.sequences.plate import write_plate

    write_plate(str(tmp_path / "in" / "p.0001.png"), np.full((6, 8, 3), 0.3, np.float32),
                channel_names=["R", "G", "B"], metadata={}, colorspace=None)
    script = (
        "import sys; import tests.plugins.throwaway_operator; from bake_node.cli import cli\n"
        "cli(['render', '--help'], standalone_mode=False)\n"
        f"cli(['render', {str(tmp_path / 'in' / 'p.####.png')!r}, '--op', 'test_posterise', '--test-levels', '3',"
        f" '-o', {str(tmp_path / 'out' / 'p.####.png')!r}, '-q'], standalone_mode=False)\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "--test-levels" in run.stdout and "levels per channel" in run.stdout
    from bake_seq.sequences.plate import read_plate
    out = read_plate(str(tmp_path / "out" / "p.0001.png"), None).pixels
    np.testing.assert_allclose(out, 0.5, atol=1 / 65535)  # 0.3 posterised to 3 levels


def test_host_values_are_checked_against_the_knobs():
    from bake_node.errors import SettingsError
    from bake_node.operators.bake import Bake

    assert Bake.settings_from({"tile": 256.0, "checkpoint": "", "device": "cpu", "image": object()}) == \
        {"tile": 256, "device": "cpu"}  # blank -> default, unknown keys ignored, 256.0 -> 256
    with pytest.raises(SettingsError, match="tile = -1 is out of range"):
        Bake.settings_from({"tile": -1})
    with pytest.raises(SettingsError, match="one of auto, cpu, cuda"):
        Bake.settings_from({"device": "tpu"})
