"""The Bake operator as one self-contained module for other hosts: TorchScript and ONNX.

``BakeForInference`` is the whole per-frame path of the Bake operator in one ``forward``:
sRGB-encoded 1x3xHxW -> clamp to [0, 1] -> OklabP -> BakeNet (tiled, halo = receptive radius)
-> OklabP -> sRGB [0, 1] -> (range policy 'preserve') add back what clamping removed.

It follows Nuke's Inference/CatFileCreator contract (Foundry's ".cat File Creation Reference"):
one tensor in, one out; every tensor made in ``forward`` takes the input's device and dtype, so
"Use GPU if available" and "Optimize for Speed and Memory" (half precision) can work; the knobs
are plain int attributes (``tile``, ``preserve_range``) that CatFileCreator can expose.

The colour maths runs in float64 whatever the input dtype, as in the Bake operator (cheap next to
the network; float32 there moves results by ~1e-5), unless ``float64_colour`` is off for runtimes
without float64 (TensorRT, Core ML); the network runs in the dtype of its weights. The colour
matrices are Python float lists, not tensor buffers, so converting the module to half keeps them
exact. The formulas are palette.py's, written with scriptable ops (tests hold the two together).
"""
from __future__ import annotations

import json
import os
import warnings
from typing import List

import torch
from torch import nn

from .models.bakenet import BakeNet
from .palette import CBRT_EPS, M1, M1_INV, M2, M2_INV, srgb_eotf, srgb_oetf

ONNX_OPSET = 18
VERIFY_TOLERANCE = 1e-4  # a sanity check after writing; tests hold exports to 1e-5


def _flat(matrix) -> List[float]:
    return [float(v) for row in matrix for v in row]


def _apply(m: List[float], x: torch.Tensor) -> torch.Tensor:
    """Row-major 3x3 colour matrix over the channel axis of an NCHW tensor. Written out with
    Python-float scalars: TorchScript's torch.tensor(List[float]) rounds through float32."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.cat([m[0] * r + m[1] * g + m[2] * b,
                      m[3] * r + m[4] * g + m[5] * b,
                      m[6] * r + m[7] * g + m[8] * b], dim=1)


class BakeForInference(nn.Module):
    """sRGB-encoded image (1x3xHxW, any float dtype, any device) -> restored image, same shape."""

    def __init__(self, model: BakeNet, tile: int = 512, preserve_range: bool = True,
                 float64_colour: bool = True):
        super().__init__()
        self.model = model
        self.float64_colour: bool = float64_colour  # False: a float32-only graph (ONNX runtimes)
        self.tile: int = int(tile)  # pixels per tile side; 0 = whole frame in one pass
        self.halo: int = int(model.config.receptive_radius)
        self.preserve_range: int = int(bool(preserve_range))  # 1 = 'preserve', 0 = 'clip'
        self.m1: List[float] = _flat(M1)
        self.m2: List[float] = _flat(M2)
        self.m1_inv: List[float] = _flat(M1_INV)
        self.m2_inv: List[float] = _flat(M2_INV)
        self.cbrt_eps: float = float(CBRT_EPS)

    def to_oklabp(self, rgb: torch.Tensor) -> torch.Tensor:
        lms = _apply(self.m1, srgb_eotf(rgb.clamp(0.0, 1.0)))
        lms = torch.sign(lms) * (lms.abs() + self.cbrt_eps) ** (1.0 / 3.0)
        lab = _apply(self.m2, lms)
        return torch.cat([lab[:, 0:1] * 2.0 - 1.0, lab[:, 1:3] * 2.0], dim=1)

    def from_oklabp(self, labp: torch.Tensor) -> torch.Tensor:
        lab = torch.cat([(labp[:, 0:1] + 1.0) * 0.5, labp[:, 1:3] * 0.5], dim=1)
        lms = _apply(self.m2_inv, lab)
        lms = torch.sign(lms) * (lms.abs() ** 3 - self.cbrt_eps).clamp_min(0.0)
        return srgb_oetf(_apply(self.m1_inv, lms)).clamp(0.0, 1.0)

    def run_model(self, lab: torch.Tensor) -> torch.Tensor:
        """Whole frame, or tiles cut with a halo >= the receptive radius (same result)."""
        if self.tile <= 0:
            return self.model(lab)
        height, width = lab.shape[2], lab.shape[3]
        out = torch.empty_like(lab)
        for y0 in range(0, height, self.tile):
            for x0 in range(0, width, self.tile):
                y1, x1 = min(y0 + self.tile, height), min(x0 + self.tile, width)
                cy0, cx0 = max(0, y0 - self.halo), max(0, x0 - self.halo)
                cy1, cx1 = min(height, y1 + self.halo), min(width, x1 + self.halo)
                result = self.model(lab[:, :, cy0:cy1, cx0:cx1])
                out[:, :, y0:y1, x0:x1] = result[:, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        return out

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        source = image.double() if self.float64_colour else image.float()
        weights = self.model.head_out.weight
        lab = self.to_oklabp(source).to(weights.dtype)
        result = self.from_oklabp(self.run_model(lab).to(source.dtype))
        if self.preserve_range == 1:
            result = result + (source - source.clamp(0.0, 1.0))
        return result.to(image.dtype)


def inference_module(model: BakeNet, tile: int = 512, range_policy: str = "preserve",
                     colour_maths: str = "float64") -> BakeForInference:
    module = BakeForInference(model, tile=tile, preserve_range=range_policy == "preserve",
                              float64_colour=colour_maths == "float64")
    return module.eval().requires_grad_(False)


CONTRACT_FILE = "bake_seq.json"  # TorchScript extra file / ONNX metadata key holding the contract


def contract(module: BakeForInference, checkpoint_sha256: str, preset: str) -> dict:
    """What whoever receives only the model file must know to feed it (embedded in the file)."""
    from . import __version__

    return {"bake_seq_version": __version__, "model_sha256": checkpoint_sha256, "preset": preset,
            "input": "float32 N x 3 x H x W, RGB encoded as 'sRGB Encoded Rec.709 (sRGB)' (OCIO); "
                     "values outside [0, 1] are allowed",
            "output": "the same layout and colour space, restored",
            "colour_space": "sRGB Encoded Rec.709 (sRGB)", "working_space": "OklabP",
            "range_policy": "preserve" if module.preserve_range else "clip", "tile": int(module.tile),
            "colour_maths": "float64" if module.float64_colour else "float32"}


def export_torchscript(module: BakeForInference, path: str, about: dict | None = None) -> None:
    # torch 2.14 marks TorchScript deprecated, but it is what Nuke's Inference node (via
    # CatFileCreator) loads; the warning would only confuse users of `bake-seq export`.
    extra = {CONTRACT_FILE: json.dumps(about or {}, indent=1)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        scripted = torch.jit.script(module)
        _atomic(path, lambda tmp: torch.jit.save(scripted, tmp, _extra_files=extra))


def export_onnx(module: BakeForInference, path: str, about: dict | None = None) -> None:
    """ONNX (opset 18) with dynamic batch, height and width, float32 in and out; the contract in
    the model's metadata_props (key bake_seq.json, and one key per field). The graph runs
    the whole frame in one pass: tiling is the runtime's business there. Uses torch's
    TorchScript-based exporter (needs the ``onnx`` package): the dynamo exporter makes an
    equivalent graph but took ~6x longer here."""
    whole = BakeForInference(module.model, tile=0, preserve_range=bool(module.preserve_range),
                             float64_colour=module.float64_colour).eval()
    axes = {0: "batch", 2: "height", 3: "width"}

    def write(tmp: str) -> None:
        import onnx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # this exporter's deprecation notice, and tracer notes
            torch.onnx.export(whole, (torch.rand(2, 3, 64, 64),), tmp, dynamo=False,
                              opset_version=ONNX_OPSET, input_names=["image"],
                              output_names=["restored"],
                              dynamic_axes={"image": axes, "restored": axes})
        graph = onnx.load(tmp)
        told = {**(about or {}), "tile": 0}  # the ONNX graph runs the whole frame in one pass
        fields = {CONTRACT_FILE: json.dumps(told), **{k: str(v) for k, v in told.items()}}
        for key, value in fields.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, tmp)

    _atomic(path, write)


def verify(module: BakeForInference, path: str, fmt: str, size=(80, 96)) -> float | None:
    """Run the written file and the eager module on one test image; the largest difference.
    None when the runtime for the file is not installed (onnxruntime is optional)."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, *size, generator=generator) * 1.2 - 0.1  # some values outside [0, 1]
    with torch.inference_mode():
        expected = module(image)
        if fmt == "torchscript":
            got = torch.jit.load(path, map_location="cpu")(image)
        else:
            try:
                import onnxruntime
            except ImportError:
                return None
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"image": image.numpy()})[0])
    difference = float((got - expected).abs().max())
    if not difference <= VERIFY_TOLERANCE:
        raise RuntimeError(f"{path}: the exported model differs from the eager one by {difference:.2e} "
                           f"(> {VERIFY_TOLERANCE:.0e}); this is a bug in bake-seq's exporter")
    return difference


def _atomic(path: str, write) -> None:
    """Write to a hidden temp file beside ``path`` and rename: never a half-written model file."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.partial-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
