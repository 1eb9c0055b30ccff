"""Small data files users hand bake-seq (grade records, LUTs and their sidecars, resume records,
settings, grain profiles): read within stated bounds, written without replacing anything.

Reading: only a regular file (a FIFO would hang, /dev/zero never ends), at most ``max_bytes``,
JSON/YAML nested at most MAX_DEPTH deep (the parsers recurse: 5,000 brackets would be a
RecursionError), numbers at most MAX_NUMBER_CHARS long (Python refuses integers over 4,300
digits with a ValueError, and a 300-digit one overflows float64), no repeated keys (which value
counts would be a guess). Memory is then a small multiple of the file's size. Every refusal is a
DataFileError whose text is one line that reads after the file's name ("the LUT sidecar" + "is
not UTF-8 text"); callers add the path and the fix in their own error type.

Writing is sequences/safe_write.py's.
"""
from __future__ import annotations

import json
import os
import re
import stat

import numpy as np

MAX_DEPTH = 32  # bake-seq's own files nest 5 deep at most
MAX_NUMBER_CHARS = 100  # a float64 written by repr() is at most 24 characters
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # JSON strings may hold brackets
_STEP = np.zeros(256, np.int32)  # per byte: +1 opens a level, -1 closes one
_STEP[list(b"[{")], _STEP[list(b"]}")] = 1, -1


class DataFileError(ValueError):
    """Why a file was not read; ``str()`` is one line."""


def open_regular(path: str, max_bytes: int):
    """A binary file object for ``path`` if it is a regular file of at most ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens without waiting
    except OSError as exc:
        raise DataFileError(f"is unreadable ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)  # the file opened, not the name looked at before
        if not stat.S_ISREG(st.st_mode):
            raise DataFileError("is not a regular file (a folder, FIFO or device)")
        if st.st_size > max_bytes:
            raise DataFileError(f"is {st.st_size:,} bytes, more than the {max_bytes:,} such a file may have")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str, max_bytes: int) -> bytes:
    chunks, size = [], 0
    with open_regular(path, max_bytes) as fh:
        try:  # in chunks: read(max_bytes) would allocate the cap, and a file growing meanwhile stops at it
            while chunk := fh.read(1 << 20):
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise DataFileError(f"is more than the {max_bytes:,} bytes such a file may have")
        except OSError as exc:
            raise DataFileError(f"is unreadable ({exc.strerror or exc})") from None
    return b"".join(chunks)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataFileError("is not UTF-8 text") from None


def _nesting(data: bytes) -> int:
    """How deep JSON brackets nest (strings blanked first), in chunks: bounded memory."""
    codes = np.frombuffer(_STRING.sub(b'""', data), np.uint8)
    deepest = level = 0
    for start in range(0, len(codes), 1 << 18):
        levels = np.cumsum(_STEP[codes[start:start + (1 << 18)]], dtype=np.int32)
        levels += level  # (a level fits int32: it changes by one per byte of a capped file)
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _number(parse):
    def bounded(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            raise DataFileError(f"holds a number of {len(text):,} characters (at most {MAX_NUMBER_CHARS})")
        return parse(text)
    return bounded


def _unique_keys(pairs: list) -> dict:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DataFileError(f"repeats the key {key[:80]!r}")
            seen.add(key)
    return found


def read_json(path: str, max_bytes: int):
    """The JSON value in ``path``, within the bounds above."""
    data = read_bytes(path, max_bytes)
    text = _text(data)
    if _nesting(data) > MAX_DEPTH:
        raise DataFileError(f"nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_number(int), parse_float=_number(float),
                          object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_yaml(path: str, max_bytes: int):
    """The YAML (or JSON: YAML 1.2 is a superset) value in ``path``, within the bounds above."""
    import yaml

    text = _text(read_bytes(path, max_bytes))
    try:
        return yaml.load(text, Loader=_bounded_loader())  # noqa: S506 (a SafeLoader)
    except DataFileError:
        raise
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        raise DataFileError("is not valid YAML/JSON" + (f" at line {where.line + 1}" if where else "")) from None
    except (ValueError, OverflowError) as exc:  # a scalar YAML types but cannot build (a 13th month)
        raise DataFileError(f"holds a value YAML cannot read ({str(exc)[:80]})") from None


_LOADER = None


def _bounded_loader():
    """yaml.SafeLoader that counts nesting while composing, checks numbers' length before
    converting them and refuses a key repeated in one mapping."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise DataFileError(f"nests deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if (key.tag, key.value) in seen:
                        raise DataFileError(f"repeats the key {key.value[:80]!r} (line {key.start_mark.line + 1})")
                    seen.add((key.tag, key.value))
            return super().construct_mapping(node, deep)

    for tag in ("int", "float"):
        build = yaml.SafeLoader.yaml_constructors[f"tag:yaml.org,2002:{tag}"]
        BoundedLoader.add_constructor(f"tag:yaml.org,2002:{tag}", _bounded_scalar(build))
    _LOADER = BoundedLoader
    return _LOADER


def _bounded_scalar(build):
    def construct(loader, node):
        if len(node.value) > MAX_NUMBER_CHARS:
            raise DataFileError(f"holds a number of {len(node.value):,} characters (at most {MAX_NUMBER_CHARS})")
        return build(loader, node)
    return construct
