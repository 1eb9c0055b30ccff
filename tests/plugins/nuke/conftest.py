"""Fixtures: the Nuke plugin's bake_nuke module imported next to a fake `nuke` module."""
import importlib
import sys

import pytest

from tests.plugins.host_stand_ins import NUKE_PLUGIN


@pytest.fixture
def nuke(monkeypatch):
    from tests.plugins.nuke import fake_nuke

    fake = importlib.reload(fake_nuke)  # fresh records for every test
    monkeypatch.setitem(sys.modules, "nuke", fake)
    return fake


@pytest.fixture
def bake_nuke(nuke, monkeypatch):
    monkeypatch.syspath_prepend(str(NUKE_PLUGIN))
    monkeypatch.delitem(sys.modules, "bake_nuke", raising=False)
    module = importlib.import_module("bake_nuke")
    yield module
    sys.modules.pop("bake_nuke", None)
