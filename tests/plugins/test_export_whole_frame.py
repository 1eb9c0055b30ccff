"""`bake-seq export` of the models that correct a whole frame with one grade: the shipped global
BakeNet (estimated from the frame's thumbnail) and corrections learned from keyframes (fixed per
frame number), as TorchScript and ONNX files, against `bake-seq render` through real files."""
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from click.testing import CliRunner

from bake_node.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from bake_node.cli import cli
from bake_node.export import inference_module
from bake_node.models.shot import BOX, ShotConfig, ShotCorrection, gather_lattice, sample_lattice
from bake_node.node import get_operator
from bake_node.operators.bake import DEFAULT_CHECKPOINT
from tests.bake_node.test_shot_grade import panning_plate
from tests.test_render_cli import read

FRAMES = range(1001, 1004)
CODE = 1 / 65535


def bake(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    # 50 x 70: the global model's 64 x 64 thumbnail averages uneven areas (adaptive pooling)
    return panning_plate(tmp_path_factory.mktemp("plate"), FRAMES, h=50, w=70)


def render(folder, plate, *options) -> dict:
    """{frame: 16-bit codes} of `bake-seq render` at tile 0."""
    bake("render", plate, "-o", folder / "####.png", "--tile", 0, "-q", *options)
    return {n: np.rint(read(folder / f"{n}.png")[0] * 65535).astype(int) for n in FRAMES}


def plate_frame(plate, n) -> torch.Tensor:
    return torch.from_numpy(read(plate.replace("####", str(n)))[0]).permute(2, 0, 1)[None].contiguous()


def run_file(path, fmt, image: torch.Tensor) -> np.ndarray:
    """The exported file on one 1x3xHxW image -> H x W x 3 16-bit codes."""
    if fmt == "torchscript":
        with torch.inference_mode():
            out = torch.jit.load(str(path), map_location="cpu")(image).numpy()
    else:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {"image": image.numpy()})[0]
    return np.rint(np.clip(out[0].transpose(1, 2, 0), 0, 1) * 65535).astype(int)


def export(folder, fmt, *options) -> tuple:
    """Write with the CLI -> (path, contract)."""
    path = folder / ("model.pt" if fmt == "torchscript" else "model.onnx")
    result = bake("export", "--format", fmt, "-o", path, *options)
    assert "max |file - eager|" in result.output
    if fmt == "torchscript":
        extra = {"bake_seq.json": ""}
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return path, json.loads(extra["bake_seq.json"])
    return path, json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["bake_seq.json"])


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_the_shipped_global_model_exports_as_render_restores(tmp_path, plate, fmt):
    rendered = render(tmp_path / "render", plate, "--temporal", "frame")
    # TorchScript with its tile knob on: tiles apply the grade estimated from the whole image
    path, about = export(tmp_path, fmt, *(["--tile", 32] if fmt == "torchscript" else []))
    for n in FRAMES:
        got = run_file(path, fmt, plate_frame(plate, n))
        assert np.abs(got - rendered[n]).max() <= 1, n
    assert about["model"] == "global BakeNet" and about["thumbnail"] == 64
    assert about["estimate"].startswith("per whole image") and about["preset"] == "global"


def shot_checkpoint(path, config, seed=0):
    torch.manual_seed(seed)
    model = ShotCorrection(config)
    with torch.no_grad():  # a visible correction (an untrained one is the identity)
        model.grades.normal_(0, 0.2)
        if model.lattice is not None:
            model.lattice.normal_(0, 0.03)
    save_checkpoint(path, model, CheckpointInfo(preset="shot", config=config))
    return path


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("keys,lut", [((1001, 1003), 5), ((1002,), 0)])
def test_a_learned_correction_exports_as_render_applies_it(tmp_path, plate, fmt, keys, lut):
    model = shot_checkpoint(tmp_path / "shot.safetensors", ShotConfig(frames=keys, lut=lut))
    rendered = render(tmp_path / "render", plate, "--checkpoint", model)
    frame = ["--frame", 1002] if len(keys) > 1 else []  # 1002: halfway between two keys
    path, about = export(tmp_path, fmt, "--checkpoint", model, *frame)
    for n in FRAMES if len(keys) == 1 else (1002,):  # one key: one correction for every frame
        assert np.abs(run_file(path, fmt, plate_frame(plate, n)) - rendered[n]).max() <= 1, n
    assert about["model"] == "shot correction learned from keyframes" and about["lattice"] == lut
    assert about["frame"] == 1002 and about["keys"] == list(keys)
    assert about["key_weights"] == ([0.5, 0.5] if len(keys) > 1 else [1.0])


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_a_learned_local_stage_exports_with_its_halo(tmp_path, plate, fmt):
    model = ShotCorrection(ShotConfig(frames=(1001,), local_dim=8))
    with torch.no_grad():
        model.grades.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    save_checkpoint(tmp_path / "local.safetensors", model, CheckpointInfo(preset="shot", config=model.config))
    rendered = render(tmp_path / "render", plate, "--checkpoint", tmp_path / "local.safetensors")
    path, about = export(tmp_path, fmt, "--checkpoint", tmp_path / "local.safetensors", "--tile", 24)
    assert about["local"] is True and about["halo"] == 30
    assert np.abs(run_file(path, fmt, plate_frame(plate, 1002)) - rendered[1002]).max() <= 1


def test_export_refuses_what_one_file_cannot_hold(tmp_path):
    two = shot_checkpoint(tmp_path / "two.safetensors", ShotConfig(frames=(1001, 1010)))
    result = bake("export", "--format", "torchscript", "-o", tmp_path / "a.pt", "--checkpoint", two, code=2)
    assert "2 keys (frames 1001, 1010)" in result.output and "--frame N" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "a.pt").exists()
    result = bake("export", "--format", "onnx", "-o", tmp_path / "a.onnx", "--frame", 1001, code=2)
    assert "--frame applies to a correction learned from keyframes" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "a.onnx").exists()


@pytest.fixture(scope="module")
def global_module():
    return inference_module(load_checkpoint(str(DEFAULT_CHECKPOINT)).model, tile=0)


def test_global_module_follows_the_range_policy_and_nukes_contract(global_module, tmp_path):
    x = torch.rand(1, 3, 45, 61, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1  # some outside [0, 1]
    op = get_operator("bake")
    op.prepare({"checkpoint": str(DEFAULT_CHECKPOINT), "device": "cpu", "tile": 0, "temporal": "frame"})
    rendered = torch.from_numpy(op.process(x[0].permute(1, 2, 0).contiguous().numpy(), 1)).permute(2, 0, 1)[None]
    path = tmp_path / "g.pt"
    bake("export", "--format", "torchscript", "-o", path, "--tile", 16)
    scripted = torch.jit.load(str(path))
    with torch.inference_mode():
        got = scripted(x)
        # Two float32 evaluations of the same maths in differently shaped pieces (the render's tile,
        # the file's --tile 16): torch's vector loop and its scalar tail round pow/exp differently
        # in the last bit, and where the Oklab -> linear matrices cancel (saturated colours) that
        # grows to 1.1e-5 (0.74 of a 16-bit code: the worst of 30 random frames x 7 tile sizes).
        # The contract is one 16-bit code.
        assert (got - rendered).abs().max() <= CODE and got.max() > 1 and got.min() < 0  # 'preserve'
        assert (type(scripted.tile), type(scripted.preserve_range)) == (int, int)
        assert scripted(x.double()).dtype == torch.float64
        scripted.tile, scripted.preserve_range = 0, 0
        clipped = scripted(x)
        assert clipped.min() >= 0 and clipped.max() <= 1
        inside = ((x >= 0) & (x <= 1)).all(dim=1, keepdim=True).expand_as(x)
        assert (clipped - got)[inside].abs().max() <= CODE  # the tile knob: memory, not results (as above)
        half = scripted.half()(x.half())  # "Optimize for Speed and Memory"
        assert half.dtype == torch.float16 and (half.float() - clipped).abs().max() < 0.05
        # A host that cuts the frame gives each piece its own grade (docs/hosts.md): seams.
        pieces = torch.cat([scripted.float()(x[..., :30]), scripted(x[..., 30:])], dim=3)
        assert (pieces - clipped).abs().max() > 10 * CODE


def test_onnx_lattice_gathers_as_grid_sample_samples():
    lattice = torch.randn(3, 9, 9, 9, generator=torch.Generator().manual_seed(0)) * 0.1
    lab = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2  # beyond the box too
    assert (gather_lattice(lattice, lab, BOX) - sample_lattice(lattice, lab, BOX)).abs().max() < 1e-6
