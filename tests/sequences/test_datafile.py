"""The one bounded reader of users' JSON/YAML files, and the no-clobber publish."""
import json
import os

import pytest

from bake_seq.sequences.datafile import DataFileError, read_json, read_yaml
from bake_seq.sequences.safe_write import publish


@pytest.mark.parametrize("body, problem", [
    ("[" * 5000 + "]" * 5000, "nests deeper than 32 levels"),
    ("[" * 5000, "nests deeper than 32 levels"),  # unclosed: still no RecursionError
    ("[" + "9" * 5001 + "]", "a number of 5,001 characters"),  # Python's int() refuses > 4,300 digits
    ("[1." + "9" * 300 + "]", "a number of 302 characters"),
    ('{"a": 1, "a": 2}', "repeats the key 'a'"),
    ('{"a": 1', "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
])
def test_json_beyond_its_bounds_is_refused(tmp_path, body, problem):
    path = tmp_path / "x.json"
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(DataFileError, match=problem):
        read_json(str(path), 1 << 20)


def test_json_within_its_bounds_reads_as_json_does(tmp_path):
    value = {"a": [[[{"b": "[[[[{{{{"}]]], "c": 1e-300, "d": -(10 ** 50), "e": 'q"[\\'}
    (tmp_path / "x.json").write_text(json.dumps(value))
    assert read_json(str(tmp_path / "x.json"), 1 << 20) == value  # brackets in strings are not nesting
    (tmp_path / "x.json").write_text("[" * 32 + "]" * 32)
    read_json(str(tmp_path / "x.json"), 1 << 20)
    with pytest.raises(DataFileError, match="is 64 bytes, more than the 63"):
        read_json(str(tmp_path / "x.json"), 63)


@pytest.mark.parametrize("body, problem", [
    ("- " * 5000 + "x\n", "nests deeper than 32 levels"),
    ("[" * 5000 + "]" * 5000, "nests deeper than 32 levels"),
    ("a: " + "9" * 5001 + "\n", "a number of 5,001 characters"),
    ("a: 1\na: 2\n", "repeats the key 'a' \\(line 2\\)"),
    ("a: 2024-13-45\n", "holds a value YAML cannot read"),
    ("a: [1\n", "is not valid YAML/JSON"),
])
def test_yaml_beyond_its_bounds_is_refused(tmp_path, body, problem):
    (tmp_path / "x.yaml").write_text(body)
    with pytest.raises(DataFileError, match=problem):
        read_yaml(str(tmp_path / "x.yaml"), 1 << 20)


def test_only_regular_files_are_read(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # opening it to read would wait for a writer
    for path in ("/dev/zero", str(tmp_path / "fifo"), str(tmp_path)):
        with pytest.raises(DataFileError, match="is not a regular file"):
            read_json(path, 1 << 20)
    with pytest.raises(DataFileError, match="is unreadable \\(No such file"):
        read_yaml(str(tmp_path / "missing.yaml"), 1 << 20)


def test_publish_never_replaces_a_file_unless_asked(tmp_path):
    (tmp_path / "t1").write_text("new")
    (tmp_path / "x").write_text("a colourist's edit")
    assert not publish(str(tmp_path / "t1"), str(tmp_path / "x"), replace=False)
    assert (tmp_path / "x").read_text() == "a colourist's edit" and (tmp_path / "t1").exists()
    assert publish(str(tmp_path / "t1"), str(tmp_path / "y"), replace=False)
    assert (tmp_path / "y").read_text() == "new" and not (tmp_path / "t1").exists()
    (tmp_path / "t2").write_text("newer")
    assert publish(str(tmp_path / "t2"), str(tmp_path / "x"), replace=True)
    assert (tmp_path / "x").read_text() == "newer"
