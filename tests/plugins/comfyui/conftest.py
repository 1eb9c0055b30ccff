"""Fixtures: the ComfyUI pack loaded from its folder, with comfy.* stand-ins in sys.modules."""
import sys

import pytest

from tests.plugins.host_stand_ins import COMFY_PACK, ComfyStandIns, load_custom_node, unload


@pytest.fixture
def comfy(monkeypatch):
    stand_ins = ComfyStandIns()
    for name, module in stand_ins.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return stand_ins


@pytest.fixture
def pack(comfy):
    module = load_custom_node(COMFY_PACK)
    yield module
    unload(module)
