"""Plate sequences: frame patterns and ranges, frame read/write through OpenImageIO.

Knows nothing about models or colour management; bake_node builds on it.
"""
from .errors import OutputError, PlateError, SequenceError
from .pattern import FramePattern, format_frame_ranges, parse_frames, resolve_frames
from .plate import Header, Plate, read_header, read_plate, write_plate

__all__ = [
    "FramePattern", "Header", "OutputError", "Plate", "PlateError", "SequenceError",
    "format_frame_ranges", "parse_frames", "read_header", "read_plate", "resolve_frames",
    "write_plate",
]
