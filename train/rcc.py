"""Reader for Qt's binary resource containers (.rcc files, written by `rcc -binary`).

Some Debian packages (GCompris) keep their images inside these, so train.debian_photos reads
them with this instead of needing Qt. All integers are big-endian:

    header  "qres", version (1 to 3), tree offset, data offset, names offset
            (version 3 adds the container's overall flags)
    tree    one entry per node, node 0 the root: name offset (4), flags (2), then
              directory: child count (4), first child's node number (4)
              file:      territory (2), language (2), data offset (4)
            versions 2 and 3 end each entry with its last-modified time (8): 22 bytes, else 14
    names   length in UTF-16 code units (2), hash (4), the name in UTF-16BE
    data    length (4), payload; flag 0x01: qCompress (uncompressed length (4), zlib stream),
            0x04: a zstd frame (needs the zstandard package)

    Resources(path).files()    # ["gcompris/src/activities/erase/resource/...", ...]
    Resources(path).read(name) # the file's bytes, decompressed

Paths are the resource paths without Qt's leading ":/". A file with locale variants (the same
path under several languages) keeps the first one in the tree.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

from bake_node.errors import SettingsError

COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 0x01, 0x02, 0x04


class Resources:
    """The files of one .rcc container (given as a path or its bytes)."""

    def __init__(self, source: str | Path | bytes, name: str | None = None):
        self.name = name or ("<rcc>" if isinstance(source, bytes) else str(source))
        self._bytes = source if isinstance(source, bytes) else Path(source).read_bytes()
        if self._bytes[:4] != b"qres":
            raise self._error("not a Qt resource container (no 'qres' header)")
        version, self._tree, self._data, self._names = self._unpack(">4I", 4)
        if version not in (1, 2, 3):
            raise self._error(f"unknown rcc format version {version}")
        self._entry_size = 14 if version == 1 else 22
        self._files: dict[str, tuple[int, int]] = {}  # path -> (flags, data offset)
        self._walk(0, "", set())

    def files(self) -> list[str]:
        return list(self._files)

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def read(self, path: str) -> bytes:
        """The file's bytes (decompressed)."""
        if path not in self._files:
            raise self._error(f"no file {path!r} in the container")
        flags, offset = self._files[path]
        (size,) = self._unpack(">I", self._data + offset)
        start = self._data + offset + 4
        payload = self._bytes[start:start + size]
        if len(payload) != size:
            raise self._error(f"{path}: data runs past the end of the file")
        if flags & COMPRESSED:
            (expected,) = self._unpack(">I", start)
            try:
                data = zlib.decompress(payload[4:])
            except zlib.error as exc:
                raise self._error(f"{path}: bad zlib data ({exc})") from None
            if len(data) != expected:
                raise self._error(f"{path}: {len(data)} bytes after decompression, the header says {expected}")
            return data
        if flags & COMPRESSED_ZSTD:
            try:
                import zstandard
            except ImportError:
                raise SettingsError(self.name, f"{path} is zstd-compressed",
                                    "pip install zstandard") from None
            try:
                return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
            except zstandard.ZstdError as exc:
                raise self._error(f"{path}: bad zstd data ({exc})") from None
        return payload

    def _walk(self, node: int, prefix: str, seen: set[int]) -> None:
        if node in seen:
            raise self._error("the directory tree has a loop")
        seen.add(node)
        at = self._tree + node * self._entry_size
        name_offset, flags = self._unpack(">IH", at)
        path = f"{prefix}/{self._name(name_offset)}".lstrip("/") if node else ""
        if flags & DIRECTORY:
            count, first = self._unpack(">II", at + 6)
            for child in range(first, first + count):
                self._walk(child, path, seen)
        else:
            self._files.setdefault(path, (flags, self._unpack(">I", at + 10)[0]))

    def _name(self, offset: int) -> str:
        (length,) = self._unpack(">H", self._names + offset)
        start = self._names + offset + 6
        raw = self._bytes[start:start + 2 * length]
        if len(raw) != 2 * length:
            raise self._error("a name runs past the end of the file")
        return raw.decode("utf-16-be")

    def _unpack(self, layout: str, offset: int) -> tuple:
        try:
            return struct.unpack_from(layout, self._bytes, offset)
        except struct.error:
            raise self._error("truncated or corrupt (an offset points past the end)") from None

    def _error(self, problem: str) -> SettingsError:
        return SettingsError(self.name, problem, "check the file (a Qt .rcc written by rcc -binary)")
