"""Stand-ins for the hosts we cannot run here (no ComfyUI, no Nuke): the pack is loaded the way
ComfyUI's nodes.load_custom_node loads a folder, with minimal comfy.utils / comfy.model_management
modules; Nuke code runs against tests/plugins/nuke/fake_nuke.py."""
import importlib.util
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMFY_PACK = REPO / "plugins" / "comfyui"
NUKE_PLUGIN = REPO / "plugins" / "nuke"


class Interrupted(Exception):
    """comfy.model_management.InterruptProcessingException's stand-in."""


class ComfyStandIns:
    def __init__(self):
        self.bars = []  # every ProgressBar made: [total, current]
        self.interrupt_after = None  # raise on the n-th interrupt check
        self.checks = 0
        stand_ins = self

        class ProgressBar:  # comfy.utils.ProgressBar(total).update(n)
            def __init__(self, total):
                self.state = [total, 0]
                stand_ins.bars.append(self.state)

            def update(self, value):
                self.state[1] += value

        def throw_exception_if_processing_interrupted():
            stand_ins.checks += 1
            if stand_ins.interrupt_after is not None and stand_ins.checks > stand_ins.interrupt_after:
                raise Interrupted()

        self.modules = {
            "comfy": types.ModuleType("comfy"),
            "comfy.utils": types.ModuleType("comfy.utils"),
            "comfy.model_management": types.ModuleType("comfy.model_management"),
        }
        self.modules["comfy.utils"].ProgressBar = ProgressBar
        management = self.modules["comfy.model_management"]
        management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
        management.InterruptProcessingException = Interrupted


def load_custom_node(folder: Path):
    """What ComfyUI's nodes.load_custom_node does for a folder: module named after the full path
    (dots replaced), spec from its __init__.py, registered in sys.modules, then executed."""
    name = str(folder).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def unload(module) -> None:
    for key in [k for k in sys.modules if k == module.__name__ or k.startswith(module.__name__ + ".")]:
        del sys.modules[key]
