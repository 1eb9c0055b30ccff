"""Running a fully-convolutional model over a frame of any size, tile by tile.

Each tile is cut from the frame with a halo of at least the model's receptive radius, so every
output pixel sees exactly the context it would see in a whole-frame pass (image borders stay
image borders): tile size changes results only by float rounding. fp32, deterministic kernels.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from .errors import DeviceError, SettingsError

MIN_TILE = 64
CPU_TILE_BUDGET = 768 << 20  # bytes of activations per tile on the CPU (a 4K render stays < 2 GiB)
BYTES_PER_PIXEL_PER_CHANNEL = 57  # measured peak for the fused model: ~1.7 KB/pixel at 30 channels

T = TypeVar("T")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingsError(None, "--device cuda asked for, but this machine has no usable CUDA GPU",
                            "use --device cpu or --device auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SettingsError(None, f"unknown device {name!r}", "use auto, cpu or cuda") from None


@contextmanager
def deterministic():
    """bake-seq's settings for its own work only: a host (ComfyUI) gets its own back afterwards
    (cudnn.benchmark and TF32 are its speed settings for every other node)."""
    backends = torch.backends
    saved = (backends.cudnn.benchmark, backends.cudnn.deterministic, backends.cuda.matmul.allow_tf32,
             backends.cudnn.allow_tf32)
    make_deterministic()
    try:
        yield
    finally:
        (backends.cudnn.benchmark, backends.cudnn.deterministic, backends.cuda.matmul.allow_tf32,
         backends.cudnn.allow_tf32) = saved


def deterministic_call(method):
    """Decorator for an operator's compute methods: run them under ``deterministic()``."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with deterministic():
            return method(*args, **kwargs)
    return wrapped


def make_deterministic() -> None:
    """Same inputs, same settings => bit-identical outputs (and true fp32 on Ampere+ GPUs)."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def auto_tile(height: int, width: int, halo: int, channels: int, device: torch.device) -> int:
    """The tile size for ``--tile 0``: the whole frame when its activations fit the memory budget,
    else the largest square tile (multiple of 32) whose haloed crop does."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = int(free * 0.6)
    else:
        budget = CPU_TILE_BUDGET
    max_pixels = budget // (BYTES_PER_PIXEL_PER_CHANNEL * channels)
    if height * width <= max_pixels:
        return 0
    side = int(max_pixels ** 0.5) - 2 * halo
    return max(MIN_TILE, side // 32 * 32)


@dataclass(frozen=True)
class TileGrid:
    height: int
    width: int
    tile: int
    halo: int

    def __iter__(self):
        """Yield (core, crop) boxes as (y0, y1, x0, x1); crops are clipped at the frame edge."""
        step = max(self.tile, 1)
        for y0 in range(0, self.height, step):
            for x0 in range(0, self.width, step):
                y1, x1 = min(y0 + step, self.height), min(x0 + step, self.width)
                crop = (max(0, y0 - self.halo), min(self.height, y1 + self.halo),
                        max(0, x0 - self.halo), min(self.width, x1 + self.halo))
                yield (y0, y1, x0, x1), crop


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int,
              halo: int, device: torch.device, on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Apply ``fn`` (N,C,h,w -> N,C',h,w) to a CPU NCHW image; the result stays on the CPU.

    tile <= 0 means the whole frame in one pass. A CUDA out-of-memory halves the tile (down to
    MIN_TILE) and starts the frame again, so the result never mixes tile sizes.
    ``on_tile(done, total)`` is called after each tile (progress within a frame).
    """
    _, _, height, width = image.shape
    return halving_on_oom(lambda size: _run_grid(fn, image, TileGrid(height, width, size, halo), device, on_tile),
                          tile, max(height, width), device)


def halving_on_oom(attempt: Callable[[int], T], tile: int, whole: int, device: torch.device,
                   floor: int = MIN_TILE, multiple_of: int = 1) -> T:
    """``attempt(tile size)``; a CUDA out-of-memory halves the tile (rounded down to
    ``multiple_of``, not below ``floor``) and starts again. tile <= 0 starts from ``whole``."""
    while True:
        size = whole if tile <= 0 else tile
        try:
            return attempt(size)
        except torch.OutOfMemoryError:
            smaller = size // 2 // multiple_of * multiple_of
            if device.type != "cuda" or smaller < floor:
                raise DeviceError(None, f"out of memory on {device} even with {size}px tiles",
                                  "lower --tile, free GPU memory, or use --device cpu") from None
            torch.cuda.empty_cache()
            tile = smaller


def _run_grid(fn, image: torch.Tensor, grid: TileGrid, device: torch.device, on_tile=None) -> torch.Tensor:
    out = None
    tiles = list(grid)
    for done, ((y0, y1, x0, x1), (cy0, cy1, cx0, cx1)) in enumerate(tiles, 1):
        crop = image[:, :, cy0:cy1, cx0:cx1].to(device)
        with torch.inference_mode():
            result = fn(crop)
        if out is None:
            # channels-last storage, so the caller's H x W x C view needs no copy
            out = torch.empty(image.shape[0], result.shape[1], grid.height, grid.width, dtype=result.dtype,
                              memory_format=torch.channels_last)
        out[:, :, y0:y1, x0:x1] = result[:, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0].cpu()
        if on_tile is not None:
            on_tile(done, len(tiles))
    return out


# Blended tiling, for models whose receptive field is unknown or global (transformers, GANs,
# face models): overlapping tiles whose outputs are averaged with a smooth window. Unlike
# run_tiled this is exact only while one tile covers the frame; see docs/zoo.md.


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of ``tile`` px covering ``length`` px, neighbours overlapping by at
    least ``overlap``. The last tile ends at the frame edge, so every tile is full size
    (fixed-size and multiple-of models need that)."""
    if tile >= length:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def blend_window(start: int, size: int, length: int, overlap: int, scale: int) -> torch.Tensor:
    """Per-pixel weights (output scale) of one tile along one axis. Zero within a quarter of the
    overlap of an interior tile edge (context there is cut off, so those pixels are wrong for any
    model that looks further than one pixel), then a raised cosine up to 1 at overlap - quarter.
    Frame edges are real edges: full weight."""
    guard, ramp = overlap // 4 * scale, (overlap - 2 * (overlap // 4)) * scale
    d = torch.arange(size * scale, dtype=torch.float64)
    inner = torch.full_like(d, float("inf"))
    if start > 0:
        inner = torch.minimum(inner, d)
    if start + size < length:
        inner = torch.minimum(inner, size * scale - 1 - d)
    if ramp <= 0:
        return torch.ones_like(d, dtype=torch.float32)
    t = ((inner - guard + 0.5) / ramp).clamp(0.0, 1.0)
    return (0.5 - 0.5 * torch.cos(torch.pi * t)).to(torch.float32)


def run_blended(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int, overlap: int,
                scale: int, device: torch.device, align: int = 1, fixed: int = 0) -> torch.Tensor:
    """Apply ``fn`` (N,C,h,w -> N,C',h*scale,w*scale) to a CPU NCHW image in overlapping tiles.

    tile <= 0: the whole frame in one pass (exactly ``fn(image)`` when ``align`` is 1).
    ``align`` > 1 (a size multiple, or a transformer's attention window): the frame is padded
    (reflect) at the right and bottom to a multiple of it and tiles start on multiples of it, so
    every tile sees the same window grid as a whole-frame pass; the padding is cropped off.
    ``fixed`` > 0 forces tiles of exactly that size (models with one input size, e.g. 512 px
    face models; smaller frames go in whole and ``fn`` pads them). A CUDA out-of-memory halves
    the tile and starts the frame again, as in run_tiled.
    """
    _, _, height, width = image.shape
    if fixed:
        return halving_on_oom(lambda size: _run_blended(fn, image, size, overlap, scale, device, 1),
                              fixed, fixed, device, floor=fixed)
    padded = pad_to_multiple(image, align)
    tile = max(tile // align, 1) * align if tile > 0 else tile
    overlap = -(-overlap // align) * align
    out = halving_on_oom(lambda size: _run_blended(fn, padded, size, overlap, scale, device, align),
                         tile, max(padded.shape[2:]), device, floor=max(MIN_TILE, align), multiple_of=align)
    return out[:, :, :height * scale, :width * scale]


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad right and bottom to a multiple of ``multiple``."""
    return pad_right_bottom(image, -image.shape[2] % multiple, -image.shape[3] % multiple)


def pad_right_bottom(image: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad the right and bottom edges (replicate where reflect runs out of image)."""
    if not (pad_h or pad_w):
        return image
    height, width = image.shape[2:]
    reflect_h, reflect_w = min(pad_h, height - 1), min(pad_w, width - 1)
    image = torch.nn.functional.pad(image, (0, reflect_w, 0, reflect_h), "reflect")
    return torch.nn.functional.pad(image, (0, pad_w - reflect_w, 0, pad_h - reflect_h), "replicate")


def _run_blended(fn, image: torch.Tensor, tile: int, overlap: int, scale: int, device, align: int):
    _, _, height, width = image.shape
    overlap = min(overlap, tile // 2 // align * align)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    if len(ys) == len(xs) == 1:  # one tile: no blending, bit-identical to an untiled pass
        with torch.inference_mode():
            return fn(image.to(device)).float().cpu()
    h, w = min(tile, height), min(tile, width)
    columns = [blend_window(x, w, width, overlap, scale) for x in xs]  # the same for every row
    out = weight = None
    for y in ys:
        wy = blend_window(y, h, height, overlap, scale)
        for x, wx in zip(xs, columns):
            with torch.inference_mode():
                result = fn(image[:, :, y:y + h, x:x + w].to(device)).float().cpu()
            if out is None:
                out = torch.zeros(image.shape[0], result.shape[1], height * scale, width * scale)
                weight = torch.zeros(height * scale, width * scale)
            window = wy[:, None] * wx[None, :]
            rows, cols = slice(y * scale, (y + h) * scale), slice(x * scale, (x + w) * scale)
            out[:, :, rows, cols] += result * window
            weight[rows, cols] += window
    return out / weight
