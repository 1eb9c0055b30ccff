"""What the pack needs from ComfyUI itself, imported lazily so the nodes also run (and are
tested) outside ComfyUI: progress bars, interrupt checks, the input/output folders, and the
mapping from node-contract knobs to ComfyUI input types."""
from __future__ import annotations

import os
from contextlib import contextmanager

from bake_node.node import Knob

CATEGORY = "bake-seq"
MAX_INT = 2**31 - 1


def each_frame(items, total: int):
    """Yield ``items``; check ComfyUI's interrupt flag before each, advance its progress bar
    after each (the caller has finished with the item when it asks for the next one)."""
    bar = _progress_bar(total)
    for item in items:
        _throw_if_interrupted()
        yield item
        if bar is not None:
            bar.update(1)


def _progress_bar(total: int):
    try:
        from comfy.utils import ProgressBar
    except ImportError:
        return None
    return ProgressBar(total)


def _throw_if_interrupted() -> None:
    try:
        from comfy.model_management import throw_exception_if_processing_interrupted
    except ImportError:
        return
    throw_exception_if_processing_interrupted()


def folder(kind: str) -> str | None:
    """ComfyUI's input or output folder (relative plate paths are read/written there)."""
    try:
        import folder_paths
    except ImportError:
        return None
    return folder_paths.get_input_directory() if kind == "input" else folder_paths.get_output_directory()


def resolve(path: str, kind: str) -> str:
    path = os.path.expanduser(path.strip())
    base = folder(kind)
    return os.path.join(base, path) if base and not os.path.isabs(path) else path


@contextmanager
def in_node_words(node: str, words: dict[str, str]):
    """Errors raised inside a node name what the user set there (the node's inputs), not the
    command-line flags bake-seq's shared code names: '--input-colorspace' -> 'the colorspace input'."""
    try:
        yield
    except Exception as exc:
        text = str(exc)
        for flag, said in sorted(words.items(), key=lambda item: -len(item[0])):  # longest first
            text = text.replace(flag, said)
        if text != str(exc):
            exc.args = (f"{node}: {text}",)
        raise


def knob_words(knobs) -> dict[str, str]:
    return {k.flag: f"the {k.name} input" for k in knobs}


def knob_input(knob: Knob) -> tuple:
    """A node-contract knob as a ComfyUI input: (type, options)."""
    options = {"default": knob.default, "tooltip": knob.help}
    if knob.kind == "choice":
        return list(knob.choices), options
    if knob.kind in ("int", "float"):
        integer = knob.kind == "int"
        options.update(min=knob.min if knob.min is not None else -MAX_INT,
                       max=knob.max if knob.max is not None else MAX_INT,
                       step=1 if integer else 0.01)
        return ("INT" if integer else "FLOAT"), options
    if knob.kind == "bool":
        return "BOOLEAN", options
    options["default"] = "" if knob.default is None else str(knob.default)  # blank = the default
    return "STRING", options
