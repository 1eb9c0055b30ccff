"""Shared fixtures: the built-in config and a tiny hand-written one."""

import textwrap

import pytest

from bake_seq.ocio.config import resolve_config

TINY_CONFIG = """\
ocio_profile_version: 2

roles:
  default: linear
  scene_linear: linear
{extra_roles}
file_rules:
{file_rules}  - !<Rule> {{name: Default, colorspace: default}}

displays:
  sRGB:
    - !<View> {{name: Raw, colorspace: linear}}

colorspaces:
  - !<ColorSpace>
    name: linear
    aliases: [lin_tiny]
    family: ""

  - !<ColorSpace>
    name: gamma22
    from_scene_reference: !<ExponentTransform> {{value: 2.2, direction: inverse}}
"""


def write_tiny_config(path, extra_roles="", file_rules=""):
    """Write a two-space OCIO v2 config (``linear``, ``gamma22``) and return its path."""
    path.write_text(TINY_CONFIG.format(extra_roles=textwrap.indent(extra_roles, "  "),
                                       file_rules=textwrap.indent(file_rules, "  ")))
    return str(path)


@pytest.fixture
def studio(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    return resolve_config()[0]


@pytest.fixture
def tiny(tmp_path):
    return write_tiny_config(tmp_path / "tiny.ocio")


@pytest.fixture
def tiny_config():
    """The writer itself, for tests that need extra roles or file rules."""
    return write_tiny_config
