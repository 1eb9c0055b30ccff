import numpy as np
import OpenImageIO as oiio
import pytest

from bake_seq.sequences.errors import PlateError
from bake_seq.sequences.plate import read_header, read_plate

RAMP = {8: np.arange(0, 256, 5), 10: np.array([0, 1, 383, 512, 700, 1022, 1023]),
        12: np.array([0, 1, 1000, 2048, 4094, 4095]), 16: np.array([0, 1, 24535, 65534, 65535])}


def _rgb_row(codes, dtype):
    row = np.asarray(codes, dtype)[np.newaxis, :, np.newaxis]
    return np.ascontiguousarray(np.repeat(row, 3, axis=2))


def _assert_exact_codes(plate, codes, bits):
    assert plate.pixels.dtype == np.float32 and plate.pixels.flags.c_contiguous
    expected = (np.asarray(codes, np.float64) / (2**bits - 1)).astype(np.float32)
    np.testing.assert_array_equal(plate.pixels[0, :, 0], expected)
    np.testing.assert_array_equal(plate.pixels[0, :, 2], expected)


@pytest.mark.parametrize("bits", [10, 12, 16])
def test_dpx_codes_come_back_exactly(tmp_path, write_raw, replicated_codes, bits):
    codes = RAMP[bits]
    path = write_raw(tmp_path / "p.dpx", _rgb_row(replicated_codes(codes, bits), np.uint16),
                     oiio.UINT16, bits=bits)
    header = read_header(path)
    assert (header.pixel_type, header.bits_per_sample, header.is_float) == ("uint16", bits, False)
    _assert_exact_codes(read_plate(path, None), codes, bits)
    _assert_exact_codes(read_plate(path, bits), codes, bits)


def test_oiio_bit_replicates_10_bit_codes(tmp_path, write_raw, replicated_codes):
    # Why read_plate rescales instead of dividing OIIO's float by 65535.
    path = write_raw(tmp_path / "p.dpx", _rgb_row(replicated_codes([383], 10), np.uint16),
                     oiio.UINT16, bits=10)
    image = oiio.ImageInput.open(path)
    assert image.read_image(oiio.UINT16)[0, 0, 0] == 24535  # 383 << 6 | 383 >> 4
    image.close()


@pytest.mark.parametrize("ext, bits, dtype, pixel_type", [
    ("png", 8, np.uint8, oiio.UINT8), ("png", 16, np.uint16, oiio.UINT16),
    ("tif", 8, np.uint8, oiio.UINT8), ("tif", 16, np.uint16, oiio.UINT16),
])
def test_png_and_tiff(tmp_path, write_raw, ext, bits, dtype, pixel_type):
    path = write_raw(tmp_path / f"p.{ext}", _rgb_row(RAMP[bits], dtype), pixel_type)
    assert read_header(path).bits_per_sample == bits
    _assert_exact_codes(read_plate(path, None), RAMP[bits], bits)


def test_png16_holding_10_bit_codes(tmp_path, write_raw):
    codes = RAMP[10]
    path = write_raw(tmp_path / "p.png", _rgb_row(codes, np.uint16), oiio.UINT16)
    _assert_exact_codes(read_plate(path, 10), codes, 10)
    assert read_plate(path, 10).pixels.max() == 1.0


def test_codes_beyond_the_bit_depth_are_an_error(tmp_path, write_raw):
    path = write_raw(tmp_path / "p.png", _rgb_row([0, 1024, 4000], np.uint16), oiio.UINT16)
    with pytest.raises(PlateError, match=r"up to 4000 exceed the 10-bit range.*header says 16") as caught:
        read_plate(path, 10)
    assert caught.value.path == path


def test_jpeg(tmp_path, write_raw):
    grey = np.full((8, 8, 3), 128, np.uint8)
    path = write_raw(tmp_path / "p.jpg", grey, oiio.UINT8)
    plate = read_plate(path, None)
    assert plate.pixels.shape == (8, 8, 3) and plate.header.bits_per_sample == 8
    assert abs(plate.pixels.mean() - 128 / 255) < 2 / 255


@pytest.mark.parametrize("pixel_type, name, bits", [(oiio.HALF, "half", 16), (oiio.FLOAT, "float", 32)])
def test_exr_values_as_stored(tmp_path, write_raw, pixel_type, name, bits):
    values = np.array([[[-0.5, 0.25, 4.0], [1000.0, 0.0, 1.0]]], np.float32)
    path = write_raw(tmp_path / "p.exr", values, pixel_type)
    plate = read_plate(path, 10)  # bit depth means nothing for float files
    assert (plate.header.pixel_type, plate.header.is_float, plate.header.bits_per_sample) == (name, True, bits)
    np.testing.assert_array_equal(plate.pixels, values)


@pytest.mark.parametrize("names", [["Y"], ["Y", "A"], ["R", "G", "B", "A"]])
def test_channel_counts_and_alpha(tmp_path, write_raw, names):
    values = np.linspace(0, 1, 4 * 2 * len(names), dtype=np.float32).reshape(2, 4, len(names))
    path = write_raw(tmp_path / "p.exr", values, oiio.FLOAT, channel_names=names)
    plate = read_plate(path, None)
    assert plate.pixels.shape == (2, 4, len(names))
    assert plate.header.channel_names == names
    assert plate.header.alpha_channel == (names.index("A") if "A" in names else -1)
    np.testing.assert_array_equal(plate.pixels, values)


def test_png_alpha_is_not_premultiplied(tmp_path, write_raw):
    rgba = np.array([[[200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    # The hint stops OIIO's PNG writer dividing colour by alpha.
    path = write_raw(tmp_path / "p.png", rgba, oiio.UINT8,
                     attributes=[("oiio:UnassociatedAlpha", "int", 1)])
    plate = read_plate(path, None)
    np.testing.assert_array_equal(plate.pixels, (rgba / 255.0).astype(np.float32))


def test_more_than_four_channels(tmp_path, write_raw):
    names = ["R", "G", "B", "A", "Z"]
    path = write_raw(tmp_path / "p.exr", np.zeros((2, 2, 5), np.float32), oiio.HALF, channel_names=names)
    with pytest.raises(PlateError, match=r"R,G,B,A,Z.*--ch R,G,B,A"):
        read_plate(path, None)


def test_metadata_and_colorspace_tag(tmp_path, write_raw):
    path = write_raw(tmp_path / "p.exr", np.zeros((2, 2, 3), np.float32), oiio.HALF,
                     attributes=[("smpte:TimeCode", "timecode", (0x01020304, 0)),
                                 ("oiio:ColorSpace", "string", "lin_rec709_scene")])
    header = read_header(path)
    assert header.metadata["smpte:TimeCode"] == (0x01020304, 0)
    assert header.colorspace_tag == "lin_rec709_scene"
    assert (header.width, header.height, header.channels) == (2, 2, 3)


def _good_file(tmp_path, write_raw, replicated_codes, ext):
    rng = np.random.default_rng(0)
    if ext == "exr":
        return write_raw(tmp_path / "p.exr", rng.random((64, 64, 3), np.float32), oiio.HALF)
    codes = replicated_codes(rng.integers(0, 1024, (64, 64, 3)), 10)
    return write_raw(tmp_path / f"p.{ext}", codes, oiio.UINT16, bits=10 if ext == "dpx" else None)


@pytest.mark.parametrize("ext", ["dpx", "png", "exr", "tif"])
def test_truncated_file(tmp_path, write_raw, replicated_codes, ext):
    path = _good_file(tmp_path, write_raw, replicated_codes, ext)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(PlateError) as caught:
        read_plate(path, None)
    assert caught.value.path == path and "\n" not in str(caught.value)


@pytest.mark.parametrize("ext", ["dpx", "png", "exr", "tif", "jpg"])
def test_empty_and_garbage_files(tmp_path, ext):
    empty, garbage = tmp_path / f"empty.{ext}", tmp_path / f"garbage.{ext}"
    empty.write_bytes(b"")
    garbage.write_bytes(b"not an image at all" * 10)
    for path in (empty, garbage):
        with pytest.raises(PlateError, match=str(path)):
            read_plate(str(path), None)
        with pytest.raises(PlateError):
            read_header(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(PlateError, match="file not found"):
        read_header(str(tmp_path / "nope.exr"))


@pytest.mark.parametrize("dtype, header_bits, depth", [(np.uint8, 8, None), (np.uint16, 10, None), (np.uint16, 16, 12),
                                                       (np.uint16, 12, None), (np.uint32, 32, None)])
def test_normalising_codes_needs_no_float64_frame_and_gives_the_same_values(dtype, header_bits, depth):
    from bake_seq.sequences.plate import Header, _normalise

    info = np.iinfo(dtype)
    rng = np.random.default_rng(header_bits)
    top = (2 ** header_bits - 1) if depth is None else (2 ** depth - 1)
    codes = rng.integers(0, top + 1, size=(70, 33, 3), dtype=np.uint64)
    # what OIIO hands over: n-bit codes widened to the container by bit replication
    container = np.rint(codes * (info.max / (2 ** header_bits - 1))).astype(dtype)
    header = Header(path="x", width=33, height=70, channels=3, channel_names=["R", "G", "B"], alpha_channel=-1,
                    pixel_type=str(dtype), bits_per_sample=header_bits, is_float=False, colorspace_tag=None, metadata={})
    got = _normalise(header, container, depth)
    scale = (2.0 ** header_bits - 1) / (2.0 ** (container.dtype.itemsize * 8) - 1)
    want = (np.rint(container.astype(np.float64) * scale) / (2.0 ** (depth or header_bits) - 1)).astype(np.float32)
    assert got.dtype == np.float32 and np.array_equal(got, want)
