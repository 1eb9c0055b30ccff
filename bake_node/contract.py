"""The host-agnostic node contract.

An operator declares its knobs once; hosts (the CLI, the ComfyUI pack, the Nuke node, the farm)
generate their inputs from that declaration and call ``prepare`` once and ``process`` (or
``process_frames``) per frame. Frames reach ``process`` as float32 H x W x 3 RGB in the working
space (sRGB Encoded Rec.709), values possibly outside [0, 1]; the operator returns the same shape,
or, for an operator with ``scale`` > 1 (super-resolution), H*scale x W*scale x 3. Hosts pass alpha
through ``process_alpha`` so it keeps the frame's size.

Operators import this module and nothing that knows which operators exist; the registry of
operators (``bake_node.node``) imports them. So the dependency runs one way:
hosts -> node (registry) -> operators -> contract.
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np

WORKING_COLOURSPACE = "sRGB Encoded Rec.709 (sRGB)"


@dataclass(frozen=True)
class Knob:
    name: str  # snake_case; the CLI spells it --name-with-dashes
    type: type | str  # int, float, str, bool, "path" or "choice"
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    affects_result: bool = True  # False for knobs like tile size that change only speed

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def negative_flag(self) -> str | None:
        return "--no-" + self.flag[2:] if self.type is bool else None

    @property
    def kind(self) -> str:
        """The type as a word: int, float, bool, str, path or choice."""
        return self.type if isinstance(self.type, str) else self.type.__name__

    def coerce(self, value: Any) -> Any:
        """A value from a host widget (a float for an int, "" for no path) -> a setting."""
        from .errors import SettingsError

        if self.kind in ("int", "float"):
            value = int(value) if self.kind == "int" else float(value)
            if not math.isfinite(value):  # NaN passes every range check below
                raise SettingsError(None, f"{self.name} = {value} is not a finite number", "use a finite value")
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise SettingsError(None, f"{self.name} = {value} is out of range",
                                    f"use a value in [{self.min}, {self.max}]")
        elif self.kind == "bool":
            value = bool(value)
        elif self.kind == "choice" and value not in self.choices:
            raise SettingsError(None, f"{self.name} = {value!r} is not a choice",
                                f"use one of {', '.join(self.choices)}")
        return value

    def cli_args(self, value: Any) -> list[str]:
        """`bake-seq render` arguments that set this knob (none for a blank value)."""
        if value is None or value == "":
            return []
        if self.kind == "bool":
            return [self.flag if value else self.negative_flag]
        return [self.flag, str(value)]

    def describe(self) -> dict:
        """JSON-ready: what a host that cannot import bake_node needs to make a widget."""
        return {"name": self.name, "type": self.kind, "default": self.default, "help": self.help,
                "choices": list(self.choices), "min": self.min, "max": self.max,
                "affects_result": self.affects_result, "flag": self.flag,
                "negative_flag": self.negative_flag}


# Knobs every operator shares: they belong to the engine, not to a model.
ENGINE_KNOBS = (
    Knob("device", "choice", "auto", "compute device", choices=("auto", "cpu", "cuda"),
         affects_result=False),
    Knob("tile", int, 0, "tile size in pixels (0 = auto: the whole frame when it fits the memory "
         "budget, else the largest tile that does); changes speed and memory, not results",
         min=0, affects_result=False),
)


class Operator:
    """Base class: subclasses set name/label/knobs and implement prepare/process."""

    name: str = ""
    label: str = ""
    knobs: tuple[Knob, ...] = ()
    halo: int = 0  # context pixels a tile needs on each side
    scale: int = 1  # output size / input size (known after prepare)
    # True: ``process(rgb, frame, mask=None)`` also takes an H x W float mask (1 = masked, e.g.
    # damage to repair); hosts with a mask input (ComfyUI's MASK) pass it per frame.
    accepts_mask: bool = False
    # True: ``process(rgb, frame, alpha=None)`` also takes the frame's H x W alpha when it has one
    # (hosts pass it; e.g. grain scaled by alpha in premultiplied plates).
    accepts_alpha: bool = False
    # Set by a host to see progress within a frame: called (tiles done, tiles) by tiled operators.
    on_tile: Callable[[int, int], None] | None = None

    def __init__(self):
        self.settings: dict = {}

    @classmethod
    def all_knobs(cls) -> tuple[Knob, ...]:
        return (*ENGINE_KNOBS, *cls.knobs)

    def defaults(self) -> dict:
        return {k.name: k.default for k in self.all_knobs()}

    @classmethod
    def settings_from(cls, values: dict) -> dict:
        """Host widget values -> settings for ``prepare``: blanks fall back to the default,
        other keys are ignored, values are checked against the knob's type and range."""
        return {k.name: k.coerce(values[k.name]) for k in cls.all_knobs()
                if values.get(k.name) not in (None, "")}

    @classmethod
    def describe(cls) -> dict:
        return {"name": cls.name, "label": cls.label, "knobs": [k.describe() for k in cls.all_knobs()]}

    def prepare(self, settings: dict) -> None:
        """Load models etc. once per render; ``settings`` maps every knob name to a value."""
        self.settings = {**self.defaults(), **settings}

    def fingerprint(self) -> dict:
        """Everything that decides the pixels this operator writes (for resume/stale checks)."""
        return {"op": self.name, **{k.name: self.settings.get(k.name) for k in self.knobs
                                     if k.affects_result}}

    needs_shot = False  # True (after prepare) when every frame must reach ``analyse`` first

    @classmethod
    def may_need_shot(cls, settings: dict) -> bool:
        """Whether these knob values can ask for the whole shot (decided without loading models)."""
        return False

    def analyse(self, frames: list[int], read: Callable[[int], np.ndarray]) -> object:
        """With ``needs_shot``: see every frame (``read(n)`` -> working-space RGB) before the first
        ``process``; hosts call it once per shot (the CLI over the frames it renders, ComfyUI per
        batch through ``process_frames``, `submit` once for the whole job)."""

    def shot_frames(self, frames: list[int], available: list[int]) -> list[int]:
        """The frames ``analyse`` should see, given the frames rendered and the plate's frames
        ``available`` (an operator may need more: a learned correction, the span to its keys)."""
        return frames

    def describe_shot(self, frames: list[int]) -> str:
        """The line a host prints before ``analyse``."""
        return f"analysing {len(frames)} frames"

    def store_shot(self, folder: str, about: dict) -> tuple[str, str]:
        """After ``analyse``: write what it found into ``folder`` (a file named by its content's
        hash) and return (knob, path): that knob set to that path makes a prepared operator apply
        it without analysing (what `submit` gives every farm chunk)."""
        raise NotImplementedError(f"{self.name} stores no shot analysis")

    def check_frames(self, frames: list[int]) -> None:
        """Called before the first frame is rendered: raise a user error for inputs of its own
        (per-frame masks, say) that are missing, so a run fails before it starts, not midway."""

    def process(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        raise NotImplementedError

    def process_alpha(self, alpha: np.ndarray, frame: int) -> np.ndarray:
        """A frame's H x W alpha -> the alpha to write with ``process``'s result (same size)."""
        return alpha

    def process_frames(self, frames: Iterable[tuple[int, np.ndarray]],
                       masks: Callable[[int], np.ndarray | None] | None = None,
                       alphas: Callable[[int], np.ndarray | None] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(frame number, rgb) pairs -> (frame number, result) pairs, one at a time. Hosts that
        hold a batch (ComfyUI) use this; an operator that needs neighbouring frames overrides it.
        The next frame is pulled only after a result is taken, so a host can stop in between.
        ``masks`` (frame number -> H x W mask) reaches ``process`` only if ``accepts_mask``, and
        ``alphas`` (frame number -> H x W alpha or None) only if ``accepts_alpha``."""
        for number, rgb in frames:
            extra = {}
            if masks is not None and self.accepts_mask:
                extra["mask"] = masks(number)
            if alphas is not None and self.accepts_alpha:
                extra["alpha"] = alphas(number)
            yield number, self.process(rgb, number, **extra)
