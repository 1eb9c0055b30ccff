"""From a plate sequence to written frames: plan once, then read -> colour -> process -> write.

``plan_render`` makes every decision up front (frames, ONE bit depth, colour spaces, output
paths, what counts as already done) so `bake-seq info` can show it and a run can refuse bad
settings before touching a frame. ``render`` overlaps reading the next frame and writing the
previous one with processing the current one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from bake_seq.ocio.config import WORKING_SPACE, resolve_colorspace, resolve_config, short_name
from bake_seq.ocio.convert import convert
from bake_seq.ocio.guess import guess_with_evidence
from bake_seq.sequences.errors import PlateError
from bake_seq.sequences.manifest import (RECORD_DIR, claim_frame, file_identity, frame_state, lock_lease_s,
                                         read_record, release_frame, write_record)
from bake_seq.sequences.metadata import resized_metadata
from bake_seq.sequences.pattern import FramePattern, format_frame_ranges, resolve_frames
from bake_seq.sequences.plate import COLOURSPACE_NOTE, DPX_TEXT, Header, check_size, read_header, read_plate, write_plate

from . import __version__
from .errors import FramesLeftError, SettingsError, UnsafeOutputError
from .contract import Operator

BIT_DEPTHS = (8, 10, 12, 14, 16)
NAN_POLICIES = ("error", "zero")
OUTPUT_EXTENSIONS = ("exr", "dpx", "png", "tif", "tiff")
PADDING_TOKENS = ("#", "@", "%", "$F")


@dataclass
class RenderRequest:
    """What the user asked for (CLI options, host knobs)."""

    input: str
    output: str | None = None
    frames: list[int] | None = None
    skip_missing: bool = False
    bit_depth: int | None = None
    ocio: str | None = None
    input_colorspace: str | None = None
    output_colorspace: str | None = None
    overwrite: bool = False
    nan_policy: str = "error"


@dataclass
class Decision:
    value: object
    reason: str
    guessed: bool = False  # decided by a convention of the file type, not by the file or the user


@dataclass
class RenderPlan:
    request: RenderRequest
    pattern: FramePattern
    output: FramePattern
    frames: list[int]
    missing: list[int]
    first: Header
    bit_depth: Decision
    config: object
    config_source: Decision
    input_colorspace: Decision
    output_colorspace: Decision
    skip: set[int] = field(default_factory=set)

    @cached_property
    def config_id(self) -> str:
        """The OCIO config by content, not by path: farm nodes that mount it under other names
        (--path-map, $OCIO per platform) make the same frames. LUT files it names are not hashed."""
        return "sha256:" + hashlib.sha256(self.config.serialize().encode()).hexdigest()[:16]

    @cached_property
    def output_label(self) -> str:
        """The output space as DPX's 31-character description can state it whole."""
        return short_name(self.config, self.output_colorspace.value, DPX_TEXT - len(COLOURSPACE_NOTE))

    def settings_record(self) -> dict:
        """The settings that decide output pixels (besides the operator's own)."""
        return {
            "bit_depth": self.bit_depth.value,
            "ocio_config": self.config_id,
            "input_colorspace": self.input_colorspace.value,
            "output_colorspace": self.output_colorspace.value,
            "nan_policy": self.request.nan_policy,
            "output_format": self.output.extension,
            "bake_seq": ".".join(__version__.split(".")[:2]),
        }


def fingerprint_of(plan: RenderPlan, op: Operator) -> str:
    blob = json.dumps({"settings": plan.settings_record(), "op": op.fingerprint()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def has_padding_token(text: str) -> bool:
    return any(tok in os.path.basename(text) for tok in PADDING_TOKENS)


def default_output(pattern: FramePattern) -> FramePattern:
    """A sibling folder named after the plate folder: shot_010/####.dpx -> shot_010_bake/####.dpx."""
    folder = os.path.realpath(pattern.directory or ".")
    out = pattern.with_directory(folder + "_bake")
    return out.with_extension("png") if out.extension not in OUTPUT_EXTENSIONS else out


def output_pattern(request: RenderRequest, pattern: FramePattern) -> FramePattern:
    text = request.output
    if not text:
        return default_output(pattern)
    if text.endswith(os.sep) or os.path.isdir(text) or not has_padding_token(text):
        if os.path.splitext(text)[1].lower().lstrip(".") in OUTPUT_EXTENSIONS and not os.path.isdir(text):
            raise SettingsError(None, f"-o {text} names a single file",
                                "write the frame number into it, e.g. out/shot.####.exr, or give a folder")
        out = pattern.with_directory(text.rstrip(os.sep) or os.sep)
        return out.with_extension("png") if out.extension not in OUTPUT_EXTENSIONS else out
    out = FramePattern.parse(text)
    if out.extension not in OUTPUT_EXTENSIONS:
        raise SettingsError(None, f"cannot write 16-bit .{out.extension} frames",
                            "use an output pattern ending in .exr, .dpx, .png or .tif")
    return out


def decide_bit_depth(request: RenderRequest, first: Header) -> Decision:
    if first.is_float:
        note = " (--bit-depth ignored: float data has no code range)" if request.bit_depth else ""
        return Decision(None, f"{first.pixel_type} data is used as stored{note}")
    if request.bit_depth:
        return Decision(request.bit_depth, f"--bit-depth {request.bit_depth} "
                        f"(first frame header says {first.bits_per_sample}-bit)")
    return Decision(first.bits_per_sample,
                    f"first frame header: {first.bits_per_sample} bits per sample ({first.pixel_type})")


def refuse_undecodable(path: str | None, what: str) -> None:
    """A path holding bytes that are not UTF-8 (read from the command line as surrogates) cannot
    reach OpenImageIO or OCIO: one line now, not a TypeError after the first frame."""
    if path and not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise SettingsError(None, f"{what} {path.encode('utf-8', 'backslashreplace').decode()} is not valid "
                                "UTF-8", "rename the file or folder (bake-seq reads UTF-8 paths)") from None


def plan_render(request: RenderRequest) -> RenderPlan:
    if request.bit_depth is not None and request.bit_depth not in BIT_DEPTHS:
        raise SettingsError(None, f"--bit-depth {request.bit_depth} is not supported", "use 8, 10, 12, 14 or 16")
    if request.nan_policy not in NAN_POLICIES:
        raise SettingsError(None, f"unknown NaN policy {request.nan_policy!r}", "use error or zero")
    for path, what in ((request.input, "the plate path"), (request.output, "the output path"), (request.ocio, "--ocio")):
        refuse_undecodable(path, what)
    pattern = FramePattern.parse(request.input)
    frames, missing = resolve_frames(pattern, request.frames, request.skip_missing)
    if not frames:
        raise PlateError(request.input, "none of the requested frames exist", "check --frames and the pattern")
    first = read_header(pattern.path(frames[0]))
    check_size(first)
    config, source, why = resolve_config(request.ocio)
    if request.input_colorspace:
        cs_in = Decision(resolve_colorspace(config, request.input_colorspace, "--input-colorspace"),
                         "--input-colorspace")
    else:
        name, reason, evidence = guess_with_evidence(config, pattern.path(frames[0]), first.colorspace_tag,
                                                     first.is_float, pattern.extension)
        cs_in = Decision(name, reason, guessed=evidence == "file type")
    out = output_pattern(request, pattern)
    if request.output_colorspace:
        cs_out = Decision(resolve_colorspace(config, request.output_colorspace, "--output-colorspace"),
                          "--output-colorspace")
    else:
        cs_out = default_output_colorspace(config, cs_in.value, first.is_float, out.extension)
    for src, dst in ((cs_in.value, WORKING_SPACE), (WORKING_SPACE, cs_out.value)):
        convert(np.zeros((1, 1, 3), np.float32), config, src, dst)  # a missing LUT file fails here, not mid-shot
    plan = RenderPlan(request, pattern, out, frames, missing, first, decide_bit_depth(request, first),
                      config, Decision(source, why), cs_in, cs_out)
    refuse_input_overwrite(plan)
    return plan


def check_output_folder(plan: RenderPlan, create: bool = True) -> None:
    """Before any frame is computed: the output folder and its record folder can be made and
    written to (``create``), or at least no file stands where they should be (`submit`, on a
    machine that may not write there)."""
    folder = os.path.dirname(os.path.abspath(plan.output.path(plan.frames[0])))
    check = writable_folder if create else refuse_file_in_path
    check(folder, "choose another -o folder")
    check(os.path.join(folder, RECORD_DIR), f"remove or rename it: bake-seq keeps each frame's resume record "
          f"and lock in the output's {RECORD_DIR}/ folder")


def refuse_file_in_path(folder: str, fix: str) -> None:
    """A file (or a dangling link) where ``folder`` or one above it should be: no retry helps,
    so it is an unsafe output (exit 6) in every command, not a failed write."""
    probe = os.path.abspath(folder)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        what = "a broken link" if os.path.islink(probe) else "a file"
        where = "is" if probe == os.path.abspath(folder) else f"goes through {probe}, which is"
        raise UnsafeOutputError(folder, f"{where} {what}, not a folder", fix)


def writable_folder(folder: str, fix: str) -> None:
    """``folder`` exists (made if need be) and takes a new file; else one line: exit 6 for a
    file in the way, exit 10 (retryable) for a failed write (permissions, read-only, disk full)."""
    from bake_seq.sequences.errors import OutputError

    refuse_file_in_path(folder, fix)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, test = tempfile.mkstemp(prefix=".bake-seq-write-test-", dir=folder)
        os.close(fd)
        os.remove(test)
    except OSError as exc:
        raise OutputError(folder, f"cannot write to the folder ({exc.strerror or exc})",
                          f"check its permissions and free space, or {fix}") from None


def default_output_colorspace(config, plate_space: str, plate_is_float: bool, extension: str) -> Decision:
    """The plate's space, except that EXR holds scene-linear light by convention (Nuke reads an
    EXR as linear): log or display-referred plates written as EXR go to the config's
    scene_linear role."""
    space = config.getColorSpace(plate_space)
    encoding = space.getEncoding() if space is not None else ""
    linear = encoding == "scene-linear" or (not encoding and plate_is_float) or (space is not None and space.isData())
    role = config.getColorSpace("scene_linear") if config.hasRole("scene_linear") else None
    if extension != "exr" or linear or role is None:
        return Decision(plate_space, "same as the input (default)")
    return Decision(role.getName(), f"EXR output holds scene-linear light: the config's scene_linear role "
                                    f"(the plate is {plate_space!r}; --output-colorspace to choose)")


def refuse_input_overwrite(plan: RenderPlan) -> None:
    """Even --overwrite never replaces a plate: compare real paths against every input frame."""
    inputs = {os.path.realpath(plan.pattern.path(n)) for n in plan.pattern.scan() + plan.frames}
    refuse_replacing([plan.output.path(n) for n in plan.frames], inputs, "choose another -o folder or pattern")


def refuse_replacing(targets: list[str], inputs: set[str], fix: str) -> None:
    """The one rule every writer follows (render, hosts' save nodes): no target may be an input,
    compared by file identity (symlinks, hard links and ``..`` are all the same file)."""
    from bake_seq.sequences.safe_write import identities

    taken = identities(inputs)
    for target in targets:
        if identities([target]) & taken:
            raise UnsafeOutputError(target, "output would replace an input frame", f"{fix} (inputs are never overwritten)")


def command_inputs(plan: RenderPlan, opts: dict) -> list[str]:
    """Every file a plate command reads: the plate's frames and the files its options name
    (checkpoint, settings, OCIO config, grade record, mask, grain profile, weights): what no
    output of the command may be (sequences/safe_write.py)."""
    named = [opts.get(name) for name in INPUT_OPTIONS]
    return [plan.pattern.path(n) for n in plan.pattern.scan()] + [p for p in named if isinstance(p, str) and p]


INPUT_OPTIONS = ("ocio_config", "config", "checkpoint", "grade", "colorize_checkpoint", "mask", "grain_profile",
                 "weights")


def analyse_shot(plan: RenderPlan, op: Operator, say: Callable[[str], None] | None = None) -> None:
    """Give an operator that needs the whole shot (the global model's --temporal shot/window)
    every frame of the plan before the first is rendered; only thumbnails are kept. It comes
    before resume checks: the shot's correction is part of every frame's fingerprint."""
    if not op.needs_shot:
        return
    frames = op.shot_frames(plan.frames, plan.pattern.scan())
    if say:
        say(op.describe_shot(frames))
    op.analyse(frames, lambda n: load_frame(plan, n).rgb)


def guess_warning(plan: RenderPlan) -> str | None:
    """The line a render or submit starts with when the plate's colour space is only a guess."""
    cs = plan.input_colorspace
    if not cs.guessed:
        return None
    return (f"warning: input colour space {cs.value!r} is a guess from the file type ({cs.reason}); "
            f"if the plate is camera log, video or another space, pass --input-colorspace "
            f"(bake-seq info --list-colorspaces)")


def pending_frames(plan: RenderPlan, op: Operator) -> tuple[list[int], list[int]]:
    """(frames to render, frames already complete with the same fingerprint)."""
    if plan.request.overwrite:
        return list(plan.frames), []
    fp = fingerprint_of(plan, op)
    todo, done = [], []
    for n in plan.frames:
        state = frame_state(plan.output.path(n), fp, plan.pattern.path(n))
        (done if state.state == "done" else todo).append(n)
    return todo, done


@dataclass
class LoadedFrame:
    number: int
    header: Header
    rgb: np.ndarray  # working space, H x W x 3
    alpha: np.ndarray | None


def split_channels(pixels: np.ndarray, header: Header) -> tuple[np.ndarray, np.ndarray | None]:
    """Greyscale plates (Y, YA) are expanded to RGB; alpha is carried untouched."""
    alpha = None
    colour = pixels
    if header.alpha_channel >= 0:
        alpha = pixels[:, :, header.alpha_channel].copy()
        colour = np.delete(pixels, header.alpha_channel, axis=2)
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if colour.shape[2] != 3:
        raise PlateError(header.path, f"has {pixels.shape[2]} channels {header.channel_names}",
                         "bake-seq reads Y, YA, RGB or RGBA plates")
    return np.ascontiguousarray(colour, dtype=np.float32), alpha


class StageClock:
    """Seconds spent per stage, summed over frames and threads (for --json and `bench`)."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - start


def replace_non_finite(path: str, pixels: np.ndarray, where: str, policy: str) -> None:
    """NaN/Inf in H x W x C ``pixels``: a PlateError (policy "error") or set to 0 in place."""
    bad = ~np.isfinite(pixels)
    if not bad.any():
        return
    if policy == "error":
        raise PlateError(path, f"has {int(bad.any(axis=2).sum())} pixels with NaN/Inf values{where}",
                         "fix the plate upstream or pass --nan-policy zero")
    pixels[bad] = 0.0


def load_frame(plan: RenderPlan, number: int, clock: StageClock | None = None) -> LoadedFrame:
    clock = clock or StageClock()
    path = plan.pattern.path(number)
    with clock.stage("read"):
        plate = read_plate(path, plan.bit_depth.value)
    header = plate.header
    if not header.is_float and not plan.first.is_float and header.bits_per_sample != plan.first.bits_per_sample:
        raise PlateError(path, f"is {header.bits_per_sample}-bit but the sequence is "
                         f"{plan.first.bits_per_sample}-bit (decided from frame {plan.frames[0]})",
                         "re-export the frame at the sequence's bit depth (one bit depth per sequence)")
    rgb, alpha = split_channels(plate.pixels, header)
    replace_non_finite(path, rgb, "", plan.request.nan_policy)
    if alpha is not None:  # alpha too: it is written out as it came in
        replace_non_finite(path, alpha[:, :, None], " in alpha", plan.request.nan_policy)
    with clock.stage("colour_in"):
        rgb = convert(rgb, plan.config, plan.input_colorspace.value, WORKING_SPACE)
    return LoadedFrame(number, header, rgb, alpha)


def save_frame(plan: RenderPlan, frame: LoadedFrame, result: np.ndarray, fingerprint: str,
               operator: dict | None = None, clock: StageClock | None = None) -> None:
    clock = clock or StageClock()
    with clock.stage("colour_out"):
        out = convert(result, plan.config, WORKING_SPACE, plan.output_colorspace.value)
    names = ["R", "G", "B"]
    metadata = frame.header.metadata
    if out.shape[:2] != (frame.header.height, frame.header.width):  # a super-resolution operator
        metadata = resized_metadata(metadata, out.shape[1] / frame.header.width, out.shape[0] / frame.header.height)
    if frame.alpha is not None:
        out = np.concatenate([out, frame.alpha[:, :, None]], axis=2)
        names.append("A")
    path = plan.output.path(frame.number)
    with clock.stage("write"):
        write_plate(path, out, channel_names=names, metadata=metadata,
                    colorspace=plan.output_colorspace.value, frame=frame.number,
                    colorspace_label=plan.output_label)
        write_record(path, {"fingerprint": fingerprint, "frame": frame.number,
                        "source": file_identity(frame.header.path), "source_path": frame.header.path,
                            "settings": plan.settings_record(), "operator": operator,
                            "written_by": f"bake-seq {__version__}"})


ProgressFn = Callable[[int, float], None]
WAIT_LEASES = 10  # frames other renders hold: give up after this many lock leases without news


def render(plan: RenderPlan, op: Operator, todo: list[int], progress: ProgressFn | None = None,
           prefetch: int = 1) -> dict:
    """Render ``todo``; returns per-stage timings. Raises the first error after pending writes.
    Returns only when every frame of ``todo`` is complete on disk: frames another render holds
    are waited for (and taken over if its lease runs out); FramesLeftError if they are not done
    after WAIT_LEASES leases without news. ``progress(frame, seconds)`` is called once the frame
    is on disk, with the wall time since the previous one (reads and writes overlap processing,
    so this is the sequence's real cost per frame)."""
    fingerprint, made_by = fingerprint_of(plan, op), op.fingerprint()
    started = time.perf_counter()
    last_done = [started]
    busy = {"process_s": 0.0, "wait_read_s": 0.0, "wait_write_s": 0.0, "wait_other_renders_s": 0.0}
    clock = StageClock()
    claimed, held_elsewhere, done_elsewhere = [], [], []
    upcoming = iter(todo)
    # --overwrite: a frame counts as done by another render only if its record changed meanwhile
    records_before = {n: read_record(plan.output.path(n)) for n in todo} if plan.request.overwrite else {}
    lease = lock_lease_s()

    def done_meanwhile(n: int) -> bool:
        path = plan.output.path(n)
        if plan.request.overwrite and read_record(path) == records_before[n]:
            return False
        return frame_state(path, fingerprint, plan.pattern.path(n)).state == "done"

    def take(n: int) -> bool:
        """Claim frame n; a frame found complete once its lock is ours is skipped (another
        render finished it since we planned or looked)."""
        path = plan.output.path(n)
        if not claim_frame(path):
            if n not in held_elsewhere:
                held_elsewhere.append(n)
            return False
        if n in held_elsewhere:
            held_elsewhere.remove(n)
        if done_meanwhile(n):
            release_frame(path)
            done_elsewhere.append(n)
            return False
        claimed.append(n)
        return True

    def next_frame(wait: bool) -> int | None:
        """The next frame this process takes (a lock per frame: concurrent renders share).
        ``wait``: nothing else to do, so poll the frames other renders hold until one is ours,
        all are done, or none changed hands for WAIT_LEASES leases."""
        for n in upcoming:
            if take(n):
                return n
        since = time.perf_counter()
        while held_elsewhere:
            finished = len(done_elsewhere)
            for n in list(held_elsewhere):
                if take(n):
                    return n
            if len(done_elsewhere) > finished:
                since = time.perf_counter()
            if not wait or time.perf_counter() - since > WAIT_LEASES * lease:
                break
            time.sleep(min(1.0, lease / 10))
        return None

    def save_and_release(frame, result):
        try:
            save_frame(plan, frame, result, fingerprint, made_by, clock)
        finally:
            release_frame(plan.output.path(frame.number))
        if progress:  # only now: "frame N done" means renamed into place with its record
            now = time.perf_counter()
            progress(frame.number, now - last_done[0])
            last_done[0] = now

    with ThreadPoolExecutor(1, "bake-read") as reader, ThreadPoolExecutor(1, "bake-write") as writer:
        reads = deque()
        try:
            writing = None
            while True:
                if not reads:
                    t0 = time.perf_counter()
                    n = next_frame(wait=True)
                    busy["wait_other_renders_s"] += time.perf_counter() - t0
                    if n is None:
                        break
                    reads.append(reader.submit(load_frame, plan, n, clock))
                t0 = time.perf_counter()
                frame = reads.popleft().result()
                while len(reads) < prefetch:
                    n = next_frame(wait=False)
                    if n is None:
                        break
                    reads.append(reader.submit(load_frame, plan, n, clock))
                t1 = time.perf_counter()
                if op.accepts_alpha and frame.alpha is not None:
                    result = op.process(frame.rgb, frame.number, alpha=frame.alpha)
                else:
                    result = op.process(frame.rgb, frame.number)
                if frame.alpha is not None:  # alpha keeps the result's size (scaling operators)
                    frame.alpha = op.process_alpha(frame.alpha, frame.number)
                t2 = time.perf_counter()
                if writing is not None:
                    writing.result()
                t3 = time.perf_counter()
                writing = writer.submit(save_and_release, frame, result)
                busy["wait_read_s"] += t1 - t0
                busy["process_s"] += t2 - t1
                busy["wait_write_s"] += t3 - t2
            if writing is not None:
                t3 = time.perf_counter()
                writing.result()
                busy["wait_write_s"] += time.perf_counter() - t3
        finally:
            for pending in reads:
                pending.cancel()
            for n in claimed:  # on an error or Ctrl-C too: the frames go back to the others
                release_frame(plan.output.path(n))
    if held_elsewhere:
        raise FramesLeftError(str(plan.output), f"frames left unfinished by another render: "
                              f"{format_frame_ranges(sorted(held_elsewhere))} (still locked after waiting "
                              f"{WAIT_LEASES * lease:.0f} s without news)", "run again: a dead render's frames "
                              f"are taken over once its lock is {lease:.0f} s old (the lease)")
    busy["rendered_frames"] = len(claimed)
    busy["left_to_other_renders"] = sorted(done_elsewhere)  # finished by other renders meanwhile
    busy["wall_s"] = time.perf_counter() - started
    busy["inference_s"] = busy["process_s"]
    busy.update({f"{name}_s": seconds for name, seconds in clock.totals.items()})
    return busy
