"""The host-agnostic node contract.

An operator declares its knobs once; hosts (the CLI today, ComfyUI/Nuke/farm later) generate
their inputs from that declaration and call ``prepare`` once and ``process`` per frame. Frames
reach ``process`` as float32 H x W x 3 RGB in the working space (sRGB Encoded Rec.709), values
possibly outside [0, 1]; the operator returns the same shape (or scaled, see ``scale``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


# Knobs every operator shares: they belong to the engine, not to a model.
ENGINE_KNOBS = (
    Knob("device", "choice", "auto", "compute device", choices=("auto", "cpu", "cuda"),
         affects_result=False),
    Knob("tile", int, 512, "tile size in pixels (0 = whole frame); changes speed and memory, "
         "not results", min=0, affects_result=False),
)


class Operator:
    """Base class: subclasses set name/label/knobs and implement prepare/process."""

    name: str = ""
    label: str = ""
    knobs: tuple[Knob, ...] = ()
    halo: int = 0  # context pixels a tile needs on each side

    def __init__(self):
        self.settings: dict = {}

    def defaults(self) -> dict:
        return {k.name: k.default for k in (*ENGINE_KNOBS, *self.knobs)}

    def prepare(self, settings: dict) -> None:
        """Load models etc. once per render; ``settings`` maps every knob name to a value."""
        self.settings = {**self.defaults(), **settings}

    def fingerprint(self) -> dict:
        """Everything that decides the pixels this operator writes (for resume/stale checks)."""
        return {"op": self.name, **{k.name: self.settings.get(k.name) for k in self.knobs
                                     if k.affects_result}}

    def process(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        raise NotImplementedError


OPERATORS: dict[str, type[Operator]] = {}


def register(cls: type[Operator]) -> type[Operator]:
    OPERATORS[cls.name] = cls
    return cls


def get_operator(name: str) -> Operator:
    from . import operators  # noqa: F401  (registers the built-in operators)

    if name not in OPERATORS:
        from .errors import SettingsError
        raise SettingsError(None, f"unknown operator {name!r}", f"choose one of {', '.join(sorted(OPERATORS))}")
    return OPERATORS[name]()


def all_operators() -> dict[str, type[Operator]]:
    from . import operators  # noqa: F401

    return dict(OPERATORS)
