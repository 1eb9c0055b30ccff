"""Operator settings files: an operator's knob values saved as YAML or JSON, for every operator.

    op: zoo                      # the operator
    settings:                    # knob name -> value (the CLI's --knob-name, with underscores)
      weights: RealESRGAN_x2plus.safetensors   # relative paths: from this file's folder
      zoo_overlap: 48

`bake-seq config -o FILE --op NAME [knob options]` writes one; `bake-seq render --config FILE`
(and `submit`, `status`) reads one; options given on the command line override the file.
"""
from __future__ import annotations

import json
import os

from .errors import SettingsError, shown
from .node import OPERATORS, Knob, all_operators

MAX_SETTINGS_BYTES = 1 << 20  # a settings file is a few lines; refuse anything this big before parsing
FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
TOP_LEVEL = ("op", "settings")


def _format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise SettingsError(path, f"unknown settings file type {ext or '(none)'}", "name it .yaml, .yml or .json")
    return FORMATS[ext]


def load_settings(path: str) -> tuple[str, dict]:
    """(operator name, {knob: value}) from a settings file, checked against the operator's knobs."""
    from bake_seq.sequences.datafile import DataFileError, read_yaml

    _format(path)
    try:
        data = read_yaml(path, MAX_SETTINGS_BYTES)  # YAML 1.2 is a superset of JSON: one parser for both
    except DataFileError as exc:
        raise SettingsError(path, f"the settings file {exc}",
                            "check the --config path, or write it with `bake-seq config`") from None
    if not isinstance(data, dict) or "op" not in data:
        raise SettingsError(path, "has no 'op:' entry", "write it with `bake-seq config -o FILE --op NAME`")
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise SettingsError(path, f"unknown entry {unknown[0]!r}", "a settings file has only 'op' and 'settings'")
    name, values = data["op"], data.get("settings") or {}
    operators = all_operators()
    if not isinstance(name, str) or name not in operators:
        raise SettingsError(path, f"unknown operator {shown(name)}", f"use one of {', '.join(sorted(operators))}")
    if not isinstance(values, dict):
        raise SettingsError(path, "'settings' is not a mapping", "write knob: value lines under settings:")
    knobs = {k.name: k for k in operators[name].all_knobs()}
    settings = {}
    for key, value in values.items():
        if not isinstance(key, str) or key not in knobs:
            raise SettingsError(path, f"unknown setting {shown(key)} for operator {name}",
                                f"known settings: {', '.join(knobs)}")
        settings[key] = _read_value(path, knobs[key], value)
    return name, settings


def _read_value(path: str, knob: Knob, value):
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int, float, bool)):
        raise SettingsError(path, f"{knob.name}: {shown(value)} is not a {knob.kind}", f"write one {knob.kind} value")
    if knob.kind == "path":
        return os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(str(value)))
    if knob.kind == "bool" and not isinstance(value, bool):
        raise SettingsError(path, f"{knob.name}: {shown(value)} is not true or false", "write true or false")
    try:
        return knob.coerce(value)
    except (TypeError, ValueError, OverflowError):  # int(.inf) overflows
        raise SettingsError(path, f"{knob.name}: {shown(value)} is not a {knob.kind}",
                            f"write a {knob.kind} ({knob.help[:60]}...)") from None
    except SettingsError as exc:
        raise SettingsError(path, exc.problem, exc.fix) from None


def save_settings(path: str, name: str, settings: dict, **target) -> None:
    """Write every knob of operator ``name`` (given values, else defaults; blank paths left out)."""
    cls = OPERATORS[name]
    values = {}
    for knob in cls.all_knobs():
        value = settings.get(knob.name)
        value = knob.default if value is None else value
        if value is None:
            continue
        values[knob.name] = os.path.abspath(value) if knob.kind == "path" else value
    document = {"op": name, "settings": values}
    if _format(path) == "json":
        text = json.dumps(document, indent=2) + "\n"
    else:
        import yaml
        text = f"# bake-seq operator settings: bake-seq render SEQ --config {os.path.basename(path)}\n" + \
            yaml.safe_dump(document, sort_keys=False)
    from bake_seq.sequences.safe_write import write_file

    write_file(path, text, what="settings file", **target)
