"""Grain profiles: YAML a person can read and edit, presets with their documented numbers."""
import math

import numpy as np
import pytest
import yaml

from bake_node.errors import SettingsError
from bake_node.grain.profile import (CHANNELS, PRESETS, load_profile, preset_profile, relative_grain,
                                     save_profile)


def test_yaml_round_trip_keeps_every_number(tmp_path):
    profile = preset_profile("medium")
    save_profile(profile, tmp_path / "p.yaml")
    text = (tmp_path / "p.yaml").read_text()
    assert text.startswith("# bake-seq grain profile") and "sigma:" in text
    again = load_profile(tmp_path / "p.yaml")
    for name in CHANNELS:
        assert again.channels[name].size == profile.channels[name].size
        assert np.allclose(again.channels[name].sigma, profile.channels[name].sigma, rtol=1e-4)
    assert again.correlation == profile.correlation


def test_hand_edits_are_honoured(tmp_path):
    data = yaml.safe_load(preset_profile("fine").dumps())
    data["channels"]["red"]["sigma"] = [[0.5, 0.02], [0.0, 0.01]]  # unsorted on purpose
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    red = load_profile(tmp_path / "p.yaml").channels["red"]
    assert red.sigma_at(np.array([-1.0, 0.25, 9.0])).tolist() == pytest.approx([0.01, 0.015, 0.02])


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d["channels"]["green"].update(size=-1), "size"),
    (lambda d: d["channels"]["blue"].update(sigma=[[0.1, -0.01]]), "sigma"),
    (lambda d: d["correlation"].update(red_green=2), "correlation"),
    (lambda d: d["channels"].pop("red"), "red"),
])
def test_bad_profiles_fail_with_one_line_naming_the_file(tmp_path, edit, problem):
    data = yaml.safe_load(preset_profile("fine").dumps())
    edit(data)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(SettingsError) as info:
        load_profile(str(tmp_path / "p.yaml"))
    message = str(info.value)
    assert "p.yaml" in message and problem in message and "\n" not in message


def test_unreadable_or_non_yaml_profiles(tmp_path):
    with pytest.raises(SettingsError, match="grain profile is unreadable"):
        load_profile(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("a: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_profile(str(tmp_path / "bad.yaml"))


def test_presets_follow_their_documented_derivation():
    # docs/grain.md: relative std per pixel = ln(10) * rms/1000 * sqrt((s^2 + 0.98^2) / s^2) / 0.6
    assert relative_grain(5.0, 0.7) == pytest.approx(math.log(10) * 0.005 * math.sqrt(1 + 0.98**2 / 0.49) / 0.6)
    for name in PRESETS:
        profile = preset_profile(name)
        red, green, blue = (profile.channels[c] for c in CHANNELS)
        assert 0.025 < green.sigma_at(0.18) / 0.18 < 0.04  # ~3 % of the intensity at mid grey
        assert red.sigma_at(0.18) < green.sigma_at(0.18) < blue.sigma_at(0.18)
        assert blue.sigma_at(0.0) / blue.sigma_at(0.18) > green.sigma_at(0.0) / green.sigma_at(0.18)
    sizes = [preset_profile(n).channels["green"].size for n in ("fine", "medium", "coarse")]
    assert sizes == sorted(sizes)
    with pytest.raises(SettingsError, match="unknown grain preset"):
        preset_profile("huge")
