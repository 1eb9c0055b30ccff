"""`bake-seq bench`: speed and memory of the render path, as ratios measured in one run.

Every number compares two things timed on this machine in this run (so a loaded or slow
machine moves both sides): our render path against plain eager NCHW fp32, our non-model
pipeline against the bundled `oiiotool`, wall time against inference time.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from bake_seq.ocio.config import resolve_config
from bake_seq.sequences.plate import write_plate

from .node import Operator, get_operator
from .palette import restore_srgb
from .render import RenderRequest, load_frame, plan_render, render

PLATE_SPACE = "ACEScg"
DPX_SPACE = "ADX10"  # what an untagged DPX is read as (ocio/guess.py)
GIB = 1 << 30


class PassThrough(Operator):
    """No model: what is left of a render is our pipeline's own cost."""

    name = "passthrough"

    def fingerprint(self) -> dict:
        return {"op": self.name}

    def process(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        return rgb.copy()


def synthetic_plate(folder: str, frames: int, width: int, height: int, seed: int = 7) -> str:
    """Scene-linear ACEScg EXR frames with smooth colour, texture, noise and a few highlights."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for n in range(1, frames + 1):
        phase = n * 0.37
        base = np.stack([0.18 + 0.15 * np.sin(x / 97 + phase), 0.18 + 0.12 * np.cos(y / 61 - phase),
                         0.12 + 0.1 * np.sin((x + y) / 143)], axis=2)
        pixels = base * (1 + 0.1 * rng.standard_normal(base.shape, dtype=np.float32))
        pixels[::97, ::89] = 6.0  # speculars above the model's [0,1] domain
        write_plate(os.path.join(folder, f"plate.{n:04d}.exr"), pixels.astype(np.float32),
                    channel_names=["R", "G", "B"], metadata={}, colorspace=PLATE_SPACE)
    return os.path.join(folder, "plate.####.exr")


def dpx_plate(folder: str, frames: int, width: int, height: int) -> str:
    """10-bit DPX scans (the usual 2K film plate) made from the synthetic EXR frames' texture."""
    import OpenImageIO as oiio

    exr = synthetic_plate(folder, frames, width, height, seed=5)
    for n in range(1, frames + 1):
        source = oiio.ImageBuf(exr.replace("####", f"{n:04d}"))
        codes = np.rint(np.clip(source.get_pixels(oiio.FLOAT) ** (1 / 2.2), 0, 1) * 1023) * (65535 / 1023)
        spec = oiio.ImageSpec(width, height, 3, oiio.UINT16)
        spec.attribute("oiio:BitsPerSample", 10)
        path = os.path.join(folder, f"scan.{n:04d}.dpx")
        out = oiio.ImageOutput.create(path)
        if not (out and out.open(path, spec) and out.write_image(np.ascontiguousarray(codes.astype(np.uint16)))
                and out.close()):
            raise RuntimeError(f"cannot write {path}: {oiio.geterror()}")
    return os.path.join(folder, "scan.####.dpx")


def timed(fn, *args, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    seconds, _ = timed(lambda: torch.mm(a, b), repeat=repeat)
    return 2 * n ** 3 / seconds / 1e9


def eager_restore(model, rgb: np.ndarray) -> np.ndarray:
    """The reference's way: whole frame, plain NCHW eager model, fp32."""
    image = torch.from_numpy(np.clip(rgb, 0, 1)).permute(2, 0, 1).unsqueeze(0)
    with torch.inference_mode():
        return restore_srgb(model, image)[0].permute(1, 2, 0).numpy()


def oiiotool_seconds(plate: str, frames: int, out_folder: str, config_source: str, space: str = PLATE_SPACE) -> float:
    """oiiotool doing our non-model work: read, plate -> working -> plate colour, 16-bit write."""
    exe = shutil.which("oiiotool", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        raise RuntimeError("oiiotool not found next to this Python (it ships with the OpenImageIO wheel)")
    working = "sRGB Encoded Rec.709 (sRGB)"
    cmd = [exe, "--colorconfig", config_source, "--frames", f"1-{frames}", plate.replace("####", "%04d"),
           "--colorconvert", space, working, "--colorconvert", working, space,
           "-d", "half", "-o", os.path.join(out_folder, "oiio.%04d.exr")]
    seconds, done = timed(lambda: subprocess.run(cmd, capture_output=True, text=True))
    if done.returncode != 0:
        raise RuntimeError(f"oiiotool failed: {done.stderr.strip()[:300]}")
    return seconds


def peak_rss_gib(checkpoint: str | None, folder: str, width: int, height: int) -> float:
    """Peak resident memory of a real `bake-seq render` of one frame, in a fresh process.

    Read from /proc/<pid>/status VmHWM while it runs: the kernel's ru_maxrss of a child also
    counts the parent's image it was forked from (kept across exec), which made a big bench
    process report its own size as the render's."""
    plate = synthetic_plate(folder, 1, width, height, seed=11)
    cmd = [sys.executable, "-m", "bake_node", "render", plate, "-i", PLATE_SPACE, "-q",
           "-o", os.path.join(folder, "out", "rss.####.exr"), "--overwrite"]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kib = 0
    while proc.poll() is None:
        peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
        time.sleep(0.02)
    if proc.returncode != 0:
        raise RuntimeError(f"4K render failed: {proc.stderr.read().decode()[-300:]}")
    return peak_kib * 1024 / GIB


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # the process just ended
        pass
    return 0


def run_bench(checkpoint: str | None = None, frames: int = 3, width: int = 2048, height: int = 1080,
              rss_size: tuple[int, int] | None = (4096, 2160), device: str = "auto",
              progress=lambda text: None) -> dict:
    work = tempfile.mkdtemp(prefix="bake-bench-")
    try:
        return _bench(work, checkpoint, frames, width, height, rss_size, device, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(work, checkpoint, frames, width, height, rss_size, device, progress) -> dict:
    plate = synthetic_plate(work, frames, width, height)
    op = get_operator("bake")
    op.prepare({"checkpoint": checkpoint, "device": device, "temporal": "frame"})  # one frame, timed alone
    config = op.checkpoint.info.config
    megapixels = width * height / 1e6
    plan = plan_render(RenderRequest(input=plate, output=os.path.join(work, "out", "b.####.exr"),
                                     input_colorspace=PLATE_SPACE, overwrite=True))
    rgb = load_frame(plan, plan.frames[0]).rgb
    op.process(rgb[:64, :64], 0)  # warm-up: oneDNN primitive creation

    progress("inference (render path)")
    infer_s, ours = timed(op.process, rgb, 1, repeat=2)
    progress("inference (eager baseline)")
    eager_s, eager = timed(eager_restore, op.checkpoint.model.to(op.device), rgb)
    inside = (rgb >= 0).all(axis=2) & (rgb <= 1).all(axis=2)
    code_diff = int(np.abs(np.rint(ours[inside] * 65535) - np.rint(eager[inside] * 65535)).max()) if inside.any() else 0
    progress("matmul")
    gflops_peak = matmul_gflops()

    progress(f"render {frames} frames")
    timings = render(plan, op, plan.frames)
    progress("render without the model, and oiiotool")
    bare = plan_render(RenderRequest(input=plate, output=os.path.join(work, "bare", "b.####.exr"),
                                     input_colorspace=PLATE_SPACE, overwrite=True))
    bare_timings = render(bare, PassThrough(), bare.frames)
    os.makedirs(os.path.join(work, "oiio"), exist_ok=True)
    _, source, _ = resolve_config(None)
    oiio_s = oiiotool_seconds(plate, frames, os.path.join(work, "oiio"), source)

    result = {
        "device": str(op.device), "threads": torch.get_num_threads(), "preset": op.checkpoint.info.preset,
        "frame_size": f"{width}x{height}", "frames": frames,
        "architecture": "global" if op.is_global else "convolutional",
        "macs_per_pixel": getattr(config, "macs_per_pixel", None),
        "infer_s_per_frame": infer_s,
        "infer_s_per_mp": infer_s / megapixels,
        "eager_nchw_s_per_mp": eager_s / megapixels,
        "infer_over_eager": infer_s / eager_s,
        "max_code_diff_vs_eager_16bit": code_diff,
        "achieved_gflops": (2 * config.macs_per_pixel * width * height / infer_s / 1e9
                            if hasattr(config, "macs_per_pixel") else None),
        "matmul_fp32_gflops": gflops_peak,
        "stages_s_per_frame": {k: timings.get(f"{k}_s", 0.0) / frames
                               for k in ("read", "colour_in", "inference", "colour_out", "write")},
        "render_wall_s_per_frame": timings["wall_s"] / frames,
        # Pipelining hides reads, colour and writes behind inference: compare the render's wall
        # time with its own inference time (same run, same machine load).
        "wall_over_infer": timings["wall_s"] / timings["inference_s"],
        "wall_over_standalone_infer": timings["wall_s"] / frames / infer_s,
        "pipeline_s_per_frame": bare_timings["wall_s"] / frames,
        "oiiotool_s_per_frame": oiio_s / frames,
        "overhead_vs_oiiotool": bare_timings["wall_s"] / oiio_s,
    }
    progress(f"render {frames} 10-bit DPX frames to EXR, and oiiotool doing the same without a model")
    os.makedirs(os.path.join(work, "dpx"), exist_ok=True)
    scans = dpx_plate(os.path.join(work, "dpx"), frames, width, height)
    dpx = plan_render(RenderRequest(input=scans, output=os.path.join(work, "dpx_out", "s.####.exr"),
                                    input_colorspace=DPX_SPACE, overwrite=True))
    dpx_timings = render(dpx, op, dpx.frames)
    os.makedirs(os.path.join(work, "dpx_oiio"), exist_ok=True)
    oiio_dpx_s = oiiotool_seconds(scans, frames, os.path.join(work, "dpx_oiio"), source, DPX_SPACE)
    result.update({"dpx_render_s_per_frame": dpx_timings["wall_s"] / frames,
                   "dpx_oiiotool_s_per_frame": oiio_dpx_s / frames,
                   "dpx_render_over_oiiotool": dpx_timings["wall_s"] / oiio_dpx_s})
    progress("temporal analysis (the plate's own colour change: --follow, --op deflicker)")
    result.update(temporal_cost(rgb, max(frames, 4)))
    result["temporal_over_oiiotool"] = result["temporal_analysis_s_per_frame"] / result["oiiotool_s_per_frame"]
    if rss_size:
        progress(f"peak memory of a {rss_size[0]}x{rss_size[1]} render")
        result["peak_rss_4k_gib"] = peak_rss_gib(checkpoint, os.path.join(work, "rss"), *rss_size)
        result["rss_frame_size"] = f"{rss_size[0]}x{rss_size[1]}"
    return result


def temporal_cost(rgb: np.ndarray, frames: int) -> dict:
    """Seconds per frame of bake_node/temporal.py's analysis (thumbnail + measuring against the
    previous frame and the anchor) on a pan made from one frame (shifted 3 px a frame, its
    exposure changing), frames already in memory: the analysis alone, as render adds it."""
    from . import temporal

    shot = [np.roll(rgb, (n * 2, n * 3), axis=(0, 1)) * np.float32(1.0 - 0.02 * n) for n in range(frames)]
    start = time.perf_counter()
    temporal.analyse_frames(range(frames), shot.__getitem__)
    seconds = (time.perf_counter() - start) / frames
    return {"temporal_analysis_s_per_frame": seconds}


TARGETS = {  # key: (limit, meaning), per architecture
    "convolutional": {
        "infer_over_eager": (0.6, "render-path inference / eager NCHW"),
        "overhead_vs_oiiotool": (1.5, "our non-model time / oiiotool"),
        "wall_over_infer": (1.1, "render wall / inference"),
        "temporal_analysis_s_per_frame": (0.1, "plate colour-change analysis per frame (issue 31), s"),
        "peak_rss_4k_gib": (2.0, "peak RSS of a 4096x2160 render, GiB"),
    },
    # One grade per frame: the model is cheap, so the targets are the whole render against
    # oiiotool doing the same I/O and colour conversions, and model time per 2K frame.
    "global": {
        "infer_s_per_frame": (1.0, "model time per frame (render path), s"),
        "dpx_render_over_oiiotool": (2.0, "10-bit DPX -> EXR render / oiiotool doing the same without a model"),
        "overhead_vs_oiiotool": (1.5, "our non-model time / oiiotool"),
        "temporal_analysis_s_per_frame": (0.1, "plate colour-change analysis per frame (issue 31), s"),
        "peak_rss_4k_gib": (2.0, "peak RSS of a 4096x2160 render, GiB"),
    },
}


def format_table(result: dict) -> str:
    rows = [("device", result["device"]), ("threads", result["threads"]), ("preset", result["preset"]),
            ("frame size", result["frame_size"])]
    for key in ("infer_s_per_frame", "infer_s_per_mp", "eager_nchw_s_per_mp", "achieved_gflops",
                "matmul_fp32_gflops", "max_code_diff_vs_eager_16bit", "render_wall_s_per_frame",
                "pipeline_s_per_frame", "oiiotool_s_per_frame", "dpx_render_s_per_frame", "dpx_oiiotool_s_per_frame",
                "temporal_over_oiiotool"):
        if result.get(key) is not None:
            rows.append((key, result[key]))
    for stage, seconds in result["stages_s_per_frame"].items():
        rows.append((f"stage {stage} s/frame", seconds))
    for key, (limit, meaning) in TARGETS[result.get("architecture", "convolutional")].items():
        if key in result:
            verdict = "ok" if result[key] <= limit else "MISSED"
            rows.append((key, f"{result[key]:.3f}  (target <= {limit}: {verdict}; {meaning})"))
    width = max(len(str(k)) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in rows)
