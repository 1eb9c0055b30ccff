"""One-line errors that name the file, the problem and the fix.

Callers map the two classes to distinct exit codes: PlateError is bad input
(fix the plate or the command line), OutputError is a failed write (often
retryable: disk full, permissions, a flaky network mount).
"""
from __future__ import annotations


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class SequenceError(Exception):
    """Base of the sequences errors; `str()` is always a single line."""

    def __init__(self, path: str | None, problem: str, fix: str):
        self.path = path
        self.problem = _one_line(problem)
        self.fix = _one_line(fix)
        super().__init__(str(self))

    def __str__(self) -> str:
        message = f"{self.problem} — {self.fix}"
        return f"{self.path}: {message}" if self.path is not None else message

    # Exceptions cross process boundaries on the farm and in worker pools;
    # the default pickling would call __init__ with the formatted message only.
    def __reduce__(self):
        return (type(self), (self.path, self.problem, self.fix))


class PlateError(SequenceError):
    """Bad input: plate file, frame pattern or frame range."""


class OutputError(SequenceError):
    """Writing an output frame failed (disk full, permission, OIIO write error)."""


class UnsafeTargetError(SequenceError):
    """Writing there would destroy something: an input, an existing file without --overwrite,
    a device or FIFO, a path through a file. Permanent (exit 6), unlike OutputError."""
