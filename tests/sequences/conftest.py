"""Helpers that write real image files with OpenImageIO, bypassing sequences."""
import numpy as np
import OpenImageIO as oiio
import pytest


def _write_raw(path, pixels, pixel_type, bits=None, attributes=(), channel_names=None):
    """Write `pixels` exactly as given (already in the file's pixel type)."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    height, width, channels = pixels.shape
    spec = oiio.ImageSpec(width, height, channels, pixel_type)
    if channel_names:
        spec.channelnames = tuple(channel_names)
    if bits:
        spec.attribute("oiio:BitsPerSample", bits)
    for name, type_name, value in attributes:
        spec.attribute(name, oiio.TypeDesc(type_name), value)
    output = oiio.ImageOutput.create(str(path))
    assert output.open(str(path), spec), output.geterror()
    assert output.write_image(pixels), output.geterror()
    assert output.close()
    output.geterror()
    return str(path)


def _replicated_codes(codes, bits):
    """The uint16 an n-bit code becomes when written through OIIO's 16-bit API."""
    return np.rint(np.asarray(codes, np.float64) * 65535 / (2**bits - 1)).astype(np.uint16)


@pytest.fixture
def write_raw():
    return _write_raw


@pytest.fixture
def replicated_codes():
    return _replicated_codes


@pytest.fixture
def touch(tmp_path):
    def make(*names):
        for name in names:
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        return tmp_path
    return make
