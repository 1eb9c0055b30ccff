"""Running a fully-convolutional model over a frame of any size, tile by tile.

Each tile is cut from the frame with a halo of at least the model's receptive radius, so every
output pixel sees exactly the context it would see in a whole-frame pass (image borders stay
image borders): tile size changes results only by float rounding. fp32, deterministic kernels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .errors import DeviceError, SettingsError

MIN_TILE = 64
CPU_TILE_BUDGET = 768 << 20  # bytes of activations per tile on the CPU (a 4K render stays < 2 GiB)
BYTES_PER_PIXEL_PER_CHANNEL = 57  # measured peak for the fused model: ~1.7 KB/pixel at 30 channels


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
              halo: int, device: torch.device) -> torch.Tensor:
    """Apply ``fn`` (N,C,h,w -> N,C',h,w) to a CPU NCHW image; the result stays on the CPU.

    tile <= 0 means the whole frame in one pass. A CUDA out-of-memory halves the tile (down to
    MIN_TILE) and starts the frame again, so the result never mixes tile sizes.
    """
    _, _, height, width = image.shape
    while True:
        size = max(height, width) if tile <= 0 else tile
        try:
            return _run_grid(fn, image, TileGrid(height, width, size, halo), device)
        except torch.OutOfMemoryError:
            if device.type != "cuda" or size // 2 < MIN_TILE:
                raise DeviceError(None, f"out of memory on {device} even with {size}px tiles",
                                  "lower --tile, free GPU memory, or use --device cpu") from None
            torch.cuda.empty_cache()
            tile = size // 2


def _run_grid(fn, image: torch.Tensor, grid: TileGrid, device: torch.device) -> torch.Tensor:
    out = None
    for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in grid:
        crop = image[:, :, cy0:cy1, cx0:cx1].to(device)
        with torch.inference_mode():
            result = fn(crop)
        if out is None:
            # channels-last storage, so the caller's H x W x C view needs no copy
            out = torch.empty(image.shape[0], result.shape[1], grid.height, grid.width, dtype=result.dtype,
                              memory_format=torch.channels_last)
        out[:, :, y0:y1, x0:x1] = result[:, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0].cpu()
    return out
