"""Shared fixtures: the real sample clips shipped with the package and the tests."""

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
