"""An operator that exists only in tests: importing this module registers it. The hosts must show
it with no edits of their own (tests/plugins/test_host_contract.py)."""
import numpy as np

from bake_node.node import Knob, Operator, register


@register
class Posterise(Operator):
    name = "test_posterise"
    label = "Test Posterise"
    knobs = (Knob("test_levels", int, 4, "levels per channel", min=2, max=256),)

    def process(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        steps = self.settings["test_levels"] - 1
        return np.round(np.clip(rgb, 0, 1) * steps) / steps
