"""`bake-seq status`: after farm runs, which frames are done, missing or stale; exit 7 until done."""
import json
import os

from bake_node.commands.status import EXIT_INCOMPLETE
from bake_seq.sequences.manifest import record_path
from tests.conftest import make_checkpoint
from tests.plugins.farm.conftest import bake


def test_missing_then_complete(tmp_path, plate, tiny_checkpoint):
    out = str(tmp_path / "o" / "b.####.png")
    bake("render", plate, "-o", out, "--frames", "1001-1002", "--checkpoint", tiny_checkpoint, "-q")
    result = bake("status", out, plate, "--checkpoint", tiny_checkpoint, "--json", code=EXIT_INCOMPLETE)
    report = json.loads(result.stdout)
    assert report["complete"] is False and report["counts"] == {"done": 2, "missing": 2}
    assert report["frame_states"] == {"1001": "done", "1002": "done", "1003": "missing", "1004": "missing"}
    text = bake("status", out, plate, "--checkpoint", tiny_checkpoint, code=EXIT_INCOMPLETE).stdout
    assert "missing" in text and "1003-1004" in text and "incomplete: 2 of 4" in text
    bake("render", plate, "-o", out, "--frames", "1003-1004", "--checkpoint", tiny_checkpoint, "-q")
    assert "complete" in bake("status", out, plate, "--checkpoint", tiny_checkpoint).stdout


def test_stale_names_what_changed_and_unrecorded(tmp_path, plate, tiny_checkpoint):
    out = str(tmp_path / "o" / "b.####.png")
    bake("render", plate, "-o", out, "--checkpoint", tiny_checkpoint, "-q")
    other = make_checkpoint(tmp_path / "other.safetensors", seed=3)
    report = json.loads(bake("status", out, plate, "--checkpoint", other, "--json", code=EXIT_INCOMPLETE).stdout)
    [group] = report["groups"]
    assert group["state"] == "stale" and group["frames"] == "1001-1004"
    assert "checkpoint_sha256" in group["reason"]
    os.remove(record_path(str(tmp_path / "o" / "b.1002.png")))
    report = json.loads(bake("status", out, plate, "--checkpoint", tiny_checkpoint, "--json",
                             code=EXIT_INCOMPLETE).stdout)
    assert report["frame_states"]["1002"] == "unrecorded" and report["counts"]["done"] == 3


def test_output_alone_compares_records_with_each_other(tmp_path, plate, tiny_checkpoint):
    folder = tmp_path / "o"
    bake("render", plate, "-o", folder, "--frames", "1001-1002,1004", "--checkpoint", tiny_checkpoint, "-q")
    report = json.loads(bake("status", folder, "--json", code=EXIT_INCOMPLETE).stdout)
    assert report["output"].endswith("plate.####.png")
    # frames on disk are judged one by one; the gap between them is counted as a range
    assert report["frame_states"] == {"1001": "done", "1002": "done", "1004": "done"}
    assert report["counts"] == {"done": 3, "missing": 1} and report["frame_count"] == 4
    assert {"state": "missing", "reason": "no output file (between frames on disk)", "frames": "1003",
            "count": 1} in report["groups"] and report["frames"] == "1001-1004"
    other = make_checkpoint(tmp_path / "other.safetensors", seed=3)  # a newer render of one frame
    bake("render", plate, "-o", folder, "--frames", "1003", "--checkpoint", other, "-q")
    report = json.loads(bake("status", folder, "--frames", "1001-1003", "--json", code=EXIT_INCOMPLETE).stdout)
    assert report["frame_states"] == {"1001": "stale", "1002": "stale", "1003": "done"}
    bake("status", folder, "--frames", "1003")
    assert "no frames written by bake-seq" in bake("status", tmp_path, code=2).stderr
