import json
import os
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from bake_node.checkpoint import (METADATA_KEY, CheckpointInfo, import_reference, load_checkpoint,
                                  save_checkpoint)
from bake_node.errors import CheckpointError
from bake_node.models.bakenet import PRESETS, BakeNet
from tests.conftest import TINY, make_checkpoint


def test_round_trip_with_metadata(tmp_path):
    path = make_checkpoint(tmp_path / "m.safetensors")
    loaded = load_checkpoint(path)
    meta = json.loads(__import__("safetensors").safe_open(str(path), "pt").metadata()[METADATA_KEY])
    assert meta["format_version"] == 1 and meta["preset"] == "tiny-test" and meta["weights"] == "ema"
    assert meta["working_space"] == "OklabP" and meta["training"] == {"note": "random test weights"}
    assert loaded.info.config == TINY and len(loaded.sha256) == 64
    torch.manual_seed(0)
    ref = BakeNet(TINY)
    with torch.no_grad():
        ref.head_out.weight.mul_(4.0)
    for k, v in ref.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k])
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_shape_mismatch_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    model = BakeNet(PRESETS["cpu"])
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    info = CheckpointInfo(preset="v5", config=PRESETS["v5"])  # metadata lies about the layout
    save_file(state, str(path), metadata={METADATA_KEY: info.to_json()})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    text = str(err.value)
    assert str(path) in text and "wrong shape" in text and "\n" not in text


def test_missing_metadata_and_garbage_files(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="no bake-seq metadata"):
        load_checkpoint(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("key,prefix", [("ema_shadow", ""), ("model_state_dict", "module.")])
def test_import_reference_pth(tmp_path, key, prefix):
    torch.manual_seed(3)
    ref = BakeNet(PRESETS["v5"])
    state = {prefix + k: v for k, v in ref.state_dict().items()}
    src = tmp_path / "last.pth"
    torch.save({key: state, "epoch": 7, "optimizer_state_dict": {}}, src)
    model, info, notes = import_reference(src)
    assert info.weights == ("ema" if key == "ema_shadow" else "raw")
    assert any(key in n for n in notes)
    for k, v in ref.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])


def test_import_reference_by_position_when_names_differ(tmp_path):
    ref = BakeNet(PRESETS["v5"])
    renamed = {f"layer{i:04d}": v for i, v in enumerate(ref.state_dict().values())}
    src = tmp_path / "renamed.pth"
    torch.save({"ema_shadow": renamed}, src)
    model, _, notes = import_reference(src)
    assert any("by position" in n for n in notes)
    assert torch.equal(model.head_out.weight, ref.head_out.weight)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_code_is_refused(tmp_path):
    src = tmp_path / "evil.pth"
    with open(src, "wb") as fh:
        pickle.dump({"ema_shadow": Evil()}, fh)
    with pytest.raises(CheckpointError, match="never unpickles code"):
        import_reference(src)


@pytest.mark.parametrize("damage", ["nan", "inf", "int", "bool"])
def test_weights_that_are_not_finite_floats_are_refused_in_one_line(tmp_path, tiny_checkpoint, damage):
    """Right names and shapes, wrong values: before this check they loaded and rendered NaN frames."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from bake_node.cli import cli

    state = load_file(tiny_checkpoint)
    with safe_open(tiny_checkpoint, "pt") as fh:
        metadata = fh.metadata()
    name = sorted(state)[0]
    if damage in ("nan", "inf"):
        state[name] = state[name].clone()
        state[name].view(-1)[0] = float(damage)
    else:
        state[name] = state[name].to(torch.int32 if damage == "int" else torch.bool)
    bad = tmp_path / f"{damage}.safetensors"
    save_file(state, str(bad), metadata=metadata)
    with pytest.raises(CheckpointError, match="NaN or Inf" if damage in ("nan", "inf") else "not floats"):
        load_checkpoint(bad)
    plate = tmp_path / "p"
    plate.mkdir()
    import OpenImageIO as oiio
    assert oiio.ImageBuf(np.zeros((8, 8, 3), np.uint8)).write(str(plate / "f.0001.png"))
    result = CliRunner().invoke(cli, ["render", str(plate / "f.####.png"), "--checkpoint", str(bad),
                                      "-o", str(tmp_path / "o" / "f.####.png")])
    assert result.exit_code == 4 and "Traceback" not in result.output
    assert not (tmp_path / "o" / "f.0001.png").exists()


@pytest.mark.parametrize("meta", ["[1, 2]", "\"bakenet\"", "{\"model\": \"bakenet\", \"format_version\": 1, \"config\": [30]}"])
def test_metadata_that_is_not_a_record_is_one_line(tmp_path, tiny_checkpoint, meta):
    from safetensors.torch import load_file

    bad = tmp_path / "bad.safetensors"
    save_file(load_file(tiny_checkpoint), str(bad), metadata={METADATA_KEY: meta})
    with pytest.raises(CheckpointError, match="metadata is unreadable"):
        load_checkpoint(bad)


@pytest.mark.parametrize("model, change", [("bakenet", {"depth": 10_000_000}), ("bakenet", {"dim": 3000}),
                                           ("colorize", {"levels": 12})])
def test_metadata_naming_a_giant_model_is_refused_before_anything_is_built(tmp_path, model, change):
    """Issue 17 item 3: a normal-size file whose metadata says depth 10,000,000 or levels 12."""
    import json
    import resource
    import time

    from safetensors import safe_open
    from safetensors.torch import save_file

    from bake_node.checkpoint import METADATA_KEY, read_checkpoint
    from bake_node.operators.colorize import DEFAULT_CHECKPOINT as COLORIZE_CHECKPOINT
    from bake_node.operators.bake import CPU_CHECKPOINT

    source = str(CPU_CHECKPOINT if model == "bakenet" else COLORIZE_CHECKPOINT)
    with safe_open(source, "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = json.loads(fh.metadata()[METADATA_KEY])
    meta["config"].update(change)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={METADATA_KEY: json.dumps(meta)})
    before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    with pytest.raises(CheckpointError):
        read_checkpoint(str(bad), model, "fix")
    assert time.perf_counter() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # < 200 MiB more
