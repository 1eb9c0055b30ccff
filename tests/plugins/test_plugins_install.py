"""`bake-seq plugins install comfyui|nuke` and `plugins describe`, and the installed copies loading
the way their hosts load them."""
import importlib
import json
import runpy
import sys

import pytest
from click.testing import CliRunner

from bake_node.cli import cli
from bake_node.node import all_operators, describe_operators
from tests.plugins.host_stand_ins import COMFY_PACK, ComfyStandIns, load_custom_node, unload


def bake_seq(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_comfyui_install_is_a_loadable_pack(tmp_path, monkeypatch):
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    for _ in range(2):  # a second install replaces the first
        result = bake_seq("plugins", "install", "comfyui", "--dest", custom_nodes)
        assert result.exit_code == 0, result.output
    pack_dir = custom_nodes / "bake-seq"
    assert {"__init__.py", "nodes.py", "host.py", "pyproject.toml"} <= {p.name for p in pack_dir.iterdir()}
    assert not list(pack_dir.rglob("__pycache__")) and not list(custom_nodes.glob(".bake-seq.partial-*"))
    for name, module in ComfyStandIns().modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    pack = load_custom_node(pack_dir)
    try:
        assert "BakeSeqBake" in pack.NODE_CLASS_MAPPINGS and "BakeSeqLoadPlateSequence" in pack.NODE_CLASS_MAPPINGS
    finally:
        unload(pack)
    (custom_nodes / "someone-else").mkdir()
    monkeypatch.setattr("bake_node.commands.plugins.FOLDERS", {"comfyui": "someone-else", "nuke": "x"})
    result = bake_seq("plugins", "install", "comfyui", "--dest", custom_nodes)
    assert result.exit_code == 6 and "not made by bake-seq" in result.output
    assert bake_seq("plugins", "install", "comfyui", "--dest", tmp_path / "nope").exit_code == 2


def test_comfy_registry_metadata():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((COMFY_PACK / "pyproject.toml").read_text())
    assert project["project"]["name"] and project["project"]["version"]
    assert {"PublisherId", "DisplayName", "Icon"} <= set(project["tool"]["comfy"])


def test_nuke_install_adds_the_plugin_and_its_menu(tmp_path, monkeypatch):
    dot_nuke = tmp_path / ".nuke"
    dot_nuke.mkdir()
    (dot_nuke / "init.py").write_text("import nuke\nnuke.pluginAddPath('./gizmos')")  # the user's own
    for _ in range(2):
        result = bake_seq("plugins", "install", "nuke", "--dest", dot_nuke)
        assert result.exit_code == 0, result.output
    plugin = dot_nuke / "bake_seq"
    assert {p.name for p in plugin.iterdir()} == {"init.py", "menu.py", "bake_nuke.py", "bake_seq.json",
                                                 ".installed-by-bake-seq"}
    init = (dot_nuke / "init.py").read_text()
    assert init.startswith("import nuke\nnuke.pluginAddPath('./gizmos')\n")
    assert init.count(f"nuke.pluginAddPath({str(plugin)!r})") == 1
    config = json.loads((plugin / "bake_seq.json").read_text())
    assert config["command"] == [sys.executable, "-m", "bake_node"] and config["operators"] == describe_operators()

    from tests.plugins.nuke import fake_nuke

    fake_nuke = importlib.reload(fake_nuke)  # fresh menus
    monkeypatch.setitem(sys.modules, "nuke", fake_nuke)
    monkeypatch.syspath_prepend(str(plugin))  # what nuke.pluginAddPath does for Python
    monkeypatch.delitem(sys.modules, "bake_nuke", raising=False)
    runpy.run_path(str(plugin / "init.py"))
    runpy.run_path(str(plugin / "menu.py"))
    entries = fake_nuke.menu("Nodes").items["bake-seq"].items
    assert set(entries) == {cls.label for cls in all_operators().values()}
    sys.modules.pop("bake_nuke", None)


def test_describe_prints_the_contract():
    result = bake_seq("plugins", "describe")
    assert result.exit_code == 0 and json.loads(result.output) == describe_operators()
