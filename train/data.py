"""Training images: any format OpenImageIO reads, colour-managed into the model's sRGB space.

Images are decoded once (bit depth from each file's header or ``bit_depth``, colour space
guessed like `bake-seq render` does, or ``input_colorspace``), down-scaled with Lanczos as the
reference does, and kept in memory as float32 (3, H, W) sRGB in [0, 1]. Batches are random
crops with random flips; their randomness comes from a generator seeded by (seed, step), so a
resumed run draws exactly the crops an uninterrupted run would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import torch
import torch.nn.functional as F

from bake_node.errors import SettingsError
from bake_node.render import split_channels
from bake_seq.ocio.config import WORKING_SPACE, resolve_colorspace, resolve_config
from bake_seq.ocio.convert import convert
from bake_seq.ocio.guess import guess_colorspace
from bake_seq.sequences.errors import PlateError
from bake_seq.sequences.plate import read_plate


@dataclass
class Image:
    name: str
    pixels: torch.Tensor  # (3, H, W) float32 sRGB in [0, 1]


def image_extensions() -> set[str]:
    """Every extension OpenImageIO has a reader for (its 'extension_list': 'png:png;tiff:tif,tiff')."""
    found = set()
    for entry in oiio.get_string_attribute("extension_list").split(";"):
        found.update(entry.partition(":")[2].split(","))
    return {e for e in found if e and e not in ("null", "nul", "term")}


def find_images(folder: str) -> list[Path]:
    if not folder or not os.path.isdir(folder):
        raise SettingsError(folder, "image folder not found", "pass --data a folder of clean images")
    extensions = image_extensions()
    files = sorted(p for p in Path(folder).rglob("*")
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower().lstrip(".") in extensions)
    if not files:
        raise SettingsError(folder, "no images found", f"put images OpenImageIO reads there ({', '.join(sorted(extensions)[:8])} ...)")
    return files


def downscale_factor(long_side: int, setting: str | int = "auto") -> int:
    """The reference's rule: /2 below 3840 px, /3 from 3840, /6 from 7680 (long side)."""
    if setting != "auto":
        return int(setting)
    return 6 if long_side >= 7680 else 3 if long_side >= 3840 else 2


def resize_lanczos(rgb: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return rgb
    height, width = rgb.shape[:2]
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = oiio.ImageBufAlgo.resize(oiio.ImageBuf(np.ascontiguousarray(rgb)), filtername="lanczos3",
                                     roi=oiio.ROI(0, size[0], 0, size[1], 0, 1, 0, 3))
    if small.has_error:
        raise PlateError(None, f"resize failed ({small.geterror()})", "check the image")
    return small.get_pixels(oiio.FLOAT).reshape(size[1], size[0], 3)


def load_image(path: Path, config, input_colorspace: str | None = None, bit_depth: int | None = None,
               downscale: str | int = "auto") -> Image:
    plate = read_plate(str(path), bit_depth)
    rgb, _ = split_channels(plate.pixels, plate.header)  # alpha is not part of the colour
    if not np.isfinite(rgb).all():
        raise PlateError(str(path), "has NaN/Inf pixels", "fix or remove this training image")
    if input_colorspace:
        space = resolve_colorspace(config, input_colorspace, "input colour space")
    else:
        space, _ = guess_colorspace(config, str(path), plate.header.colorspace_tag,
                                    plate.header.is_float, path.suffix)
    rgb = convert(rgb, config, space, WORKING_SPACE)
    rgb = resize_lanczos(rgb, downscale_factor(max(rgb.shape[:2]), downscale))
    # Clip once here: the model's domain is [0, 1] (Lanczos rings, scene-linear highlights).
    pixels = torch.from_numpy(np.clip(rgb, 0.0, 1.0)).permute(2, 0, 1).contiguous()
    return Image(path.stem, pixels)


def load_folder(folder: str, ocio: str | None = None, input_colorspace: str | None = None,
                bit_depth: int | None = None, downscale: str | int = "auto") -> list[Image]:
    config, _, _ = resolve_config(ocio)
    return [load_image(p, config, input_colorspace, bit_depth, downscale) for p in find_images(folder)]


def with_smaller_copies(images: list[Image], factors) -> list[Image]:
    """The images plus a Lanczos copy of each further down-scaled by every factor (scale
    augmentation: the same photo seen at a smaller size, as a frame of another resolution shows it)."""
    out = list(images)
    for factor in factors or ():
        for image in images:
            small = resize_lanczos(np.ascontiguousarray(image.pixels.permute(1, 2, 0).numpy()), int(factor))
            out.append(Image(f"{image.name}@1/{factor}",
                             torch.from_numpy(np.clip(small, 0.0, 1.0)).permute(2, 0, 1).contiguous()))
    return out


def reflect_pad(image: torch.Tensor, size: int) -> torch.Tensor:
    """Pad (C, H, W) to at least size x size by mirroring; repeats for images under half the size."""
    while image.shape[1] < size or image.shape[2] < size:
        ph = min(max(size - image.shape[1], 0), image.shape[1] - 1)
        pw = min(max(size - image.shape[2], 0), image.shape[2] - 1)
        if ph == 0 and pw == 0:  # a 1-pixel line cannot be mirrored; repeat it
            return image.expand(-1, max(size, image.shape[1]), max(size, image.shape[2]))
        image = F.pad(image[None], (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect")[0]
    return image


def centre_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    if size <= 0:
        return image
    image = reflect_pad(image, size)
    top, left = (image.shape[1] - size) // 2, (image.shape[2] - size) // 2
    return image[:, top:top + size, left:left + size]


def random_crop(image: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    image = reflect_pad(image, size)
    top = int(torch.randint(image.shape[1] - size + 1, (1,), generator=gen))
    left = int(torch.randint(image.shape[2] - size + 1, (1,), generator=gen))
    return random_flips(image[:, top:top + size, left:left + size], gen)


def random_flips(crop: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Horizontal, then vertical flip of (C, H, W), each with probability 0.5 (spec section 5)."""
    flips = torch.rand(2, generator=gen) < 0.5
    if flips[0]:
        crop = crop.flip(2)
    if flips[1]:
        crop = crop.flip(1)
    return crop


def seeded(seed: int, step: int, stream: int, device="cpu") -> torch.Generator:
    """A generator for (seed, step, stream < 256): counter-based, so resuming needs only the step."""
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 2 ** 40 + step * 2 ** 8 + stream) % (2 ** 63))
    return gen


def epoch_order(n_images: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n_images, generator=seeded(seed, epoch, 255))


def sample_batch(images: list[Image], first_sample: int, count: int, size: int, seed: int,
                 step: int) -> torch.Tensor:
    """``count`` crops, continuing a stream of per-epoch shuffles at sample ``first_sample``.

    An epoch is one pass over the images, so every image is used once per epoch."""
    gen = seeded(seed, step, 0)
    n = len(images)
    crops = []
    for k in range(first_sample, first_sample + count):
        index = int(epoch_order(n, seed, k // n)[k % n])
        crops.append(random_crop(images[index].pixels, size, gen))
    return torch.stack(crops)
