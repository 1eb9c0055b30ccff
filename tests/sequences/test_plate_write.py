import os

import numpy as np
import OpenImageIO as oiio
import pytest

from bake_seq.sequences.errors import OutputError
from bake_seq.sequences.plate import read_header, read_plate, write_plate

RGBA = ["R", "G", "B", "A"]
TIMECODE = (0x01020304, 0)


def _pixels(channels=4):
    rng = np.random.default_rng(1)
    pixels = rng.random((6, 5, channels), np.float32)
    pixels[0, 0, 0], pixels[0, 1, 0] = 4.0, -0.5
    if channels == 4:
        pixels[1, 1, 3] = 0.0  # colour under zero alpha must survive
    return pixels


def _write(path, pixels, **options):
    options.setdefault("channel_names", RGBA[: pixels.shape[2]])
    options.setdefault("metadata", {})
    options.setdefault("colorspace", None)
    write_plate(str(path), pixels, **options)
    return str(path)


@pytest.mark.parametrize("ext", ["png", "tif", "tiff", "dpx"])
def test_integer_formats_are_16_bit_and_clip(tmp_path, ext):
    pixels = _pixels()
    path = _write(tmp_path / f"out.{ext}", pixels)
    plate = read_plate(path, None)
    assert (plate.header.pixel_type, plate.header.bits_per_sample) == ("uint16", 16)
    expected = np.rint(np.clip(pixels.astype(np.float64), 0, 1) * 65535) / 65535
    np.testing.assert_array_equal(plate.pixels, expected.astype(np.float32))
    assert plate.header.alpha_channel == 3


def test_exr_is_half_and_keeps_out_of_range_values(tmp_path):
    pixels = _pixels()
    plate = read_plate(_write(tmp_path / "out.exr", pixels), None)
    assert plate.header.pixel_type == "half"
    np.testing.assert_array_equal(plate.pixels, pixels.astype(np.float16).astype(np.float32))
    assert plate.pixels[0, 0, 0] == 4.0 and plate.pixels[0, 1, 0] == -0.5


@pytest.mark.parametrize("ext", ["png", "tif", "dpx", "exr"])
@pytest.mark.parametrize("names", [["Y"], ["Y", "A"], ["R", "G", "B"]])
def test_channel_layouts(tmp_path, ext, names):
    pixels = np.clip(_pixels(len(names)), 0, 1)
    if ext == "dpx" and len(names) == 2:
        with pytest.raises(OutputError, match="DPX cannot hold 2 channels"):
            _write(tmp_path / f"out.{ext}", pixels, channel_names=names)
        return
    plate = read_plate(_write(tmp_path / f"out.{ext}", pixels, channel_names=names), None)
    assert plate.pixels.shape == pixels.shape
    np.testing.assert_allclose(plate.pixels, pixels, atol=1e-3)
    assert plate.header.alpha_channel == (1 if names == ["Y", "A"] else -1)


def test_non_contiguous_pixels(tmp_path):
    pixels = np.clip(_pixels(), 0, 1)
    view = np.asfortranarray(pixels)[:, ::-1][:, ::-1]
    assert not view.flags.c_contiguous
    plate = read_plate(_write(tmp_path / "out.png", view), None)
    np.testing.assert_allclose(plate.pixels, pixels, atol=1e-5)


def _dpx_source(tmp_path, write_raw):
    return read_header(write_raw(tmp_path / "src.dpx", np.zeros((2, 2, 3), np.uint16), oiio.UINT16,
                                 bits=10, attributes=[("smpte:TimeCode", "timecode", TIMECODE)]))


def _exr_source(tmp_path, write_raw):
    return read_header(write_raw(tmp_path / "src.exr", np.zeros((2, 2, 3), np.float32), oiio.HALF,
                                 attributes=[("smpte:TimeCode", "timecode", TIMECODE),
                                             ("FramesPerSecond", "rational", (24, 1)),
                                             ("oiio:ColorSpace", "string", "lin_ap1_scene")]))


def _png_source(tmp_path, write_raw):
    return read_header(write_raw(tmp_path / "src.png", np.zeros((2, 2, 4), np.uint8), oiio.UINT8))


def _tif_source(tmp_path, write_raw):
    return read_header(write_raw(tmp_path / "src.tif", np.zeros((2, 2, 3), np.uint8), oiio.UINT8))


SOURCES = {"dpx": _dpx_source, "exr": _exr_source, "png": _png_source, "tif": _tif_source}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("ext", ["png", "tif", "dpx", "exr"])
def test_metadata_from_any_source_writes_to_any_format(tmp_path, write_raw, source, ext):
    header = SOURCES[source](tmp_path, write_raw)
    path = _write(tmp_path / f"out.{ext}", np.full((2, 2, 3), 0.5, np.float32),
                  metadata=header.metadata, colorspace="srgb_rec709_scene", frame=1001)
    written = read_header(path)
    # Source encoding does not leak: a 10-bit DPX source still gives a 16-bit output.
    assert written.bits_per_sample == 16
    if ext != "tif":  # the TIFF writer keeps no colour-space tag
        assert written.colorspace_tag == "srgb_rec709_scene"
    if "smpte:TimeCode" in header.metadata and ext in ("exr", "dpx"):
        assert written.metadata["smpte:TimeCode"] == TIMECODE


def test_odd_metadata_values_are_skipped_not_fatal(tmp_path):
    metadata = {"blob": np.zeros(3, np.uint8), "raw": b"x", "flag": True, "big": 2**40,
                "mixed": (1, "a"), "worldToCamera": tuple(float(i) for i in range(16)),
                "chromaticities": (0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329),
                "Software": "restorer"}
    for ext in ("png", "tif", "dpx", "exr"):
        written = read_header(_write(tmp_path / f"out.{ext}", np.zeros((2, 2, 3), np.float32),
                                     metadata=metadata))
        assert "chromaticities" not in written.metadata  # describes the source's primaries
        assert written.metadata["Software"] == "restorer"
    assert len(written.metadata["worldToCamera"]) == 16


def test_frame_number_and_frame_rate(tmp_path, write_raw):
    header = _exr_source(tmp_path, write_raw)
    pixels = np.zeros((2, 2, 3), np.float32)
    exr = read_header(_write(tmp_path / "out.exr", pixels, metadata=header.metadata, frame=1001))
    assert exr.metadata["Frame"] == 1001 and exr.metadata["FramesPerSecond"] == (24, 1)
    dpx = read_header(_write(tmp_path / "out.dpx", pixels, metadata=header.metadata, frame=1001))
    assert dpx.metadata["dpx:FramePosition"] == 1001


def test_rgba_png_alpha_and_colour_untouched(tmp_path):
    pixels = np.clip(_pixels(), 0, 1)
    plate = read_plate(_write(tmp_path / "out.png", pixels), None)
    np.testing.assert_allclose(plate.pixels, pixels, atol=1 / 65535)
    assert plate.pixels[1, 1, 3] == 0.0 and plate.pixels[1, 1, 0] > 0


def test_atomic_success_leaves_only_the_frame(tmp_path):
    path = _write(tmp_path / "deep" / "er" / "out.0001.exr", _pixels())
    assert os.listdir(os.path.dirname(path)) == ["out.0001.exr"]


def test_replaces_an_existing_frame(tmp_path):
    path = _write(tmp_path / "out.png", np.zeros((2, 2, 3), np.float32))
    _write(path, np.ones((2, 2, 3), np.float32))
    assert read_plate(path, None).pixels.min() == 1.0


@pytest.mark.parametrize("name, match", [("out.jpg", "JPEG cannot hold 16-bit"),
                                         ("out.jpeg", "JPEG"), ("out.bogus", r"\.png")])
def test_unwritable_extension(tmp_path, name, match):
    with pytest.raises(OutputError, match=match):
        _write(tmp_path / name, _pixels())
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root ignores directory permissions")
def test_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="out.exr"):
            _write(locked / "out.exr", _pixels())
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_directory_blocked_by_a_file(tmp_path):
    # A file where a folder should be: no retry helps, so unsafe (exit 6), not a failed write.
    from bake_seq.sequences.errors import UnsafeTargetError

    (tmp_path / "notadir").write_bytes(b"")
    with pytest.raises(UnsafeTargetError, match="notadir"):
        _write(tmp_path / "notadir" / "out.exr", _pixels())


def test_failed_write_leaves_no_files(tmp_path, monkeypatch):
    # A writer that fails mid-way (as on a full disk) must leave nothing behind.
    real_create = oiio.ImageOutput.create

    class FailingOutput:
        def __init__(self, output):
            self._output = output

        def __getattr__(self, name):
            return getattr(self._output, name)

        def write_image(self, pixels):
            return False

    monkeypatch.setattr(oiio.ImageOutput, "create", lambda name: FailingOutput(real_create(name)))
    with pytest.raises(OutputError, match="failed to write"):
        _write(tmp_path / "out.exr", _pixels())
    assert os.listdir(tmp_path) == []


def test_nan_into_an_integer_format(tmp_path):
    pixels = _pixels()
    pixels[0, 0, 0] = np.nan
    with pytest.raises(OutputError, match="NaN"):
        _write(tmp_path / "out.png", pixels)
    assert os.listdir(tmp_path) == []


def test_channel_names_must_match(tmp_path):
    with pytest.raises(OutputError, match="shape"):
        _write(tmp_path / "out.exr", _pixels(), channel_names=["R", "G", "B"])


def test_stale_partial_of_a_dead_process_is_cleared_live_one_kept(tmp_path):
    import socket
    import subprocess

    from bake_seq.sequences.plate import write_plate
    from bake_seq.sequences.safe_write import HOST as _HOST

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".f.0001.exr.partial-{_HOST}-{dead.pid}.exr"
    live = tmp_path / f".f.0001.exr.partial-{_HOST}-{os.getppid()}.exr"
    other_host = tmp_path / f".f.0001.exr.partial-elsewhere-{dead.pid}.exr"
    for p in (stale, live, other_host):
        p.write_bytes(b"half a frame")
    write_plate(str(tmp_path / "f.0001.exr"), np.zeros((4, 4, 3), np.float32),
                channel_names=["R", "G", "B"], metadata={}, colorspace=None)
    assert not stale.exists() and live.exists() and other_host.exists()
    assert socket.gethostname()
