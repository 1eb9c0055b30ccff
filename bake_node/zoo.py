"""The model zoo: super-resolution and face-restoration weight files loaded with spandrel.

spandrel knows the architectures (SwinIR, Real-ESRGAN RRDB and Compact, GFPGAN, and with
spandrel-extra-arches CodeFormer, ...) and detects hyper-parameters from the state dict. This
module only decides how a file is read (never by unpickling code), turns loader failures into one
line that names the file and the fix, caches loaded models per process and describes a model in
the user's words (`bake-seq zoo info`).
"""
from __future__ import annotations

import copy
import hashlib
import math
import os
import pickle
import re
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch

from .checkpoint import file_key
from .errors import CheckpointError, SettingsError

WHERE_WEIGHTS_COME_FROM = ("weights are not shipped: download a .safetensors or .pth from the "
                           "model's GitHub release page (SwinIR, Real-ESRGAN, GFPGAN, CodeFormer) "
                           "or from OpenModelDB, then pass --weights FILE")
PICKLE_EXTENSIONS = (".pth", ".pt", ".ckpt")
EXTENSIONS = (".safetensors", *PICKLE_EXTENSIONS)

# Face models take exactly one size: their style code / token grid is fixed at 512 x 512.
FIXED_INPUT = {"GFPGAN": 512, "CodeFormer": 512, "RestoreFormer": 512}
# What each architecture is, in the user's words, and the code licence of its upstream project
# (the weights carry their own terms: read the release page you took them from).
KNOWN = {
    "SwinIR": ("Swin-transformer restoration / super-resolution", "Apache-2.0 (JingyunLiang/SwinIR)"),
    "ESRGAN": ("ESRGAN / Real-ESRGAN RRDB GAN super-resolution", "Apache-2.0 (ESRGAN), BSD-3-Clause "
               "(Real-ESRGAN)"),
    "Compact": ("Real-ESRGAN Compact (SRVGGNetCompact) fast super-resolution", "BSD-3-Clause (Real-ESRGAN)"),
    "GFPGAN": ("GFPGAN StyleGAN2-prior face restoration (no face detection: aligned 512 px faces)",
               "Apache-2.0 (TencentARC/GFPGAN; parts under NVIDIA StyleGAN2 terms)"),
    "CodeFormer": ("CodeFormer codebook-transformer face restoration (no face detection: aligned "
                   "512 px faces)", "S-Lab License 1.0: non-commercial use only (sczhou/CodeFormer)"),
}

_INSTALL_LOCK = threading.Lock()
_installed = False


def _registry():
    """spandrel's registry with the extra (restrictively licensed) architectures added once."""
    global _installed
    with _INSTALL_LOCK, quiet_warnings():
        import spandrel

        if not _installed:
            try:
                import spandrel_extra_arches
                spandrel_extra_arches.install(ignore_duplicates=True)
            except ImportError:  # CodeFormer & co. then report as unknown architectures
                pass
            _installed = True
    return spandrel.MAIN_REGISTRY


@contextmanager
def quiet_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def read_state_dict(path: str) -> dict:
    """Tensors from a .safetensors file, or from a .pth/.pt/.ckpt with torch.load(weights_only=True).

    spandrel's own ModelLoader is not used for reading: it unpickles .pth with an allow-list
    unpickler and tries torch.jit.load (TorchScript: code) for .pt. weights_only=True rebuilds
    tensors and plain containers only; a pickle that names any other callable is refused.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise CheckpointError(path, f"unsupported weight file type {ext or '(none)'}",
                              "use a .safetensors (preferred) or .pth/.pt file")
    if ext == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(path, f"cannot read safetensors ({first_line(exc)})",
                                  "the file is truncated or corrupt: download it again") from None
    try:
        with quiet_warnings():  # e.g. "pickle protocol 4 ... might not be supported"
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"names {named[1]}" if named else "holds code or objects"
        raise CheckpointError(path, f"refused to unpickle: the file {what}, not just tensors (nothing "
                              "was run)", "get a .safetensors version, or re-save the state dict from a "
                              "trusted environment") from None
    except RuntimeError as exc:
        if "TorchScript" in str(exc):
            raise CheckpointError(path, "is a TorchScript archive (code), which bake-seq does not run",
                                  "export model.state_dict() to .safetensors") from None
        raise CheckpointError(path, f"cannot read ({first_line(exc)})",
                              "the file is truncated or corrupt: download it again") from None
    except (EOFError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"cannot read ({first_line(exc) or type(exc).__name__})",
                              "the file is truncated or corrupt: download it again") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, f"holds a {type(data).__name__}, not a state dict",
                              "save model.state_dict(), not the model")
    return data


def first_line(exc: BaseException) -> str:
    """The first sentence of an exception's text (library messages run to paragraphs)."""
    text = str(exc).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(exc).__name__


def _gfpgan(model, image):
    # The stored noise maps, not fresh random noise per call (spandrel's and GFPGAN's default):
    # the same frame must give the same pixels on every run, machine and device.
    return model(image, randomize_noise=False)[0]


# How to call an architecture when spandrel's own call is not deterministic.
CALLS = {"GFPGAN": _gfpgan}


def run_model(descriptor, image: torch.Tensor) -> torch.Tensor:
    """N,3,h,w in [0, 1] -> N,3,h*scale,w*scale in [0, 1], padded to the size requirements
    (reflect) and cropped back, as spandrel's own call does."""
    call = CALLS.get(descriptor.architecture.id)
    if call is None:
        return descriptor(image)
    from .engine import pad_right_bottom

    height, width = image.shape[2:]
    pad_w, pad_h = descriptor.size_requirements.get_padding(width, height)
    out = call(descriptor.model, pad_right_bottom(image, pad_h, pad_w)).clamp_(0, 1)
    return out[..., :height * descriptor.scale, :width * descriptor.scale]


@dataclass
class ZooModel:
    """A loaded model (fp32, CPU) and what callers need to know about it."""

    path: str
    sha256: str
    file_bytes: int
    descriptor: object  # spandrel.ImageModelDescriptor

    @property
    def arch(self) -> str:
        return self.descriptor.architecture.id

    @property
    def scale(self) -> int:
        return self.descriptor.scale

    @property
    def fixed_input(self) -> int:
        """Tiles must be exactly this size (0: any size)."""
        return FIXED_INPUT.get(self.arch, 0)

    @property
    def align(self) -> int:
        """Tiles start and end on multiples of this: the size multiple the model needs, and the
        attention window of window transformers (SwinIR), so tiles see the frame's window grid."""
        window = getattr(self.descriptor.model, "window_size", 1)
        return math.lcm(self.descriptor.size_requirements.multiple_of, window if isinstance(window, int) else 1)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.descriptor.model.parameters())

    def describe(self) -> dict:
        d, req = self.descriptor, self.descriptor.size_requirements
        purpose, licence = KNOWN.get(self.arch, (d.purpose, licence_of(d)))
        return {
            "file": self.path, "file_bytes": self.file_bytes, "sha256": self.sha256,
            "architecture": self.arch, "architecture_name": d.architecture.name,
            "purpose": d.purpose, "description": purpose, "tags": list(d.tags),
            "scale": d.scale, "input_channels": d.input_channels, "output_channels": d.output_channels,
            "parameters": self.parameters,
            "size_requirements": {"minimum": req.minimum, "multiple_of": req.multiple_of,
                                  "square": req.square, "fixed": self.fixed_input or None,
                                  "tile_multiple": self.align},
            "tiling": d.tiling.name.lower(), "tiling_hint": tiling_hint(self),
            "supports_fp16": d.supports_half, "supports_bf16": d.supports_bfloat16,
            "licence": licence,
        }


def licence_of(descriptor) -> str:
    if type(descriptor.architecture).__module__.startswith("spandrel_extra_arches"):
        return "restrictive (spandrel-extra-arches: often non-commercial); check the upstream project"
    return "permissive (spandrel main package); check the upstream project"


def tiling_hint(model: ZooModel) -> str:
    d = model.descriptor
    if model.fixed_input:
        return (f"runs on {model.fixed_input}x{model.fixed_input} tiles of the frame (no face detection "
                "or alignment): give it aligned face crops about that size")
    mode = d.tiling.name
    if mode == "INTERNAL":
        return "tiles internally: leave --tile 0 (whole frame)"
    multiple = model.align
    note = f"tile a multiple of {multiple}; " if multiple > 1 else ""
    if mode == "DISCOURAGED":
        return note + ("attention sees the whole tile: use the largest tile that fits and "
                       "--zoo-overlap 64 or more")
    return note + "any tile size; --zoo-overlap 32 (default) hides seams"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str) -> ZooModel:
    """Read, detect and build (uncached); every failure is a CheckpointError naming the file."""
    with quiet_warnings():
        from spandrel import ImageModelDescriptor, UnsupportedModelError, canonicalize_state_dict

    state = canonicalize_state_dict(read_state_dict(path))
    registry = _registry()
    try:
        with quiet_warnings():  # upstream arch code warns about torch API changes on every build
            descriptor = registry.load(state)
    except UnsupportedModelError:
        raise CheckpointError(path, "unknown model architecture (spandrel recognises none of its "
                              f"{len(state)} tensors' layout)",
                              "use SwinIR, Real-ESRGAN (RRDB or Compact), GFPGAN or CodeFormer "
                              "weights (see docs/zoo.md)") from None
    except Exception as exc:  # detected, but the tensors do not fit that architecture
        raise CheckpointError(path, f"looks like a known architecture but does not load "
                              f"({type(exc).__name__}: {first_line(exc)[:160]})",
                              "the file is damaged or a variant spandrel does not support") from None
    if not isinstance(descriptor, ImageModelDescriptor):
        raise CheckpointError(path, f"is a {descriptor.architecture.id} {descriptor.purpose} model "
                              "(needs a mask input)", "use an image-to-image model")
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise CheckpointError(path, f"takes {descriptor.input_channels} and gives "
                              f"{descriptor.output_channels} channels", "use an RGB (3-channel) model")
    descriptor.model.eval()
    return ZooModel(path, file_sha256(path), os.path.getsize(path), descriptor)


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, size: int) -> ZooModel:
    # Keyed on mtime and size too: a replaced file under the same name reloads.
    return load_model(path)


def load_cached(path: str | None) -> ZooModel:
    if not path:
        raise CheckpointError(None, "no weights given (--op zoo needs --weights FILE)", WHERE_WEIGHTS_COME_FROM)
    return _cached(*file_key(path, "weight file not found", WHERE_WEIGHTS_COME_FROM))


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_PLACED: dict = {}


def placed(model: ZooModel, device: torch.device, precision: str):
    """The descriptor on ``device`` in ``precision``. The cached fp32 CPU copy is never cast in
    place (fp32 -> bf16 -> fp32 would lose bits for every later user of the cache)."""
    dtype = PRECISIONS[precision]
    if (precision == "fp16" and not model.descriptor.supports_half) or \
            (precision == "bf16" and not model.descriptor.supports_bfloat16):
        raise SettingsError(None, f"{model.arch} does not support {precision}", "use --zoo-precision fp32")
    if device.type == "cpu" and dtype == torch.float32:
        return model.descriptor
    key = (model.sha256, str(device), precision)
    if key not in _PLACED:
        _PLACED.clear()
        _PLACED[key] = copy.deepcopy(model.descriptor).to(device, dtype)
    return _PLACED[key]
