"""Frame patterns and frame ranges: parse, format, find frames on disk.

Padding follows Nuke, not fileseq: every `#` is one digit (`####` = 4 digits,
`#` = unpadded), because that is what compositors type.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re

import fileseq

from .errors import PlateError

# One digit per # or @; printf %04d / %d; Houdini $F4 / $F.
_TOKEN = re.compile(r"#+|@+|%(?:0(\d+))?d|\$F(\d*)")
# A frame range written right before the token (fileseq style: 1001-1100####).
# It must not follow a letter or digit, so `plate_v2####` keeps "v2" as prefix.
_RANGE_BEFORE_TOKEN = re.compile(r"(?<![A-Za-z0-9])-?\d(?:[\d,x:y-]*\d)?$")
# A single frame file: digits right before the extension (plate.0042.exr).
_SINGLE_FRAME = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<suffix>\.[^.]+)$")

_PADDING_FIX = "write the frame number as #### (one # per digit), @@@@, %04d or $F4"
_FRAMES_FIX = "write frames like 1001-1100, 1001-1100x2, 1,3,5-9 or 1001"
_MAX_LISTED_RANGES = 10
_MAX_FRAMES = 1_000_000


@dataclasses.dataclass(frozen=True)
class FramePattern:
    text: str
    directory: str
    prefix: str
    suffix: str
    padding: int
    explicit_frames: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> "FramePattern":
        directory, name = os.path.split(text)
        tokens = list(_TOKEN.finditer(name))
        if not tokens:
            return cls._single_frame(text, directory, name)
        # The frame number is the last token; earlier ones belong to the name.
        token = tokens[-1]
        padding = _token_digits(token)
        prefix, suffix = name[: token.start()], name[token.end():]
        frames = None
        written_range = _RANGE_BEFORE_TOKEN.search(prefix)
        if written_range:
            frames = tuple(parse_frames(written_range.group()))
            prefix = prefix[: written_range.start()]
        return cls(text, directory, prefix, suffix, padding, frames)

    @classmethod
    def _single_frame(cls, text: str, directory: str, name: str) -> "FramePattern":
        match = _SINGLE_FRAME.match(name)
        if not (match and os.path.isfile(text)):
            raise PlateError(text, "no frame number in the pattern", _PADDING_FIX)
        digits = match["digits"]
        return cls(text, directory, match["prefix"], match["suffix"], len(digits),
                   (int(digits),))

    @property
    def extension(self) -> str:
        # Not os.path.splitext: it sees a suffix like ".exr" as a hidden name.
        dot, extension = self.suffix.rpartition(".")[1:]
        return extension.lower() if dot else ""

    def path(self, frame: int) -> str:
        sign = "-" if frame < 0 else ""
        number = f"{sign}{abs(frame):0{self.padding}d}"
        return os.path.join(self.directory, f"{self.prefix}{number}{self.suffix}")

    def scan(self) -> list[int]:
        """Frames of this pattern present on disk, in numeric order."""
        number = re.compile(
            rf"{re.escape(self.prefix)}(-?)(\d+){re.escape(self.suffix)}")
        try:
            entries = list(os.scandir(self.directory or "."))
        except OSError:
            return []
        frames = set()
        for entry in entries:
            # Hidden files include our own in-progress writes (.name.partial-*).
            if entry.name.startswith(".") and not self.prefix.startswith("."):
                continue
            match = number.fullmatch(entry.name)
            if match and self._padding_matches(match[2]) and entry.is_file():
                frames.add(int(match[1] + match[2]))
        return sorted(frames)

    def _padding_matches(self, digits: str) -> bool:
        # Longer than the padding is fine (frame 10000 in ####) but then the
        # number cannot start with a zero, or it belongs to another padding.
        if len(digits) == self.padding:
            return True
        return len(digits) > self.padding and not digits.startswith("0")

    def with_directory(self, directory: str) -> "FramePattern":
        return self._replace(directory=directory)

    def with_extension(self, extension: str) -> "FramePattern":
        extension = extension.lstrip(".")
        stem = self.suffix[: len(self.suffix) - len(self.extension)]
        if not self.extension:
            stem = self.suffix + "."
        return self._replace(suffix=stem + extension)

    def _replace(self, **changes) -> "FramePattern":
        changed = dataclasses.replace(self, **changes)
        return dataclasses.replace(changed, text=str(changed))

    def __str__(self) -> str:
        name = f"{self.prefix}{'#' * self.padding}{self.suffix}"
        return os.path.join(self.directory, name)


def _token_digits(token: re.Match) -> int:
    if token.group()[0] in "#@":
        return len(token.group())
    digits = token[1] or token[2]
    return max(int(digits), 1) if digits else 1


def parse_frames(text: str) -> list[int]:
    """Frame numbers of a range like 1001-1100x2 or 1,3,5-9: sorted, unique."""
    try:
        frame_set = fileseq.FrameSet(text.strip())
        if len(frame_set) > _MAX_FRAMES:
            raise ValueError(f"more than {_MAX_FRAMES} frames")
        frames = list(frame_set)
    except (ValueError, fileseq.FileSeqException) as error:
        detail = "" if "did not match" in str(error) else f" ({error})"  # fileseq's message is a regex dump
        raise PlateError(None, f"cannot read the frame range {text!r}{detail}",
                         _FRAMES_FIX) from None
    if not frames:
        raise PlateError(None, f"the frame range {text!r} is empty", _FRAMES_FIX)
    if any(frame != int(frame) for frame in frames):
        raise PlateError(None, f"the frame range {text!r} has sub-frames", _FRAMES_FIX)
    return sorted({int(frame) for frame in frames})


def format_frame_ranges(frames) -> str:
    """Compact form of frame numbers: 1001-1003,1010 (parse_frames reads it back)."""
    return ",".join(_format_run(run) for run in _runs(frames))


def _runs(frames) -> list[tuple[int, int]]:
    runs: list[list[int]] = []
    for frame in sorted(set(frames)):
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    return [(first, last) for first, last in runs]


def _format_run(run: tuple[int, int]) -> str:
    first, last = run
    return str(first) if first == last else f"{first}-{last}"


def resolve_frames(pattern: FramePattern, requested: list[int] | None,
                   skip_missing: bool) -> tuple[list[int], list[int]]:
    """Decide which frames to process: (frames_to_process, missing).

    `requested` (e.g. --frames) wins over a range written in the pattern;
    with neither, the frames from the first to the last on disk, at the sequence's own step
    (a sequence on twos is whole), are wanted: holes inside it are missing frames.
    """
    on_disk = pattern.scan()
    if requested is None:
        requested = pattern.explicit_frames
    if requested is None:
        if not on_disk:
            raise PlateError(pattern.text, "no frames found",
                             "check the path and the padding (#### = 4 digits, "
                             "# = unpadded)")
        step = math.gcd(*(b - a for a, b in zip(on_disk, on_disk[1:]))) or 1
        requested = list(range(on_disk[0], on_disk[-1] + 1, step))
    wanted = sorted(set(requested))
    present = set(on_disk)
    missing = [frame for frame in wanted if frame not in present]
    found = [frame for frame in wanted if frame in present]
    if missing and (not skip_missing or not found):
        fix = ("render the missing frames, narrow --frames, or pass --skip-missing"
               if found else "check the path, the padding and --frames")
        raise PlateError(pattern.text, f"missing frames {_listing(missing)} "
                         f"({len(missing)} of {len(wanted)})", fix)
    return found, missing


def _listing(frames: list[int]) -> str:
    runs = _runs(frames)
    shown = ",".join(_format_run(run) for run in runs[:_MAX_LISTED_RANGES])
    hidden = len(runs) - _MAX_LISTED_RANGES
    return shown + (f" and {hidden} more ranges" if hidden > 0 else "")
