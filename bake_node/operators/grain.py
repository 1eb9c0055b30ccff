"""The Grain operator: add film grain matching a profile (or a preset) in linear light.

working space -> linear (OCIO) -> + grain (per channel, seeded by seed + frame) -> working space.
Grain is made over the whole frame, so --tile never changes it; every knob is prefixed grain_
because the CLI makes one option per knob of every operator.
"""
from __future__ import annotations

import numpy as np

from ..grain.linear import to_linear, to_working
from ..grain.profile import PRESETS, GrainProfile, load_profile, preset_profile
from ..grain.synth import MODES, GrainSettings, add_grain
from ..contract import Knob, Operator


class Grain(Operator):
    name = "grain"
    label = "Film Grain"
    knobs = (
        Knob("grain_profile", "path", None, "grain profile YAML from `bake-seq grain analyze` "
             "(used instead of the preset when given)"),
        Knob("grain_preset", "choice", "medium", "built-in grain when no profile is given: fine "
             "(50D-ish), medium (250D-ish), coarse (500T-ish), for 2K scans", choices=tuple(PRESETS)),
        Knob("grain_mode", "choice", "fast", "fast: shaped Gaussian noise; physical: Newson et al. "
             "Boolean grain model (slower, see docs/grain.md)", choices=MODES),
        Knob("grain_seed", int, 0, "random seed; grain also changes with the frame number", min=0),
        Knob("grain_amount", float, 1.0, "grain strength, x the profile (0 = none)", min=0.0),
        Knob("grain_red", float, 1.0, "red grain, x grain_amount", min=0.0),
        Knob("grain_green", float, 1.0, "green grain, x grain_amount", min=0.0),
        Knob("grain_blue", float, 1.0, "blue grain, x grain_amount", min=0.0),
        Knob("grain_size", float, 1.0, "grain size, x the profile (e.g. 2 for a 4K plate with a 2K "
             "preset)", min=0.05, max=16.0),
        Knob("grain_response", float, 1.0, "intensity response around 18% grey: 1 = as profiled, "
             "0 = the same grain at every intensity, 2 = twice as steep (fast mode)", min=0.0, max=4.0),
        Knob("grain_samples", int, 16, "Monte-Carlo filter samples per pixel (physical mode)",
             min=1, max=1024),
        Knob("grain_radius", float, 0.0, "grain radius in pixels (physical mode); 0 = the radius "
             "whose grain correlates like the profile's size", min=0.0, max=8.0),
        Knob("grain_premultiplied", bool, True, "plates with alpha: RGB is premultiplied (the EXR and CG "
             "convention), so grain is scaled by alpha and transparent pixels get none; "
             "--no-grain-premultiplied for straight-alpha plates (grain under the whole matte)"),
    )
    accepts_alpha = True

    def prepare(self, settings: dict) -> None:
        super().prepare(settings)
        path = self.settings.get("grain_profile")
        self.profile: GrainProfile = load_profile(path) if path else preset_profile(self.settings["grain_preset"])
        s = self.settings
        amount = s["grain_amount"]
        self.grain = GrainSettings(
            mode=s["grain_mode"], seed=int(s["grain_seed"]),
            amount=(amount * s["grain_red"], amount * s["grain_green"], amount * s["grain_blue"]),
            size=float(s["grain_size"]), response=float(s["grain_response"]), samples=int(s["grain_samples"]),
            radius=float(s["grain_radius"]))

    def fingerprint(self) -> dict:
        # The profile's content, not its path: an edited profile re-renders, a moved one does not.
        knobs = {k.name: self.settings.get(k.name) for k in self.knobs
                 if k.name not in ("grain_profile", "grain_preset")}
        return {"op": self.name, "profile_sha256": self.profile.sha256(), **knobs}

    def process(self, rgb: np.ndarray, frame: int, alpha: np.ndarray | None = None) -> np.ndarray:
        grained = to_working(add_grain(to_linear(rgb), self.profile, frame, self.grain))
        if alpha is None or not self.settings["grain_premultiplied"]:
            return grained
        # Premultiplied RGB = colour x alpha, so the grain a pixel shows is its grain x alpha:
        # none where alpha is 0, half where a soft edge is half covered.
        weight = np.clip(np.nan_to_num(alpha, nan=0.0), 0.0, 1.0)[:, :, None]
        return (rgb + (grained - rgb) * weight).astype(np.float32)
