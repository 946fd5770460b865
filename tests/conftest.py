"""Shared fixtures: the real sample clips shipped with the package and the tests."""

import struct
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """DAVIS blackswan, first 30 frames, 854x480, H.264 at 24 fps."""
    return ROOT / "ddip_video" / "data" / "blackswan.mp4"


@pytest.fixture(scope="session")
def sample_masks() -> Path:
    """Ground-truth masks (0/255 PNGs) of the 30 frames of ``sample_clip``."""
    return TEST_DATA / "blackswan_masks"


@pytest.fixture(scope="session")
def second_clip() -> Path:
    """DAVIS car-shadow, first 30 frames, 427x240, H.264 at 24 fps."""
    return TEST_DATA / "car-shadow.mp4"


@pytest.fixture(scope="session")
def png_chunks():
    """A function: a PNG file's chunks by type (the last of each), their data only,
    each CRC checked."""
    def read(path) -> dict[str, bytes]:
        data, chunks, at = Path(path).read_bytes(), {}, 8
        while at < len(data):
            (length,) = struct.unpack(">I", data[at:at + 4])
            kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
            assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body)
            chunks[kind.decode()] = body
            at += 12 + length
        return chunks
    return read
