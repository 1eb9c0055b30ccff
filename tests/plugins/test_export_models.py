"""`bake-seq export`: TorchScript for Nuke's Inference node and ONNX, checked against the eager
model and the Bake operator itself."""
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from click.testing import CliRunner

from bake_node import palette
from bake_node.checkpoint import load_checkpoint
from bake_node.cli import cli
from bake_node.export import export_torchscript, inference_module
from bake_node.models.bakenet import PRESETS, BakeNet
from bake_node.node import get_operator

TOLERANCE = 1e-5  # exports against the eager model, CPU, float32


def image(h=40, w=48, seed=0):
    """sRGB-encoded 1x3xHxW with some values outside [0, 1] (the range policy must see them)."""
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 1.2 - 0.1


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint).model


@pytest.fixture(scope="module")
def scripted(model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "bake.pt")
    export_torchscript(inference_module(model, tile=32), path)
    return torch.jit.load(path)


def test_torchscript_reproduces_the_eager_model_and_the_operator(model, scripted, tiny_checkpoint):
    x = image()
    with torch.inference_mode():
        eager = inference_module(model, tile=32)(x)
        assert (scripted(x) - eager).abs().max() <= TOLERANCE
        whole = inference_module(model, tile=0)(x)
        assert (whole - eager).abs().max() <= TOLERANCE  # tiles carry a halo: same result
    op = get_operator("bake")
    op.prepare({"checkpoint": tiny_checkpoint, "device": "cpu", "tile": 0})
    rendered = op.process(x[0].permute(1, 2, 0).contiguous().numpy(), 1)
    assert np.abs(eager[0].permute(1, 2, 0).numpy() - rendered).max() <= TOLERANCE
    assert eager.max() > 1.0 and eager.min() < 0.0  # 'preserve' kept what clamping removed


def test_torchscript_carries_its_contract(tiny_checkpoint, tmp_path):
    path = tmp_path / "bake.pt"
    result = CliRunner().invoke(cli, ["export", "--format", "torchscript", "-o", str(path), "--checkpoint",
                                      tiny_checkpoint, "--tile", "256"])
    assert result.exit_code == 0, result.output
    extra = {"bake_seq.json": ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    about = json.loads(extra["bake_seq.json"])
    assert about["tile"] == 256 and about["input"].startswith("float32 N x 3 x H x W")
    assert about["colour_space"] == "sRGB Encoded Rec.709 (sRGB)" and len(about["model_sha256"]) == 64


def test_torchscript_meets_nukes_inference_contract(scripted):
    assert (type(scripted.tile), type(scripted.preserve_range)) == (int, int)  # knobs CatFileCreator can expose
    x = image(36, 40)
    with torch.inference_mode():
        reference = scripted(x)
        assert scripted(x.double()).dtype == torch.float64  # dtype follows the input
        scripted.tile, scripted.preserve_range = 0, 0  # a knob change takes effect at once
        clipped = scripted(x)
        assert clipped.min() >= 0 and clipped.max() <= 1
        inside = ((x >= 0) & (x <= 1)).all(dim=1, keepdim=True).expand_as(x)
        assert (clipped - reference)[inside].abs().max() <= TOLERANCE
        scripted.tile, scripted.preserve_range = 32, 1
        half = scripted.half()(x.half())  # "Optimize for Speed and Memory": module and input in half
        assert half.dtype == torch.float16 and (half.float() - reference).abs().max() < 0.05
        scripted.float()


def test_export_colour_maths_is_palettes(model):
    module = inference_module(model)
    rgb = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    lab = palette.srgb_to_oklabp(rgb)
    assert (module.to_oklabp(rgb) - lab).abs().max() < 1e-12
    assert (module.from_oklabp(lab) - palette.oklabp_to_srgb(lab)).abs().max() < 1e-12


def test_the_full_size_model_scripts():
    model = BakeNet(PRESETS["v5"]).eval()
    assert sum(p.numel() for p in model.parameters()) == 1_625_793
    scripted = torch.jit.script(inference_module(model, tile=0))
    assert scripted.halo == 90


def onnx_export(tmp_path, checkpoint, *options):
    path = tmp_path / f"bake{len(options)}.onnx"
    result = CliRunner().invoke(cli, ["export", "--format", "onnx", "-o", str(path), "--checkpoint", checkpoint,
                                      *options])
    assert result.exit_code == 0, result.output
    assert "max |file - eager|" in result.output
    return onnx.load(str(path)), onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def worst_difference(session, module, sizes=((40, 48), (33, 71))):
    worst = 0.0
    for size in sizes:  # any height and width
        x = image(*size, seed=size[0])
        with torch.inference_mode():
            expected = module(x).numpy()
        worst = max(worst, float(np.abs(session.run(None, {"image": x.numpy()})[0] - expected).max()))
    return worst


def test_onnx_export_has_dynamic_size_and_onnxruntime_agrees(tmp_path, tiny_checkpoint, model):
    graph, session = onnx_export(tmp_path, tiny_checkpoint)
    assert graph.opset_import[0].version >= 17
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert worst_difference(session, inference_module(model, tile=0)) <= TOLERANCE
    # batch > 1: each image as it would come out alone (issue 15)
    batch = torch.cat([image(40, 48, seed=1), image(40, 48, seed=2)])
    both = session.run(None, {"image": batch.numpy()})[0]
    for i in range(2):
        alone = session.run(None, {"image": batch[i:i + 1].numpy()})[0][0]
        assert np.abs(both[i] - alone).max() <= 1e-6
    # the contract travels inside the file (issue 15): whoever gets only the .onnx knows what to feed it
    meta = {p.key: p.value for p in graph.metadata_props}
    about = json.loads(meta["bake_seq.json"])
    assert about["colour_space"] == "sRGB Encoded Rec.709 (sRGB)" and about["range_policy"] == "preserve"
    assert len(about["model_sha256"]) == 64 and about["bake_seq_version"] and about["tile"] == 0 and meta["tile"] == "0"
    assert meta["colour_space"] == "sRGB Encoded Rec.709 (sRGB)"


def test_onnx_float32_colour_maths_has_no_float64(tmp_path, tiny_checkpoint, model):
    graph, session = onnx_export(tmp_path, tiny_checkpoint, "--colour-maths", "float32")
    types = {v.type.tensor_type.elem_type for v in (*graph.graph.value_info, *graph.graph.input, *graph.graph.output)}
    types |= {t.data_type for t in graph.graph.initializer}
    assert onnx.TensorProto.DOUBLE not in types
    # float32 pow/cbrt differ by an ulp or so between onnxruntime and torch; the tiny test model
    # (head weights x4) amplifies that to ~1.5e-5
    assert worst_difference(session, inference_module(model, tile=0, colour_maths="float32")) <= 5e-5


def test_export_refuses_a_missing_checkpoint(tmp_path):
    result = CliRunner().invoke(cli, ["export", "--format", "torchscript", "-o", str(tmp_path / "b.pt"),
                                      "--checkpoint", str(tmp_path / "nothing.safetensors")])
    assert result.exit_code == 4 and "nothing.safetensors" in result.output
