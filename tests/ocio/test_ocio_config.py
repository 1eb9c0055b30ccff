import PyOpenColorIO as OCIO
import pytest

from bake_seq.ocio.config import (DEFAULT_CONFIG, WORKING_SPACE, colourspace_is_data, list_colorspaces,
                         resolve_colorspace, resolve_config)
from bake_seq.ocio.errors import ColourError


def test_error_is_one_line_with_problem_and_fix():
    e = ColourError("unknown colour space 'x'", "pass another")
    assert str(e) == "unknown colour space 'x' — pass another"
    assert (e.problem, e.fix) == ("unknown colour space 'x'", "pass another")


def test_default_config_when_nothing_set(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    config, source, reason = resolve_config()
    assert (source, reason) == (DEFAULT_CONFIG, "built-in default")
    assert config.getColorSpace(WORKING_SPACE) is not None


def test_empty_ocio_env_is_ignored(monkeypatch):
    monkeypatch.setenv("OCIO", "")
    assert resolve_config()[2] == "built-in default"


def test_env_ocio_file_is_used(monkeypatch, tiny):
    monkeypatch.setenv("OCIO", tiny)
    config, source, reason = resolve_config()
    assert (source, reason) == (tiny, "$OCIO")
    assert sorted(list_colorspaces(config)) == ["gamma22", "linear"]


def test_explicit_beats_env(monkeypatch, tiny):
    monkeypatch.setenv("OCIO", tiny)
    config, source, reason = resolve_config(DEFAULT_CONFIG)
    assert (source, reason) == (DEFAULT_CONFIG, "--ocio")
    assert "ACEScg" in list_colorspaces(config)


def test_configs_are_cached_per_source(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    assert resolve_config()[0] is resolve_config()[0]


@pytest.mark.parametrize("use_env", [False, True])
def test_bogus_config_names_path_and_fix(monkeypatch, tmp_path, use_env):
    bogus = str(tmp_path / "nope.ocio")
    if use_env:
        monkeypatch.setenv("OCIO", bogus)
    with pytest.raises(ColourError) as info:
        resolve_config(None if use_env else bogus)
    assert bogus in info.value.problem
    assert ("$OCIO" if use_env else "--ocio") in info.value.fix
    assert "\n" not in str(info.value)


def test_garbage_config_file(tmp_path):
    path = tmp_path / "garbage.ocio"
    path.write_text("this: [is not an OCIO config\n")
    with pytest.raises(ColourError, match="garbage.ocio"):
        resolve_config(str(path))


@pytest.mark.parametrize("name, canonical", [
    ("ACEScg", "ACEScg"),                          # exact
    ("lin_ap1", "ACEScg"),                         # alias
    ("srgb_tx", "sRGB Encoded Rec.709 (sRGB)"),    # alias
    ("scene_linear", "ACEScg"),                    # role
    ("acescg", "ACEScg"),                          # case
    ("SRGB ENCODED REC.709 (SRGB)", "sRGB Encoded Rec.709 (sRGB)"),
])
def test_resolve_colorspace(studio, name, canonical):
    assert resolve_colorspace(studio, name) == canonical


def test_unknown_colorspace_suggests_close_names(studio):
    with pytest.raises(ColourError) as info:
        resolve_colorspace(studio, "ACEScgg", "input colour space")
    assert info.value.problem == "unknown input colour space 'ACEScgg'"
    assert "did you mean 'ACEScg'" in info.value.fix
    assert "'ACEScc'" in info.value.fix
    assert "--list-colorspaces" in info.value.fix


def test_unknown_colorspace_without_close_names(studio):
    with pytest.raises(ColourError, match="list-colorspaces"):
        resolve_colorspace(studio, "zzzzzzzz")


def test_data_spaces(studio):
    assert colourspace_is_data(studio, "Raw")
    assert colourspace_is_data(studio, "data")
    assert not colourspace_is_data(studio, "ACEScg")


def test_list_colorspaces_is_names(studio):
    names = list_colorspaces(studio)
    assert WORKING_SPACE in names and "ACEScg" in names
    assert all(isinstance(n, str) for n in names)
    assert isinstance(studio, OCIO.Config)
