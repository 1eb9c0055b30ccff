"""BakeNet checkpoints: safetensors weights + one JSON metadata record.

Nothing here unpickles anything except ``import_reference``, which goes through
``torch.load(weights_only=True)`` (tensors and plain containers only, no code).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .errors import CheckpointError


def file_key(path: str, missing: str, fix: str) -> tuple[str, int, int]:
    """(real path, mtime, size): the key model caches use, so a file re-trained or re-downloaded
    under the same name reloads. A missing file is a CheckpointError with ``missing`` and ``fix``."""
    try:
        st = os.stat(path)
    except OSError:
        raise CheckpointError(path, missing, fix) from None
    return os.path.realpath(path), st.st_mtime_ns, st.st_size
from .models.bakenet import PRESETS, BakeNet, BakeNetConfig
from .models.bakenet_global import BakeNetGlobal, GlobalConfig
from .models.colorize import ColorizeConfig, ColorizeNet
from .models.shot import ShotConfig, ShotCorrection

# The one reader for every model file: metadata "model" says what it is for, "architecture"
# which class to build (the first one listed when absent: files from before it was recorded).
MODELS = {
    "bakenet": {"convolutional": (BakeNetConfig, BakeNet), "global": (GlobalConfig, BakeNetGlobal),
                "shot": (ShotConfig, ShotCorrection)},
    "colorize": {"unet": (ColorizeConfig, ColorizeNet)},
}
MODEL_LABELS = {"bakenet": "BakeNet", "colorize": "a colorize model"}


def architecture_of(config) -> str:
    return next(name for archs in MODELS.values() for name, (cls, _) in archs.items() if isinstance(config, cls))

FORMAT_VERSION = 1
METADATA_KEY = "bake_seq"
WORKING_SPACE = "OklabP"
MODEL_COLOURSPACE = "sRGB Encoded Rec.709 (sRGB)"


@dataclass
class CheckpointInfo:
    preset: str
    config: BakeNetConfig | GlobalConfig | ShotConfig
    weights: str = "ema"  # "ema" or "raw"
    training: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps({
            "format_version": self.format_version,
            "model": "bakenet",
            "preset": self.preset,
            "architecture": architecture_of(self.config),
            "config": self.config.to_dict(),
            "weights": self.weights,
            "training": self.training,
            "working_space": WORKING_SPACE,
            "model_colourspace": MODEL_COLOURSPACE,
        }, sort_keys=True)


@dataclass
class LoadedCheckpoint:
    model: BakeNet | BakeNetGlobal | ShotCorrection
    info: CheckpointInfo
    path: str
    sha256: str


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: BakeNet, info: CheckpointInfo, *, overwrite: bool = False,
                    inputs=()) -> None:
    """Through the one safe writer (sequences/safe_write.py): serialised in memory first (a few MB),
    so a full disk is one line, not safetensors' own error; never over an input or, without
    ``overwrite``, over an existing file."""
    from bake_seq.sequences.safe_write import write_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = safetensors_bytes(tensors, metadata={METADATA_KEY: info.to_json()})
    write_file(path, data, inputs=inputs, overwrite=overwrite, what="model file")


def read_checkpoint(path: str, model_name: str, fix: str):
    """Any bake-seq model file -> (model in eval mode, metadata dict, config).

    The metadata is checked (model kind, format version, architecture, config values within
    each config class's bounds) before anything is built, and the tensors against the layout
    the metadata names before they are loaded."""
    state, metadata = _read_safetensors(path)
    label = MODEL_LABELS[model_name]
    if not metadata or METADATA_KEY not in metadata:
        raise CheckpointError(path, "safetensors file has no bake-seq metadata", fix)
    try:
        meta = json.loads(metadata[METADATA_KEY])
        if not isinstance(meta, dict):
            raise TypeError("not a JSON object")
        if meta.get("model") != model_name:
            raise CheckpointError(path, f"holds model {meta.get('model')!r}, not {label}", fix)
        version = int(meta["format_version"])
        if version > FORMAT_VERSION:
            raise CheckpointError(path, f"format version {version} is newer than this bake-seq "
                                  f"understands ({FORMAT_VERSION})", "upgrade bake-seq")
        architectures = MODELS[model_name]
        architecture = meta.get("architecture", next(iter(architectures)))
        if architecture not in architectures:
            raise CheckpointError(path, f"unknown {label} architecture {architecture!r}", "upgrade bake-seq")
        config_class, model_class = architectures[architecture]
        config = config_class(**meta["config"])
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        raise CheckpointError(path, f"bake-seq metadata is unreadable ({exc})", fix) from None
    for name, tensor in state.items():  # right shapes but wrong values would render NaN frames with exit 0
        if not tensor.is_floating_point():
            raise CheckpointError(path, f"tensor {name} holds {str(tensor.dtype).replace('torch.', '')}, not floats",
                                  "the file is damaged or not a bake-seq model; re-export it")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(path, f"tensor {name} holds NaN or Inf values",
                                  "the training run diverged or the file is damaged; use another checkpoint")
    # The layout the metadata names, checked before any real tensor is made: a 450-byte
    # header must not build a 4 GB model. Every size in the config is bounded by what the file
    # holds (depth by its tensor count, widths by its largest tensor), then the model is built
    # on the "meta" device (shapes only, no memory) and compared with the file's tensors.
    limit = max([len(state), *(max(t.shape, default=1) for t in state.values())])
    for key, value in config.to_dict().items():
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            raise CheckpointError(path, f"metadata says {key}: {value}, more than the file's {len(state)} "
                                  f"tensors can hold", "the file is damaged or not a bake-seq model; re-export it")
    with torch.device("meta"):
        load_state(model_class(config), state, path, label, check_only=True)
    model = model_class(config)
    load_state(model, state, path, label)
    model.eval().requires_grad_(False)
    return model, meta, config


def architecture_in(path: str) -> str | None:
    """The architecture a checkpoint's header names, read without loading its tensors (None for
    anything unreadable: loading it reports the problem properly)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get(METADATA_KEY, "{}"))
        return meta.get("architecture") if isinstance(meta, dict) else None
    except Exception:  # noqa: BLE001 - any unreadable header: decided when the file is loaded
        return None


def _read_safetensors(path: str) -> tuple[dict, dict | None]:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as fh:
            metadata = fh.metadata()
        return load_file(path), metadata
    except FileNotFoundError:
        raise CheckpointError(path, "checkpoint file not found", "check the --checkpoint path") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"not a readable safetensors file ({exc})",
                              "re-export it; a .pth from the reference code needs `bake-seq convert`") from None


def load_state(model: torch.nn.Module, state: dict, path: str, label: str = "BakeNet",
               check_only: bool = False) -> None:
    """load_state_dict with an error a person can act on instead of a wall of keys
    (``check_only``: compare names and shapes, load nothing: for a model on the meta device)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{label}: {', '.join(items[:3])}{more}")
        raise CheckpointError(path, f"weights do not match the {label} layout its metadata names: "
                              + "; ".join(parts),
                              "the file is damaged or was written for another preset/version")
    if not check_only:
        model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    path = str(path)
    model, meta, config = read_checkpoint(path, "bakenet", "use a checkpoint written by bake-seq "
                                          "(bake-seq train / bake-seq convert)")
    info = CheckpointInfo(preset=meta.get("preset", "custom"), config=config, weights=meta.get("weights", "ema"),
                          training=meta.get("training", {}), format_version=int(meta["format_version"]))
    return LoadedCheckpoint(model=model, info=info, path=path, sha256=file_sha256(path))


REFERENCE_KEYS = ("ema_shadow", "model_state_dict", "state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def import_reference(src: str | os.PathLike, preset: str = "v5") -> tuple[BakeNet, CheckpointInfo, list[str]]:
    """A reference-layout .pth -> (model, info, notes). EMA weights are preferred.

    Tensors are matched by name (after removing DataParallel/compile prefixes); when the names
    differ but the sequence of shapes is identical to ours, they are matched by position and
    a note says so.
    """
    src = str(src)
    fix = "pass the reference training checkpoint (.pth holding ema_shadow or model_state_dict)"
    try:
        blob = torch.load(src, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(src, "file not found", fix) from None
    except Exception as exc:  # pickle refuses code objects here: that is the point
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(src, f"refused to load: not a plain tensor checkpoint ({first[:160]})",
                              "bake-seq never unpickles code; export the state dict with tensors only") from None
    notes: list[str] = []
    state = None
    if isinstance(blob, dict):
        for key in REFERENCE_KEYS:
            if isinstance(blob.get(key), dict):
                state, notes = blob[key], [f"weights taken from '{key}'"]
                break
        if state is None and blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
            state, notes = blob, ["file is a bare state dict"]
    if state is None:
        raise CheckpointError(src, "no ema_shadow / model_state_dict found", fix)
    state = {_strip_prefixes(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    model = BakeNet(PRESETS[preset])
    own = model.state_dict()
    if set(state) != set(own):
        theirs = list(state.values())
        if [tuple(t.shape) for t in theirs] == [tuple(t.shape) for t in own.values()]:
            state = dict(zip(own.keys(), theirs))
            notes.append("names differ from bake-seq's; matched by position (shapes identical)")
    load_state(model, {k: v.float() for k, v in state.items()}, src)
    weights = "ema" if notes and "ema_shadow" in notes[0] else "raw"
    info = CheckpointInfo(preset=preset, config=PRESETS[preset], weights=weights,
                          training={"imported_from": os.path.basename(src)})
    return model, info, notes
