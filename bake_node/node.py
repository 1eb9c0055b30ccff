"""The node: the operator contract (``bake_node.contract``: Knob, Operator) and the operators it
offers. Hosts import this module: ``get_operator`` and ``all_operators`` give the built-in
operators (an explicit list, ``bake_node.operators.BUILT_IN``) and any a plugin has added with
``register``.

Hosts that cannot import bake_node (Nuke's own Python) get the same declaration as JSON from
``describe_operators`` (`bake-seq plugins describe`).

The dependency runs one way: node -> operators -> contract. No operator imports this module, so
importing an operator never needs the registry, and the registry never fills as a side effect of
an import order.
"""
from __future__ import annotations

from .contract import ENGINE_KNOBS, WORKING_COLOURSPACE, Knob, Operator
from .operators import BUILT_IN

__all__ = ["ENGINE_KNOBS", "WORKING_COLOURSPACE", "Knob", "Operator", "OPERATORS", "register", "get_operator",
           "all_operators", "describe_operators"]

OPERATORS: dict[str, type[Operator]] = {cls.name: cls for cls in BUILT_IN}


def register(cls: type[Operator]) -> type[Operator]:
    """Add a plugin's operator (a class decorator): every host shows it from then on."""
    OPERATORS[cls.name] = cls
    return cls


def get_operator(name: str) -> Operator:
    if name not in OPERATORS:
        from .errors import SettingsError
        raise SettingsError(None, f"unknown operator {name!r}", f"choose one of {', '.join(sorted(OPERATORS))}")
    return OPERATORS[name]()


def all_operators() -> dict[str, type[Operator]]:
    return dict(OPERATORS)


def describe_operators() -> list[dict]:
    """Every registered operator and its knobs, JSON-ready (for Nuke and other outside hosts)."""
    return [cls.describe() for _, cls in sorted(all_operators().items())]
