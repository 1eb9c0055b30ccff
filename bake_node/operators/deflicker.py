"""The Deflicker operator: every frame brought to a temporally smoothed colour state of its
neighbours, measured from the plate itself (bake_node/temporal.py); no key, no model.

A shot is analysed once (thumbnails: ~0.1 s per 2K frame) before the first frame is rendered;
each frame's state is its measured colour change to its segment's first frame, and the smoothed
state a Gaussian-weighted local linear fit of its neighbours' states over time (``deflicker_window``
frames sigma): changes faster than the window (flicker, breathing) are removed, an exposure ramp
or a sunset (linear over the window) is kept, and cuts start a new segment (never smoothed across).
The analysis can be stored and given back (``deflicker_analysis``), as `submit` does so every
farm chunk applies the same corrections as one local render.
"""
from __future__ import annotations

import numpy as np

from ..contract import Knob, Operator
from ..errors import SettingsError
from .. import temporal


class Deflicker(Operator):
    name = "deflicker"
    label = "Deflicker"
    knobs = (
        Knob("deflicker_window", float, temporal.DEFLICKER_WINDOW, "smoothing of the plate's own colour over time: a Gaussian of this "
             "many frames (sigma) fitted as a local line, so flicker faster than ~2x this is removed and "
             "ramps (an exposure change, a sunset) are kept; cuts are never smoothed across; 0 = off",
             min=0.0, max=1000.0),
        Knob("deflicker_analysis", "path", None, "apply the corrections from this stored analysis (.json from "
             "`bake-seq info --temporal --write` or `bake-seq submit`) instead of measuring the frames"),
    )

    def prepare(self, settings: dict) -> None:
        super().prepare(settings)
        self.analysis: temporal.Analysis | None = None
        self.corrections: dict[int, temporal.Change] = {}
        if self.settings.get("deflicker_analysis"):
            self._use(temporal.load_analysis(self.settings["deflicker_analysis"]))

    @classmethod
    def may_need_shot(cls, settings: dict) -> bool:
        return not settings.get("deflicker_analysis")

    @property
    def needs_shot(self) -> bool:
        return not self.settings.get("deflicker_analysis")

    def _use(self, analysis: temporal.Analysis) -> None:
        self.analysis = analysis
        changes = analysis.deflicker(float(self.settings["deflicker_window"]))
        self.corrections = {record.frame: change for record, change in zip(analysis.frames, changes)}

    def analyse(self, frames: list[int], read) -> temporal.Analysis:
        analysis = temporal.analyse_frames(frames, read)
        self._use(analysis)
        return analysis

    def check_frames(self, frames: list[int]) -> None:
        missing = [n for n in frames if n not in self.corrections]
        if missing:
            where = self.settings.get("deflicker_analysis")
            raise SettingsError(where, f"has no measurement for frame {missing[0]}"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                "analyse the whole shot again (bake-seq info --temporal --write)")

    def fingerprint(self) -> dict:
        found = {"op": self.name, "deflicker_window": float(self.settings["deflicker_window"])}
        if self.analysis is not None:
            found["analysis_sha256"] = temporal.analysis_sha256(self.analysis)
        return found

    def store_shot(self, folder: str, about: dict) -> tuple[str, str]:
        """What the analysis found, stored for farm chunks: (knob, path of the record)."""
        return "deflicker_analysis", temporal.store_analysis(folder, self.analysis, about)

    def describe_shot(self, frames: list[int]) -> str:
        return f"measuring the plate's colour change over {len(frames)} frames"

    def process(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        if frame not in self.corrections:
            raise SettingsError(None, f"frame {frame} was not analysed",
                                "the host must call analyse() over the shot first")
        change = self.corrections[frame]
        if change == temporal.IDENTITY:
            return rgb
        return temporal.apply(change, rgb, "preserve")
