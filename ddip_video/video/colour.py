"""The colour description a video carries (primaries, transfer curve, YUV matrix), so
that the outputs are tagged as their input is.

The frames pass through the model as the input's RGB values, still in its primaries and
on its transfer curve (an HLG or PQ curve for HDR video from a phone): tagged BT.709, an
editor would show such layers washed out and off in colour beside their source.
"""

from __future__ import annotations

from dataclasses import dataclass

# FFmpeg's enum values (libavutil/pixfmt.h), as PyAV reports them.
BT709 = 1  # AVCOL_PRI_BT709 = AVCOL_TRC_BT709 = AVCOL_SPC_BT709
_UNSPECIFIED = 2
_RESERVED = (0, 3)  # AVCOL_*_RESERVED0 and AVCOL_*_RESERVED
_BT2020_PRIMARIES = 9
_BT2020_MATRICES = (9, 10)  # non-constant and constant luminance
_BT2020_NCL = 9
_SWSCALE_MATRIX = {BT709: "itu709", _BT2020_NCL: "bt2020"}


@dataclass(frozen=True)
class ColourTags:
    """What an output video is tagged with. The matrix is how the writer turns its RGB
    into YUV (BT.709, or BT.2020 for BT.2020 video, as HDR deliverables expect)."""

    primaries: int = BT709
    transfer: int = BT709
    matrix: int = BT709

    def __post_init__(self):
        if self.matrix not in _SWSCALE_MATRIX:
            raise ValueError(f"the writer encodes with BT.709's or BT.2020's matrix (1 or 9), not {self.matrix}")

    @property
    def swscale_matrix(self) -> str:
        """The name PyAV's reformat gives the matrix."""
        return _SWSCALE_MATRIX[self.matrix]


def colour_of(frame) -> ColourTags:
    """The tags for outputs made from a decoded frame: its primaries and transfer curve
    where it states them (BT.709 where not, which is what players assume for untagged
    video and what the outputs were always tagged), and the matrix to go with them."""
    primaries, transfer = _stated(frame.color_primaries), _stated(frame.color_trc)
    matrix = _BT2020_NCL if primaries == _BT2020_PRIMARIES and frame.colorspace in _BT2020_MATRICES else BT709
    return ColourTags(primaries, transfer, matrix)


def _stated(value) -> int:
    value = int(value)
    return BT709 if value == _UNSPECIFIED or value in _RESERVED else value
