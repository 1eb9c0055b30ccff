"""bake-seq for ComfyUI: plate sequences in and out (OpenImageIO + OpenColorIO) and one node per
bake-seq operator (Bake Colour Restore, ...), generated from the operators' knobs.

ComfyUI loads this folder from custom_nodes/. The nodes run bake-seq itself, so bake-seq must be
installed into the Python that runs ComfyUI (docs/hosts.md says how without replacing its torch).
"""
try:
    import bake_node  # noqa: F401
except ImportError as exc:  # ComfyUI logs this line and skips the pack
    raise ImportError("bake-seq is not installed in ComfyUI's Python environment: install it with "
                      "that Python's pip (see bake-seq's docs/hosts.md), then restart ComfyUI") from exc

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
