"""The Bake operator as one self-contained module for other hosts: TorchScript and ONNX.

One module per kind of model, each the whole per-frame path of the Bake operator in one
``forward`` (sRGB-encoded 1x3xHxW in, the same out; ``bake-seq render`` at tile 0 within a 16-bit
code):

    BakeForInference    per-pixel BakeNet: clamp to [0, 1] -> OklabP -> BakeNet (tiled, halo =
                        receptive radius) -> OklabP -> sRGB
    GlobalForInference  global BakeNet (the shipped default): thumbnail of the WHOLE image it is
                        given -> encoder -> one grade -> applied to every pixel
    ShotForInference    a correction learned from keyframes (`bake-seq learn`) at one frame
                        number: the keys' grades and lattices blended for that frame, then the
                        optional local BakeNet

each followed by the range policy ('preserve' adds back what clamping removed). A global module's
grade depends on the whole image it receives: a host that cuts the frame into tiles gives each
tile its own grade (docs/hosts.md).

They follow Nuke's Inference/CatFileCreator contract (Foundry's ".cat File Creation Reference"):
one tensor in, one out; every tensor made in ``forward`` takes the input's device and dtype, so
"Use GPU if available" and "Optimize for Speed and Memory" (half precision) can work; the knobs
are plain int attributes (``tile``, ``preserve_range``) that CatFileCreator can expose.

Around a network, the sRGB <-> OklabP conversions run in float64 whatever the input dtype, as in
the Bake operator (cheap next to the network; float32 there moves results by ~1e-5), unless
``float64_colour`` is off for runtimes without float64 (TensorRT, Core ML); networks run in the
dtype of their weights. The global model's per-pixel grade runs in float32 from sRGB to sRGB
(``Grade.srgb``), exactly as the render does it; only its thumbnail's conversion follows
``float64_colour``. The conversions and the grade are the render's own modules
(palette.OklabP, bakenet_global.Grade), whose constants are Python floats, not tensor buffers,
so converting a module to half keeps them exact.
"""
from __future__ import annotations

import copy
import io
import json
import warnings
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .models.bakenet import BakeNet
from .models.bakenet_global import BakeNetGlobal, Grade
from .models.shot import BOX, ShotCorrection, gather_lattice, key_weights, sample_lattice
from .palette import OklabP

ONNX_OPSET = 18
VERIFY_TOLERANCE = 1e-4  # a sanity check after writing; tests hold exports to 1e-5


class ForInference(nn.Module):
    """What every exported module shares: the knobs, the colour conversions, the tiles and
    the range policy. A subclass gives ``per_pixel`` and ``forward``."""

    def __init__(self, tile: int, halo: int, preserve_range: bool, float64_colour: bool):
        super().__init__()
        self.oklabp = OklabP()
        self.float64_colour: bool = float64_colour  # False: a float32-only graph (ONNX runtimes)
        self.tile: int = int(tile)  # pixels per tile side; 0 = whole frame in one pass
        self.halo: int = int(halo)
        self.preserve_range: int = int(bool(preserve_range))  # 1 = 'preserve', 0 = 'clip'
        self.onnx: bool = False  # True: the forms ONNX's exporter takes (see ``whole_frame``)

    def to_oklabp(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.oklabp.encode(rgb)  # clamps to [0, 1] first

    def from_oklabp(self, labp: torch.Tensor) -> torch.Tensor:
        return self.oklabp.decode(labp)  # sRGB in [0, 1]

    def source(self, image: torch.Tensor) -> torch.Tensor:
        return image.double() if self.float64_colour else image.float()

    def finish(self, result: torch.Tensor, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if self.preserve_range == 1:
            result = result + (source - source.clamp(0.0, 1.0))
        return result.to(image.dtype)

    def per_pixel(self, x: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def tiled(self, x: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
        """``per_pixel`` on the whole image, or on tiles cut with a halo >= the receptive radius
        (the same result: the tile sets memory, not results)."""
        if self.tile <= 0:
            return self.per_pixel(x, grade)
        height, width = x.shape[2], x.shape[3]
        out = torch.empty_like(x)
        for y0 in range(0, height, self.tile):
            for x0 in range(0, width, self.tile):
                y1, x1 = min(y0 + self.tile, height), min(x0 + self.tile, width)
                cy0, cx0 = max(0, y0 - self.halo), max(0, x0 - self.halo)
                cy1, cx1 = min(height, y1 + self.halo), min(width, x1 + self.halo)
                result = self.per_pixel(x[:, :, cy0:cy1, cx0:cx1], grade)
                out[:, :, y0:y1, x0:x1] = result[:, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        return out

    def whole_frame(self) -> "ForInference":
        """This module for ONNX: the whole frame in one pass (tiling is the runtime's business
        there) and ONNX-exportable forms of adaptive pooling and lattice lookup."""
        whole = copy.copy(self)  # shares the weights
        whole.tile, whole.onnx = 0, True
        return whole.eval()

    def describe(self) -> dict:
        """What the file is, for its contract."""
        return {}


class BakeForInference(ForInference):
    """Per-pixel BakeNet: sRGB-encoded image (1x3xHxW, any float dtype, any device) -> restored image."""

    def __init__(self, model: BakeNet, tile: int = 512, preserve_range: bool = True,
                 float64_colour: bool = True):
        super().__init__(tile, model.config.receptive_radius, preserve_range, float64_colour)
        self.model = model

    def per_pixel(self, x: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        source = self.source(image)
        weights = self.model.head_out.weight
        lab = self.to_oklabp(source).to(weights.dtype)
        result = self.from_oklabp(self.tiled(lab, lab[:0]).to(source.dtype))
        return self.finish(result, source, image)

    def describe(self) -> dict:
        return {"model": "per-pixel BakeNet", "estimate": "none: each pixel from its neighbourhood "
                f"(tiles with a halo of {self.halo} px give the same result)", "halo": self.halo}


def area_means(image: torch.Tensor, size: int) -> torch.Tensor:
    """F.adaptive_avg_pool2d(image, size) as two matrix products (ONNX's exporter takes
    adaptive pooling only for sizes known at export): output cell i of an axis of n pixels
    averages pixels floor(i n / size) to ceil((i + 1) n / size) - 1, as there."""
    rows = [_area_matrix(image.shape[2], size, image), _area_matrix(image.shape[3], size, image)]
    return torch.matmul(torch.matmul(rows[0], image), rows[1].transpose(0, 1))


def _area_matrix(n: int, size: int, like: torch.Tensor) -> torch.Tensor:
    pixel = torch.arange(n, device=like.device)[None, :]
    cell = torch.arange(size, device=like.device)[:, None]
    start, end = (cell * n) // size, ((cell + 1) * n + size - 1) // size
    inside = ((pixel >= start) & (pixel < end)).to(like.dtype)
    return inside / inside.sum(1, keepdim=True)


class GlobalForInference(ForInference):
    """Global BakeNet: a sRGB-encoded image -> its thumbnail -> one grade -> every pixel, as
    ``bake-seq render --temporal frame`` does (the render's own encoder and Grade modules)."""

    def __init__(self, model: BakeNetGlobal, tile: int = 512, preserve_range: bool = True,
                 float64_colour: bool = True):
        super().__init__(tile, 0, preserve_range, float64_colour)
        cfg = model.config
        self.encoder = model.encoder
        self.grade = Grade(cfg.curve_knots, cfg.toning_knots, cfg.harmonics)
        self.thumb: int = cfg.thumb

    def estimate(self, image: torch.Tensor) -> torch.Tensor:
        """The image's grade (N,P) from its area-mean thumbnail (bakenet_global.thumbnail)."""
        clamped = image.float().clamp(0.0, 1.0)
        small = area_means(clamped, self.thumb) if self.onnx else F.adaptive_avg_pool2d(clamped, self.thumb)
        thumb = self.to_oklabp(self.source(small)).float()  # float64 as the render's, unless float32 maths
        return self.encoder(thumb.to(self.encoder.out.weight.dtype)).float()

    def per_pixel(self, x: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
        return self.grade.srgb(grade, x.float()).to(x.dtype)  # the render's float32 per-pixel path

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        source = self.source(image)
        return self.finish(self.tiled(source, self.estimate(image)), source, image)

    def describe(self) -> dict:
        return {"model": "global BakeNet", "thumbnail": self.thumb,
                "estimate": f"per whole image: one grade from a {self.thumb}x{self.thumb} area-mean thumbnail "
                            "of the image given to the model; give it whole frames (a host that cuts the "
                            "frame into tiles gets one grade per tile: seams)"}


class ShotForInference(ForInference):
    """A correction learned from keyframes, at one frame number: the grades (and residual
    lattices) of the keys that frame blends, then the optional local BakeNet, as
    ``bake-seq render`` does for that frame (ShotCorrection)."""

    def __init__(self, model: ShotCorrection, frame: int, tile: int = 512, preserve_range: bool = True,
                 float64_colour: bool = True, plan=None):
        cfg = model.config
        super().__init__(tile, cfg.receptive_radius, preserve_range, float64_colour)
        # plan: (key index, weight, temporal.Change) per key, from the plate's measured change
        # (render --follow auto); None: the blend by frame distance
        keys = [(k, w) for k, w, _ in plan] if plan is not None else key_weights(cfg.frames, frame)
        changes = [c for _, _, c in plan] if plan is not None else []
        self.follow: bool = any(c.stops != (0.0, 0.0, 0.0) or c.contrast != (1.0, 1.0, 1.0) for c in changes)
        self.register_buffer("pre_stops", torch.tensor([list(c.stops) for c in changes] if self.follow
                                                       else [[0.0] * 3] * len(keys), dtype=torch.float32))
        self.register_buffer("pre_contrast", torch.tensor([list(c.contrast) for c in changes] if self.follow
                                                          else [[1.0] * 3] * len(keys), dtype=torch.float32))
        self.frame: int = int(frame)
        self.keys: List[int] = [cfg.frames[k] for k, _ in keys]
        self.weights: List[float] = [float(w) for _, w in keys]
        chosen = [k for k, _ in keys]
        self.register_buffer("grades", model.grades.detach()[chosen].clone())
        lattice = model.lattice.detach()[chosen].clone() if model.lattice is not None else torch.zeros(0)
        self.register_buffer("lattices", lattice)
        self.lattice_size: int = cfg.lut
        self.box: List[float] = list(BOX)
        self.grade = Grade(cfg.curve_knots, cfg.toning_knots, cfg.harmonics)
        self.local: Optional[BakeNet] = model.local

    def key(self, i: int, lab: torch.Tensor) -> torch.Tensor:
        """The i-th blended key's colour correction (grade, then residual lattice) of OklabP pixels."""
        out = self.grade(self.grades[i:i + 1].float().expand(lab.shape[0], -1), lab)
        if self.lattice_size > 0:
            lattice = self.lattices[i].float()
            if self.onnx:
                out = out + gather_lattice(lattice, lab, self.box)
            else:
                out = out + sample_lattice(lattice, lab, self.box)
        return out

    def colour(self, lab: torch.Tensor) -> torch.Tensor:
        out = self.weights[0] * self.key(0, lab)
        for i in range(1, len(self.weights)):
            out = out + self.weights[i] * self.key(i, lab)
        return out

    def moved(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """sRGB pixels brought to the i-th key frame's colour by the plate's measured change
        (per channel log2(y/0.18) = stops + contrast log2(x/0.18) in linear light, float32 as
        bake_node/temporal.apply_tensor), clamped to the model's domain."""
        v = x.float()
        stops = self.pre_stops[i].view(1, 3, 1, 1)
        contrast = self.pre_contrast[i].view(1, 3, 1, 1)
        lin = torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055).clamp_min(0.0) ** 2.4) / 0.18
        y = torch.sign(lin) * torch.abs(lin).pow(contrast) * (torch.exp(stops * 0.6931471805599453) * 0.18)
        out = torch.where(y <= 0.0031308, 12.92 * y, 1.055 * y.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055)
        return out.clamp(0.0, 1.0).to(x.dtype)

    def per_pixel(self, x: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
        if self.follow:
            out = self.weights[0] * self.key(0, self.to_oklabp(self.moved(0, x)).float())
            for i in range(1, len(self.weights)):
                out = out + self.weights[i] * self.key(i, self.to_oklabp(self.moved(i, x)).float())
        else:
            out = self.colour(self.to_oklabp(x).float())
        local = self.local
        if local is not None:
            out = local(out.to(local.head_out.weight.dtype)).float()
        return self.from_oklabp(out.to(x.dtype))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        source = self.source(image)
        return self.finish(self.tiled(source, source[:0]), source, image)

    def describe(self) -> dict:
        blend = ", ".join(f"{w:g} x key at frame {k}" for k, w in zip(self.keys, self.weights))
        follow = {"follows_plate": self.follow}
        if self.follow:
            follow["plate_change_to_keys"] = [{"stops": s, "contrast": c} for s, c in
                                              zip(self.pre_stops.tolist(), self.pre_contrast.tolist())]
            blend += ", each after the plate's measured change to that key frame"
        return {"model": "shot correction learned from keyframes", "frame": self.frame, "keys": self.keys,
                "key_weights": self.weights, "lattice": self.lattice_size, "local": self.local is not None,
                "halo": self.halo, **follow,
                "estimate": f"none: a fixed correction, frame {self.frame}'s ({blend}); "
                            "use it for that frame (every frame when the file has one key)"}


def inference_module(model, tile: int = 512, range_policy: str = "preserve", colour_maths: str = "float64",
                     frame: int | None = None, plan=None) -> ForInference:
    """The exported form of any BakeNet checkpoint's model; ``frame`` fixes a shot correction's
    blend of keys (required when it has more than one); ``plan``: that frame's keys with the
    plate's measured change to each (temporal.Follow.for_frame)."""
    options = {"tile": tile, "preserve_range": range_policy == "preserve",
               "float64_colour": colour_maths == "float64"}
    if isinstance(model, ShotCorrection):
        if frame is None:
            if model.config.keys > 1:
                raise ValueError("a shot correction with several keys needs a frame number")
            frame = model.config.frames[0]
        module = ShotForInference(model, frame, plan=plan, **options)
    elif isinstance(model, BakeNetGlobal):
        module = GlobalForInference(model, **options)
    else:
        module = BakeForInference(model, **options)
    return module.eval().requires_grad_(False)


CONTRACT_FILE = "bake_seq.json"  # TorchScript extra file / ONNX metadata key holding the contract


def contract(module: ForInference, checkpoint_sha256: str, preset: str) -> dict:
    """What whoever receives only the model file must know to feed it (embedded in the file)."""
    from . import __version__

    return {"bake_seq_version": __version__, "model_sha256": checkpoint_sha256, "preset": preset,
            **module.describe(),
            "input": "float32 N x 3 x H x W, RGB encoded as 'sRGB Encoded Rec.709 (sRGB)' (OCIO); "
                     "values outside [0, 1] are allowed",
            "output": "the same layout and colour space, restored",
            "colour_space": "sRGB Encoded Rec.709 (sRGB)", "working_space": "OklabP",
            "range_policy": "preserve" if module.preserve_range else "clip", "tile": int(module.tile),
            "colour_maths": "float64" if module.float64_colour else "float32"}


def torchscript_bytes(module: ForInference, about: dict | None = None) -> bytes:
    """The TorchScript file's bytes. Serialised in memory, not to a path: libtorch writing a file
    onto a full disk aborts the whole process (a C++ stack trace); the safe writer then writes
    these bytes (a few MB) with one line per failure."""
    # torch 2.14 marks TorchScript deprecated, but it is what Nuke's Inference node (via
    # CatFileCreator) loads; the warning would only confuse users of `bake-seq export`.
    extra = {CONTRACT_FILE: json.dumps(about or {}, indent=1)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        scripted = torch.jit.script(module)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer, _extra_files=extra)
    return buffer.getvalue()


def onnx_bytes(module: ForInference, about: dict | None = None) -> bytes:
    """The ONNX file's bytes (opset 18) with dynamic batch, height and width, float32 in and out;
    the contract in the model's metadata_props (key bake_seq.json, and one key per field). The
    graph runs the whole frame in one pass: tiling is the runtime's business there. Uses torch's
    TorchScript-based exporter (needs the ``onnx`` package): the dynamo exporter makes an
    equivalent graph but took ~6x longer here. In memory, as torchscript_bytes says why."""
    import onnx

    whole = module.whole_frame()
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # this exporter's deprecation notice, and tracer notes
        torch.onnx.export(whole, (torch.rand(2, 3, 64, 64),), buffer, dynamo=False,
                          opset_version=ONNX_OPSET, input_names=["image"],
                          output_names=["restored"],
                          dynamic_axes={"image": axes, "restored": axes})
    graph = onnx.load_from_string(buffer.getvalue())
    told = {**(about or {}), "tile": 0}  # the ONNX graph runs the whole frame in one pass
    fields = {CONTRACT_FILE: json.dumps(told), **{k: str(v) for k, v in told.items()}}
    for key, value in fields.items():
        graph.metadata_props.add(key=key, value=value)
    return graph.SerializeToString()


def export_torchscript(module: ForInference, path: str, about: dict | None = None, **target) -> None:
    from bake_seq.sequences.safe_write import write_file

    write_file(path, torchscript_bytes(module, about), what="TorchScript model", **target)


def verify(module: ForInference, data: bytes, fmt: str, size=(80, 96)) -> float | None:
    """Run the model file's bytes and the eager module on one test image; the largest difference.
    None when the runtime for the file is not installed (onnxruntime is optional). Done before
    the file is written, so a wrong export never lands under its name."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, *size, generator=generator) * 1.2 - 0.1  # some values outside [0, 1]
    with torch.inference_mode():
        expected = module(image)
        if fmt == "torchscript":
            got = torch.jit.load(io.BytesIO(data), map_location="cpu")(image)
        else:
            try:
                import onnxruntime
            except ImportError:
                return None
            session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"image": image.numpy()})[0])
    difference = float((got - expected).abs().max())
    if not difference <= VERIFY_TOLERANCE:
        raise RuntimeError(f"the exported {fmt} model differs from the eager one by {difference:.2e} "
                           f"(> {VERIFY_TOLERANCE:.0e}); this is a bug in bake-seq's exporter")
    return difference
