"""User-facing errors and their exit codes.

Every error a user can cause or fix prints ONE line ("path: problem — fix") and exits with a
code that tells a farm whether a retry can help. Codes (also in the README):

    0   success
    1   internal error (a bug: traceback printed; please report)
    2   bad usage or settings (click's usage errors too):        permanent
        options, settings files, --grade records and LUT sidecars
        (whatever the bounded reader refuses), a LUT too big or
        not a regular file
    3   bad input plate: missing/corrupt frame, NaN, channels     permanent
    4   bad checkpoint / model file                               permanent
    5   colour management: unknown colour space, bad config, a    permanent
        LUT OpenColorIO cannot read or holding NaN/Inf
    6   output would overwrite an input / unsafe output path: a   permanent
        file where an output folder (or its .bake-seq/) should
        be; `grade -o` onto a file it did not just write; any
        -o that is an input, a device/FIFO/folder, or an existing
        file without --overwrite
    7   `bake-seq status`: frames missing or stale (not an error)
    10  output write failed (disk full, permissions, network FS)  retryable
    11  compute device failed (CUDA error, out of memory)         retryable
    12  frames left unfinished by another render (its lease had   retryable
        not run out when this render stopped waiting)
    130 interrupted (Ctrl-C / SIGINT)
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_PLATE = 3
EXIT_CHECKPOINT = 4
EXIT_COLOUR = 5
EXIT_UNSAFE_OUTPUT = 6
EXIT_INCOMPLETE = 7
EXIT_WRITE = 10
EXIT_DEVICE = 11
EXIT_FRAMES_LEFT = 12
EXIT_INTERRUPTED = 130

RETRYABLE = frozenset({EXIT_WRITE, EXIT_DEVICE, EXIT_FRAMES_LEFT})


class BakeError(Exception):
    """An error the user can fix; ``str()`` is one line."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str | None, problem: str, fix: str):
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(f"{path}: {problem} — {fix}" if path else f"{problem} — {fix}")


class SettingsError(BakeError):
    exit_code = EXIT_USAGE


class CheckpointError(BakeError):
    exit_code = EXIT_CHECKPOINT


class UnsafeOutputError(BakeError):
    exit_code = EXIT_UNSAFE_OUTPUT


class DeviceError(BakeError):
    exit_code = EXIT_DEVICE


class FramesLeftError(BakeError):
    """Frames another render holds were not finished while this one waited: a rerun takes them
    over once that render's lease runs out (it died), so a farm retry completes the chunk."""

    exit_code = EXIT_FRAMES_LEFT


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for a user error from any layer, or None for a bug."""
    from bake_seq.ocio.errors import ColourError
    from bake_seq.sequences.errors import OutputError, PlateError, UnsafeTargetError

    if isinstance(exc, BakeError):
        return exc.exit_code
    if isinstance(exc, UnsafeTargetError):
        return EXIT_UNSAFE_OUTPUT
    if isinstance(exc, PlateError):
        return EXIT_PLATE
    if isinstance(exc, ColourError):
        return EXIT_COLOUR
    if isinstance(exc, OutputError):
        return EXIT_WRITE
    return None


def shown(value) -> str:
    """A value for an error message, bounded: YAML aliases can make a 500-byte file whose lists
    print as gigabytes, so only scalars are shown, and at most 80 characters of them."""
    if not isinstance(value, (str, int, float, bool)) and value is not None:
        return f"(a {type(value).__name__})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
