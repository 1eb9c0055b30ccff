"""train.rcc reads Qt's binary resource format: a container written here in the rcc layout
(version 3, the one Qt 5.13+ writes) comes back with its nested paths and its bytes."""
from __future__ import annotations

import struct
import zlib

import pytest

from bake_node.errors import SettingsError
from bake_seq.train.rcc import COMPRESSED, DIRECTORY, Resources


def rcc_v3(files: dict[str, tuple[bytes, int]]) -> bytes:
    """{"folder/name": (bytes, flags)} as `rcc -binary` lays it out: header, tree (node 0 the root,
    each directory's children contiguous), data, names. COMPRESSED stores qCompress output."""
    root: dict = {}
    for path, item in files.items():
        *folders, leaf = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = item
    entries: list[bytes | None] = [None]
    names, data = bytearray(), bytearray()
    queue = [(0, "", root)]
    while queue:
        index, name, item = queue.pop(0)
        name_at = len(names)
        text = name.encode("utf-16-be")
        names += struct.pack(">HI", len(text) // 2, 0) + text  # the reader ignores the name hash
        if isinstance(item, dict):
            first = len(entries)
            entries += [None] * len(item)
            queue += [(first + k, child, item[child]) for k, child in enumerate(sorted(item))]
            entry = struct.pack(">IHII", name_at, DIRECTORY, len(item), first)
        else:
            payload, flags = item
            if flags & COMPRESSED:
                payload = struct.pack(">I", len(payload)) + zlib.compress(payload)
            entry = struct.pack(">IHHHI", name_at, flags, 0, 1, len(data))
            data += struct.pack(">I", len(payload)) + payload
        entries[index] = entry + struct.pack(">Q", 1_700_000_000_000)  # last modified (ms)
    tree_at = 24
    data_at = tree_at + 22 * len(entries)
    names_at = data_at + len(data)
    header = b"qres" + struct.pack(">5I", 3, tree_at, data_at, names_at, COMPRESSED)
    return header + b"".join(entries) + bytes(data) + bytes(names)


def test_reads_plain_zlib_and_nested_files_of_a_v3_container(tmp_path):
    pixels = bytes(range(256)) * 16
    path = tmp_path / "activity.rcc"
    path.write_bytes(rcc_v3({"top.txt": (b"plain bytes", 0),
                             "gcompris/src/activity/resource/image.bin": (pixels, COMPRESSED),
                             "gcompris/src/activity/resource/README": ("Copyright: Ünïcode\n".encode(), 0)}))
    assert len(path.read_bytes()) < len(pixels)  # the zlib entry really is compressed
    resources = Resources(path)
    assert sorted(resources.files()) == ["gcompris/src/activity/resource/README",
                                         "gcompris/src/activity/resource/image.bin", "top.txt"]
    assert resources.read("top.txt") == b"plain bytes"
    assert resources.read("gcompris/src/activity/resource/image.bin") == pixels
    assert resources.read("gcompris/src/activity/resource/README").decode() == "Copyright: Ünïcode\n"
    assert "top.txt" in resources and "missing.txt" not in resources
    with pytest.raises(SettingsError, match="no file"):
        resources.read("missing.txt")
    with pytest.raises(SettingsError, match="qres"):
        Resources(b"PK\x03\x04 not a resource container")
