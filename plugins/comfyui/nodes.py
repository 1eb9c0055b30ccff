"""The bake-seq ComfyUI nodes.

ComfyUI's IMAGE is float32 [B, H, W, C], sRGB-encoded, nominally 0..1: exactly the node
contract's working space (sRGB Encoded Rec.709), so operator nodes hand frames to the operator
as they are. Plate nodes convert between a plate's colour space and that working space with
OCIO, as `bake-seq render` does; values outside [0, 1] (scene-linear highlights) are kept.
MASK follows ComfyUI's LoadImage: 1 - alpha. Operators that take a mask (``accepts_mask``, e.g.
colorize's damage mask) get an optional MASK input named ``mask_input`` (an operator may have a
knob called ``mask``), handed to the operator frame by frame; it wins over any mask knob.

One node per registered operator is generated from its knobs; nothing here names an operator.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
import torch

from bake_node.errors import UnsafeOutputError
from bake_node.node import Operator, all_operators
from bake_node.render import BIT_DEPTHS, NAN_POLICIES, RenderRequest, load_frame, plan_render, refuse_replacing
from bake_seq.ocio.config import WORKING_SPACE, resolve_colorspace, resolve_config
from bake_seq.ocio.convert import convert
from bake_seq.sequences.errors import PlateError
from bake_seq.sequences.metadata import resized_metadata
from bake_seq.sequences.pattern import FramePattern, parse_frames
from bake_seq.sequences.plate import read_header, write_plate

from .host import CATEGORY, each_frame, folder, in_node_words, knob_input, knob_words, resolve

LOAD_WORDS = {"unknown --input-colorspace": "unknown colour space in the colorspace input",
              "--input-colorspace": "the colorspace input", "--frames": "the frames input",
              "--skip-missing": "skip_missing", "--bit-depth": "the bit_depth input", "--ocio": "the ocio input",
              "--nan-policy zero": "nan_policy zero", "--nan-policy": "the nan_policy input"}

COMPARE_MODES = ("split", "side_by_side")
MASK_INPUT = "mask_input"  # the optional MASK input of operators that accept a mask


def before_after(before: torch.Tensor, after: torch.Tensor, mode: str = "split") -> torch.Tensor:
    """A review image: left half before / right half after with a 1-px white line, or the two
    frames side by side."""
    before, after = before[..., :3], after[..., :3]
    if before.shape != after.shape:
        raise ValueError(f"before {tuple(before.shape)} and after {tuple(after.shape)} differ in size")
    if mode == "side_by_side":
        return torch.cat([before, after], dim=2)
    out = after.clone()
    middle = out.shape[2] // 2
    out[:, :, :middle] = before[:, :, :middle]
    out[:, :, middle:middle + 1] = 1.0
    return out


class OperatorNode:
    """Base of the generated operator nodes: IMAGE -> IMAGE (+ a before/after review image)."""

    operator: type[Operator]
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("image", "before_after")
    FUNCTION = "run"
    CATEGORY = CATEGORY
    _prepared: tuple | None = None  # (settings key, prepared operator): the model stays loaded

    @classmethod
    def INPUT_TYPES(cls):
        knobs = {k.name: knob_input(k) for k in cls.operator.all_knobs()}
        first = ("INT", {"default": 1001, "min": -10**7, "max": 10**7,
                         "tooltip": "frame number of the first image (operators that vary per frame use it)"})
        optional = {"first_frame": first}
        if cls.operator.accepts_mask:
            optional[MASK_INPUT] = ("MASK", {"tooltip": "1 = masked (e.g. damaged pixels); one mask per image, "
                                                        "or one for the whole batch; wins over a mask knob"})
        return {"required": {"image": ("IMAGE",), **knobs}, "optional": optional}

    @classmethod
    def prepared(cls, settings: dict) -> Operator:
        key = tuple(sorted(settings.items()))
        if cls._prepared is None or cls._prepared[0] != key:
            cls._prepared = None  # let the old model go before loading the new one
            op = cls.operator()
            op.prepare(settings)
            cls._prepared = (key, op)
        return cls._prepared[1]

    def run(self, image, first_frame=1001, mask_input=None, **knobs):
        with in_node_words(self.operator.label, knob_words(self.operator.all_knobs())):
            return self._run(image, first_frame, mask_input, knobs)

    def _run(self, image, first_frame, mask_input, knobs):
        op = self.prepared(self.operator.settings_from(knobs))
        frame = lambda number: np.ascontiguousarray(image[number - first_frame, :, :, :3].cpu().numpy())  # noqa: E731
        if op.needs_shot:  # a batch is a shot: one correction estimated from all of it (--temporal)
            op.analyse([first_frame + i for i in range(image.shape[0])], frame)
        frames = ((first_frame + i, frame(first_frame + i)) for i in range(image.shape[0]))
        masks = None
        batch = None
        if mask_input is not None and op.accepts_mask:
            batch = per_image_masks(mask_input, image, f"{op.label}'s mask_input")
        if batch is not None:
            masks = lambda number: batch[number - first_frame]  # noqa: E731
        alphas = None
        if image.shape[-1] == 4:  # ComfyUI images with alpha: operators that use it get it per frame
            alphas = lambda number: np.ascontiguousarray(image[number - first_frame, :, :, 3].cpu().numpy())  # noqa: E731
        results = [result for _, result in op.process_frames(each_frame(frames, image.shape[0]), masks, alphas)]
        out = torch.from_numpy(np.stack(results)).to(torch.float32)
        if image.shape[-1] == 4:  # alpha passes through, resized with the frame by scaling operators
            alphas = [op.process_alpha(np.ascontiguousarray(image[i, :, :, 3].cpu().numpy()), first_frame + i)
                      for i in range(image.shape[0])]
            out = torch.cat([out, torch.from_numpy(np.stack(alphas)).to(torch.float32)[..., None]], dim=-1)
        before = image.cpu()
        if before.shape[1:3] != out.shape[1:3]:  # super-resolution: review at the output size
            before = torch.nn.functional.interpolate(before.movedim(-1, 1), size=tuple(out.shape[1:3]),
                                                     mode="nearest").movedim(1, -1)
        return out, before_after(before, out)


EMPTY_MASK = (64, 64)  # what ComfyUI's LoadImage returns for an image without alpha: all zeros


def per_image_masks(mask: torch.Tensor, image: torch.Tensor, where: str) -> np.ndarray | None:
    """ComfyUI MASK ([B, H, W], [H, W] or [1, H, W] for all) -> float32 [B, H, W] for ``image``,
    or None for "no mask". ComfyUI's conventions: the 64x64 all-zero placeholder means no mask;
    a mask of another size is resized to the image (bilinear, as ComfyUI's compositing nodes do).
    ``where`` names the node input in errors."""
    mask = mask.reshape(-1, *mask.shape[-2:]).cpu().to(torch.float32)
    size = tuple(image.shape[1:3])
    if tuple(mask.shape[-2:]) == EMPTY_MASK and size != EMPTY_MASK and not mask.any():
        return None
    if tuple(mask.shape[-2:]) != size:
        mask = torch.nn.functional.interpolate(mask[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    if mask.shape[0] == 1:
        mask = mask.expand(image.shape[0], -1, -1)
    if mask.shape[0] != image.shape[0]:
        raise ValueError(f"{where}: {mask.shape[0]} masks for {image.shape[0]} images — give one per image "
                         "or one for all")
    return np.ascontiguousarray(mask.clamp(0.0, 1.0).numpy())


def operator_node(op: type[Operator]) -> type:
    return type(f"BakeSeq{op.name.title().replace('_', '')}", (OperatorNode,),
                {"operator": op, "DESCRIPTION": op.label})


# Every plate frame Load Plate Sequence has read in this ComfyUI process: Save Plate Sequence
# never writes over one (the rule `bake-seq render` follows, in the same code).
LOADED_PLATES: set[str] = set()


class LoadPlateSequence:
    """A plate sequence -> IMAGE batch in frame-number order (+ MASK from alpha), converted from
    the plate's colour space to sRGB the way `bake-seq render` reads it (one bit depth, OCIO)."""

    RETURN_TYPES = ("IMAGE", "MASK", "INT", "STRING", "STRING")
    RETURN_NAMES = ("image", "mask", "first_frame", "colorspace", "plate")
    FUNCTION = "load"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls):
        text = lambda default, tip: ("STRING", {"default": default, "tooltip": tip})  # noqa: E731
        return {
            "required": {
                "pattern": text("", "plate frames, e.g. shot_010/plate.####.exr (relative: ComfyUI's input folder)"),
                "frames": text("", "e.g. 1001-1100 or 1001-1100x2; blank: every frame on disk"),
                "colorspace": text("", "plate colour space; blank: from metadata and format, as bake-seq render"),
            },
            "optional": {
                "bit_depth": (["auto", *map(str, BIT_DEPTHS)], {"default": "auto",
                              "tooltip": "code-value range of integer plates; auto: the first frame's header"}),
                "ocio": text("", "OCIO config file or ocio:// URI; blank: $OCIO, else the built-in studio config"),
                "skip_missing": ("BOOLEAN", {"default": False, "tooltip": "load the frames that exist instead of failing on gaps"}),
                "nan_policy": (list(NAN_POLICIES), {"default": "error"}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, pattern, **_):
        """Re-run when a frame file changes (ComfyUI caches on the inputs otherwise)."""
        try:
            plate = FramePattern.parse(resolve(pattern, "input"))
            stats = [os.stat(plate.path(n)) for n in plate.scan()]
        except (PlateError, OSError):
            stats = []
        if not stats:
            return float("nan")  # never equal to itself: always re-run (and show the error)
        return ";".join(f"{s.st_mtime_ns}:{s.st_size}" for s in stats)

    def load(self, pattern, frames="", colorspace="", bit_depth="auto", ocio="", skip_missing=False,
             nan_policy="error"):
        with in_node_words("Load Plate Sequence", LOAD_WORDS):
            return self._load(pattern, frames, colorspace, bit_depth, ocio, skip_missing, nan_policy)

    def _load(self, pattern, frames, colorspace, bit_depth, ocio, skip_missing, nan_policy):
        request = RenderRequest(
            input=resolve(pattern, "input"), frames=parse_frames(frames) if frames.strip() else None,
            skip_missing=skip_missing, bit_depth=None if bit_depth == "auto" else int(bit_depth),
            ocio=ocio.strip() or None, input_colorspace=colorspace.strip() or None, nan_policy=nan_policy)
        plan = plan_render(request)
        LOADED_PLATES.update(os.path.realpath(plan.pattern.path(n)) for n in plan.pattern.scan())
        loaded = [load_frame(plan, n) for n in each_frame(plan.frames, len(plan.frames))]
        sizes = {frame.rgb.shape for frame in loaded}
        if len(sizes) > 1:
            raise PlateError(request.input, f"frames differ in size ({', '.join(map(str, sorted(sizes)))})",
                             "a batch needs one size: load the frames of each size separately")
        image = torch.from_numpy(np.stack([f.rgb for f in loaded]))
        if all(f.alpha is None for f in loaded):  # ComfyUI's convention (LoadImage): the empty 64x64 mask
            mask = torch.zeros((len(loaded), *EMPTY_MASK), dtype=torch.float32)
        else:
            mask = torch.from_numpy(np.stack([1.0 - f.alpha if f.alpha is not None
                                              else np.zeros(f.rgb.shape[:2], np.float32) for f in loaded]))
        return image, mask.to(torch.float32), plan.frames[0], plan.input_colorspace.value, str(plan.pattern)


class SavePlateSequence:
    """IMAGE batch -> 16-bit frames (EXR half, PNG/TIFF/DPX 16) under a frame pattern, converted
    from sRGB to the given colour space; written atomically, tagged with colour space and frame."""

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("pattern",)
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE",),
                "pattern": ("STRING", {"default": "bake-seq/plate.####.exr",
                                       "tooltip": "output frames; relative: ComfyUI's output folder"}),
                "first_frame": ("INT", {"default": 1001, "min": -10**7, "max": 10**7}),
                "colorspace": ("STRING", {"default": WORKING_SPACE,
                                          "tooltip": "colour space to write (connect Load Plate Sequence's colorspace to round-trip)"}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "written as alpha = 1 - mask"}),
                "plate": ("STRING", {"default": "", "forceInput": True,
                                     "tooltip": "connect Load Plate Sequence's plate: each frame keeps the "
                                                "metadata (timecode, keycode, ...) of the plate frame of its number"}),
                "ocio": ("STRING", {"default": "", "tooltip": "OCIO config; blank: $OCIO, else the built-in studio config"}),
            },
        }

    def save(self, image, pattern, first_frame, colorspace, mask=None, ocio="", plate=""):
        config = resolve_config(ocio.strip() or None)[0]
        space = resolve_colorspace(config, colorspace.strip() or WORKING_SPACE, "colorspace")
        out = FramePattern.parse(resolve(pattern, "output"))
        targets = [out.path(first_frame + i) for i in range(image.shape[0])]
        inside_output_folder(out, pattern)
        refuse_replacing(targets, LOADED_PLATES, "Save Plate Sequence: choose another pattern")
        alpha = self._alpha(image, mask)
        for i in each_frame(range(image.shape[0]), image.shape[0]):
            rgb = convert(image[i, :, :, :3].cpu().numpy(), config, WORKING_SPACE, space)
            names = ["R", "G", "B"]
            if alpha is not None:
                rgb, names = np.concatenate([rgb, alpha[i][:, :, None]], axis=2), names + ["A"]
            write_plate(out.path(first_frame + i), rgb, channel_names=names,
                        metadata=plate_metadata(plate, first_frame + i, rgb.shape), colorspace=space,
                        frame=first_frame + i)
        return {"ui": {"text": [f"{image.shape[0]} frames -> {out}"]}, "result": (str(out),)}

    @staticmethod
    def _alpha(image, mask) -> np.ndarray | None:
        """Alpha to write: 1 - mask; none for ComfyUI's empty placeholder (an RGB plate stays RGB)."""
        batch = None if mask is None else per_image_masks(mask, image, "Save Plate Sequence's mask")
        if batch is None:
            return image[..., 3].cpu().numpy() if image.shape[-1] == 4 else None
        return 1.0 - batch


def plate_metadata(plate: str, number: int, shape: tuple) -> dict:
    """The metadata `bake-seq render` would carry for frame ``number`` of ``plate`` (timecode,
    keycode, descriptions...): none without a plate, or for a frame the plate does not have."""
    if not plate:
        return {}
    path = FramePattern.parse(plate).path(number)
    if not os.path.isfile(path):
        return {}
    header = read_header(path)
    if (header.height, header.width) != tuple(shape[:2]):  # a scaled result: sizes and windows change
        return resized_metadata(header.metadata, shape[1] / header.width, shape[0] / header.height)
    return header.metadata


def inside_output_folder(out: FramePattern, typed: str) -> None:
    """As ComfyUI's own Save Image: frames go inside ComfyUI's output folder (no absolute paths
    elsewhere, no ``..`` out of it). Without ComfyUI (tests, scripts) there is no such folder."""
    base = folder("output")
    if base is None:
        return
    where = os.path.realpath(out.directory or ".")
    root = os.path.realpath(base)
    if os.path.commonpath([where, root]) != root:
        raise UnsafeOutputError(typed, f"Save Plate Sequence writes inside ComfyUI's output folder ({base}) only",
                                "give a pattern relative to it, e.g. bake-seq/shot_010/####.exr; "
                                "use `bake-seq render` to write elsewhere")


class BeforeAfter:
    """Two IMAGE batches -> one review image (split at the middle, or side by side)."""

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "compare"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"before": ("IMAGE",), "after": ("IMAGE",),
                             "mode": (list(COMPARE_MODES), {"default": "split"})}}

    def compare(self, before, after, mode="split"):
        return (before_after(before.cpu(), after.cpu(), mode),)


class LearnFromKeyframes:
    """A plate batch + the artist's corrected frames -> a learned correction (`bake-seq learn` in a
    graph): its path goes to the Bake node's checkpoint input (or, op colorize, the Colorize node's
    colorize_checkpoint), which then renders every frame of the plate with it."""

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("checkpoint",)
    FUNCTION = "learn"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "plate": ("IMAGE", {"tooltip": "the plate frames (Load Plate Sequence)"}),
                "corrected": ("IMAGE", {"tooltip": "the corrected frames, one per key frame, in key_frames order"}),
                "key_frames": ("STRING", {"default": "1001", "tooltip": "frame numbers of the corrected images, "
                                                                        "e.g. 1001,1100"}),
                "first_frame": ("INT", {"default": 1001, "min": -10**7, "max": 10**7,
                                        "tooltip": "frame number of the plate's first image"}),
                "output": ("STRING", {"default": "bake-seq/shot.safetensors",
                                      "tooltip": "the learned model to write; relative: ComfyUI's output folder"}),
                "op": (["bake", "colorize"], {"default": "bake"}),
            },
            "optional": {
                "local": ("BOOLEAN", {"default": False, "tooltip": "also fine-tune the per-pixel BakeNet (minutes)"}),
                "steps": ("INT", {"default": 0, "min": 0, "max": 100000,
                                  "tooltip": "local / colorize training steps; 0 = bake-seq learn's default"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1}),
                "max_minutes": ("FLOAT", {"default": 10.0, "min": 0.0, "max": 1e4}),
            },
        }

    def learn(self, plate, corrected, key_frames, first_frame, output, op, local=False, steps=0, seed=0,
              max_minutes=10.0):
        from bake_node.commands.learn import learn_pairs
        from bake_seq.train.keyframes import KeyPair

        with in_node_words("Learn From Keyframes", {"--key": "key_frames", "-o": "output", "--local": "local"}):
            frames = parse_frames(key_frames)
            if len(frames) != corrected.shape[0]:
                raise ValueError(f"Learn From Keyframes: key_frames names {len(frames)} frames for "
                                 f"{corrected.shape[0]} corrected images — give one frame number per image")
            pairs = []
            for i, number in enumerate(frames):
                index = number - first_frame
                if not 0 <= index < plate.shape[0]:
                    raise PlateError(None, f"key frame {number} is not in the plate ({first_frame}-"
                                     f"{first_frame + plate.shape[0] - 1})", "check key_frames and first_frame")
                key = rgb_of(corrected, i)  # no file here: the record names the key by its pixels' hash
                pairs.append(KeyPair(number, rgb_of(plate, index), key, f"corrected image {i}",
                                     hashlib.sha256(key.tobytes()).hexdigest(), WORKING_SPACE))
            path = resolve(output, "output")
            if not path.lower().endswith(".safetensors"):
                raise ValueError("Learn From Keyframes: output must end in .safetensors")
            refuse_replacing([path], LOADED_PLATES, "Learn From Keyframes: choose another output")
            model, record, save = learn_pairs(sorted(pairs, key=lambda p: p.frame), op, seed=seed, local=local,
                                              steps=steps if steps and (local or op == "colorize") else None,
                                              max_minutes=max_minutes)
            record.update({"learned_by": "bake-seq ComfyUI Learn From Keyframes", "op": op, "seed": seed,
                           "max_minutes": max_minutes})
            save(path, model, record, overwrite=True)  # a graph queued again replaces its own result
        return {"ui": {"text": [f"learned from {len(pairs)} keys -> {path}"]}, "result": (path,)}


def rgb_of(batch: torch.Tensor, index: int) -> np.ndarray:
    return np.ascontiguousarray(batch[index, :, :, :3].cpu().numpy(), np.float32)


def mappings() -> tuple[dict, dict]:
    """ComfyUI's two registries: node id -> class, node id -> display name."""
    nodes = {"BakeSeqLoadPlateSequence": (LoadPlateSequence, "Load Plate Sequence"),
             "BakeSeqSavePlateSequence": (SavePlateSequence, "Save Plate Sequence"),
             "BakeSeqBeforeAfter": (BeforeAfter, "Before/After Compare"),
             "BakeSeqLearnFromKeyframes": (LearnFromKeyframes, "Learn From Keyframes")}
    for name, op in sorted(all_operators().items()):
        node = operator_node(op)
        nodes[node.__name__] = (node, op.label or name)
    return {k: cls for k, (cls, _) in nodes.items()}, {k: label for k, (_, label) in nodes.items()}


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings()
