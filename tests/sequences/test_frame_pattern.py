import os

import pytest

from bake_seq.sequences.errors import PlateError
from bake_seq.sequences.pattern import FramePattern, format_frame_ranges, parse_frames, resolve_frames


@pytest.mark.parametrize("text, prefix, padding, suffix", [
    ("shot_010/####.dpx", "", 4, ".dpx"),
    ("plate.#.exr", "plate.", 1, ".exr"),
    ("plate.@@@@.exr", "plate.", 4, ".exr"),
    ("plate.%04d.exr", "plate.", 4, ".exr"),
    ("plate.%d.png", "plate.", 1, ".png"),
    ("plate.$F4.tif", "plate.", 4, ".tif"),
    ("plate.$F.tif", "plate.", 1, ".tif"),
    ("plate_v2######.DPX", "plate_v2", 6, ".DPX"),
])
def test_padding_syntaxes(text, prefix, padding, suffix):
    pattern = FramePattern.parse(text)
    assert (pattern.prefix, pattern.padding, pattern.suffix) == (prefix, padding, suffix)
    assert pattern.explicit_frames is None
    assert pattern.text == text


def test_parts_and_paths():
    pattern = FramePattern.parse("shot_010/plate.####.DPX")
    assert pattern.directory == "shot_010"
    assert pattern.extension == "dpx"
    assert pattern.path(1001) == os.path.join("shot_010", "plate.1001.DPX")
    assert pattern.path(7) == os.path.join("shot_010", "plate.0007.DPX")
    assert pattern.path(123456) == os.path.join("shot_010", "plate.123456.DPX")
    assert pattern.path(-5) == os.path.join("shot_010", "plate.-0005.DPX")
    assert FramePattern.parse("p.#.exr").path(42) == "p.42.exr"
    assert str(FramePattern.parse("shot_010/%04d.dpx")) == os.path.join("shot_010", "####.dpx")


def test_explicit_range_in_pattern():
    pattern = FramePattern.parse("shot_010/1001-1005####.dpx")
    assert (pattern.prefix, pattern.padding, pattern.explicit_frames) == ("", 4, (1001, 1002, 1003, 1004, 1005))
    pattern = FramePattern.parse("plate.1-9x2@@@@.exr")
    assert (pattern.prefix, pattern.explicit_frames) == ("plate.", (1, 3, 5, 7, 9))
    assert str(pattern) == "plate.####.exr"


def test_single_existing_file(tmp_path):
    (tmp_path / "plate.0042.exr").write_bytes(b"x")
    pattern = FramePattern.parse(str(tmp_path / "plate.0042.exr"))
    assert (pattern.prefix, pattern.padding, pattern.explicit_frames) == ("plate.", 4, (42,))
    assert pattern.path(42) == str(tmp_path / "plate.0042.exr")


@pytest.mark.parametrize("text", ["plate.exr", "missing/plate.0042.exr"])
def test_no_padding_token_is_an_error(text):
    with pytest.raises(PlateError, match=r"####"):
        FramePattern.parse(text)


def test_with_directory_and_extension():
    pattern = FramePattern.parse("in/plate.%04d.dpx")
    moved = pattern.with_directory("out").with_extension(".exr")
    assert moved.path(3) == os.path.join("out", "plate.0003.exr")
    assert moved.extension == "exr" and pattern.extension == "dpx"


def test_scan_numeric_order_unpadded(touch):
    folder = touch("p.9.exr", "p.10.exr", "p.100.exr", "p.010.exr", ".p.11.exr",
                   "p.12.exr.partial", "q.13.exr", "p.-3.exr")
    assert FramePattern.parse(str(folder / "p.#.exr")).scan() == [-3, 9, 10, 100]


def test_scan_padded(touch):
    folder = touch("p.0009.exr", "p.0010.exr", "p.10000.exr", "p.01000.exr", "p.100.exr",
                   "p.-0002.exr", "p.0011.png", "sub/p.0012.exr")
    assert FramePattern.parse(str(folder / "p.####.exr")).scan() == [-2, 9, 10, 10000]


def test_scan_missing_directory(tmp_path):
    assert FramePattern.parse(str(tmp_path / "nope" / "####.dpx")).scan() == []


@pytest.mark.parametrize("text, frames", [
    ("1001-1005", [1001, 1002, 1003, 1004, 1005]),
    ("1001-1009x2", [1001, 1003, 1005, 1007, 1009]),
    ("1,3,5-7", [1, 3, 5, 6, 7]),
    ("9,3,3,1", [1, 3, 9]),
    ("1001", [1001]),
    ("-2-2", [-2, -1, 0, 1, 2]),
])
def test_parse_frames(text, frames):
    assert parse_frames(text) == frames


@pytest.mark.parametrize("text", ["abc", "", "1-", "1.5", "1-100000000"])
def test_parse_frames_errors(text):
    with pytest.raises(PlateError, match="1001-1100") as caught:
        parse_frames(text)
    assert caught.value.path is None


def test_format_frame_ranges_round_trips():
    assert format_frame_ranges([1010, 1001, 1002, 1003, 1003]) == "1001-1003,1010"
    assert format_frame_ranges([]) == ""
    frames = [-4, -3, 0, 5, 6, 7, 20]
    assert parse_frames(format_frame_ranges(frames)) == frames


def test_resolve_everything_on_disk_holes_inside_are_missing(touch):
    folder = touch("p.0001.exr", "p.0002.exr", "p.0004.exr")
    pattern = FramePattern.parse(str(folder / "p.####.exr"))
    with pytest.raises(PlateError, match="missing frames 3 .*--skip-missing"):
        resolve_frames(pattern, None, skip_missing=False)
    assert resolve_frames(pattern, None, skip_missing=True) == ([1, 2, 4], [3])
    twos = touch("t.0001.exr", "t.0003.exr", "t.0005.exr")  # a sequence on twos has no holes
    assert resolve_frames(FramePattern.parse(str(twos / "t.####.exr")), None, skip_missing=False) == ([1, 3, 5], [])


def test_resolve_no_frames_found(tmp_path):
    pattern = FramePattern.parse(str(tmp_path / "p.####.exr"))
    with pytest.raises(PlateError, match="no frames found.*padding"):
        resolve_frames(pattern, None, skip_missing=True)


def test_resolve_missing_frames_listed_compactly(touch):
    names = [f"p.{frame:04d}.exr" for frame in range(1001, 1101) if frame not in (1003, 1004, 1005, 1010)]
    folder = touch(*names)
    pattern = FramePattern.parse(str(folder / "p.####.exr"))
    requested = list(range(1001, 1101))
    with pytest.raises(PlateError) as caught:
        resolve_frames(pattern, requested, skip_missing=False)
    message = str(caught.value)
    assert "missing frames 1003-1005,1010 (4 of 100)" in message
    assert "--skip-missing" in message and "\n" not in message
    frames, missing = resolve_frames(pattern, requested, skip_missing=True)
    assert missing == [1003, 1004, 1005, 1010]
    assert frames == [f for f in requested if f not in missing]


def test_resolve_uses_range_written_in_pattern(touch):
    folder = touch("p.0001.exr", "p.0002.exr", "p.0003.exr")
    pattern = FramePattern.parse(str(folder / "p.2-4####.exr"))
    assert resolve_frames(pattern, None, skip_missing=True) == ([2, 3], [4])
    # An explicit request (--frames) wins over the range in the pattern.
    assert resolve_frames(pattern, [1], skip_missing=False) == ([1], [])


def test_resolve_all_missing_is_an_error_even_when_skipping(touch):
    folder = touch("p.0001.exr")
    pattern = FramePattern.parse(str(folder / "p.####.exr"))
    with pytest.raises(PlateError, match="missing frames 5-6"):
        resolve_frames(pattern, [5, 6], skip_missing=True)


def test_long_missing_listing_is_truncated(touch):
    folder = touch("p.0000.exr")
    pattern = FramePattern.parse(str(folder / "p.####.exr"))
    with pytest.raises(PlateError, match="and 40 more ranges") as caught:
        resolve_frames(pattern, list(range(0, 101, 2)), skip_missing=False)
    assert "(50 of 51)" in str(caught.value)
