"""Decoding: probe a video file or a folder of images, stream its frames, or read it whole.

Every problem with the input is reported as an ``InputError`` that names the path, never
as a traceback from PyAV or OpenCV.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ddip_video.errors import InputError
from ddip_video.video.colour import ColourTags, colour_of

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_FPS = Fraction(24)

# FFmpeg opens text files (.txt, .nfo, ANSI art) as a "video" of rendered text.
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
# YUV matrices (AVCOL_SPC_*) by what swscale does with them: reads the tag itself (RGB, BT.709,
# FCC, BT.470BG, SMPTE 170M and 240M, BT.2020 NCL); untagged (unspecified, reserved); BT.2020
# constant luminance, read as its non-constant sibling (the nearest it has); the rest it cannot.
_SWSCALE_READS_TAG = frozenset({0, 1, 4, 5, 6, 7, 9})
_UNTAGGED_MATRIX = frozenset({2, 3})
_BT2020_CL = 10
_UNREADABLE_MATRIX = {8: "YCgCo", 11: "SMPTE ST 2085", 12: "chromaticity-derived", 13: "chromaticity-derived",
                      14: "ICtCp", 15: "IPT-C2", 16: "YCgCo-R", 17: "YCgCo-R"}
# swscale's default YUV -> RGB path rounds down and interpolates chroma coarsely: saturated
# colours came out 1-3 levels dark (BT.709 4:2:0; (30, 160, 90) read as (29, 157, 87)).
# Accurate rounding with full chroma interpolation reads them as an exact BT.709 decoder
# does, for some 7 ms more a 1080p frame. (Flags from PyAV 14 on; older ones read as before.)
try:
    from av.video.reformatter import Interpolation as _Interpolation
    _EXACT_COLOUR = _Interpolation.BILINEAR | _Interpolation.ACCURATE_RND | _Interpolation.FULL_CHR_H_INT
except (ImportError, AttributeError):
    _EXACT_COLOUR = None
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the image size); C4, C8 and CC are other segments.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file or image folder holds, as ``iter_frames`` will yield it."""

    path: Path
    width: int  # displayed width, after the rotation is applied
    height: int
    fps: Fraction
    num_frames: int  # exactly the number of frames iter_frames yields
    rotation: int  # clockwise degrees (0, 90, 180, 270) applied to show the frames upright
    has_audio: bool
    is_image_sequence: bool
    timecode: str | None = None  # the start timecode (HH:MM:SS:FF) a camera or editor recorded, if any
    pixel_aspect: Fraction = Fraction(1)  # a pixel's width over its height, as shown (anamorphic video: not 1)
    colour: ColourTags = ColourTags()  # primaries and transfer curve of the frames' RGB (BT.709 for images)
    full_chroma: bool = False  # colour at every pixel (4:4:4, RGB, images), not subsampled as in 4:2:0

    @property
    def duration_s(self) -> float:
        return float(self.num_frames / self.fps)


def probe(path, fps=None) -> VideoInfo:
    """Describe a video file or a folder of .jpg/.png images.

    ``fps`` is the frame rate of an image folder (default 24); a video file keeps its own
    rate and uses ``fps`` only if the container has none. The frame count of a video is
    found by decoding it (container counts can be missing or wrong); no frame is kept.
    """
    path = _existing(path)
    if path.is_dir():
        return _probe_folder(path, _parse_fps(fps))
    return _probe_video(path, fps)


def iter_frames(path, fps=None) -> Iterator[np.ndarray]:
    """Yield the frames one at a time as H x W x 3 uint8 RGB, upright (rotation applied).

    An image folder yields its images in natural file-name order (``2.png`` before ``10.png``).
    ``fps`` is accepted for symmetry with ``probe``: it does not change the frames.
    """
    path = _existing(path)
    if path.is_dir():
        return _iter_folder(path)
    return _iter_video(path)


def read_video(path, max_side=None, fps=None, info: VideoInfo | None = None) -> tuple[torch.Tensor, VideoInfo]:
    """Read every frame into a float32 tensor T x 3 x h x w in [0, 1].

    Frames are resized so that the longer side is at most ``max_side`` (None: full size).
    ``info``: ``probe(path, fps)`` where the caller already has it (probing decodes the clip).
    """
    info = info if info is not None else probe(path, fps)
    width, height = working_size(info.width, info.height, max_side)
    frames = torch.empty(info.num_frames, 3, height, width)
    count = 0
    for frame in iter_frames(path, fps):
        if count < info.num_frames:
            store_frame(frames[count], frame)
        count += 1
    if count != info.num_frames:
        raise InputError(f"{path}: the input changed while it was being read")
    return frames, info


def working_size(width, height, max_side) -> tuple[int, int]:
    """(w, h) scaled down so that the longer side is at most ``max_side``, aspect kept."""
    if max_side is not None and max_side < 1:
        raise InputError(f"the maximum side must be at least 1 pixel, not {max_side}")
    longer = max(width, height)
    if max_side is None or longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize T x C x h x w float frames to ``size`` = (width, height).

    Shrinking is antialiased (each output pixel averages the area it covers, so fine
    texture does not alias); enlarging is plain bilinear. Any number of channels works.
    """
    if frames.ndim != 4 or not frames.is_floating_point():
        raise ValueError(f"expected float frames T x C x H x W, got {frames.dtype} {tuple(frames.shape)}")
    width, height = size
    old_height, old_width = frames.shape[-2:]
    if (width, height) == (old_width, old_height):
        return frames
    shrinking = width < old_width or height < old_height
    return F.interpolate(
        frames, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
    )


def store_frame(target: torch.Tensor, frame: np.ndarray) -> None:
    """Write an H x W x 3 uint8 frame into a 3 x h x w float slot, resizing if needed."""
    chw = torch.from_numpy(frame).permute(2, 0, 1)
    if chw.shape == target.shape:
        target.copy_(chw).div_(255)  # converts in place: no full-size temporary
        return
    full = torch.empty(chw.shape).copy_(chw).div_(255)
    target.copy_(resize_frames(full[None], (target.shape[2], target.shape[1]))[0])


def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    return path


def _parse_fps(fps) -> Fraction:
    if fps is None:
        return DEFAULT_FPS
    try:
        rate = fps if isinstance(fps, Fraction) else Fraction(str(fps))
    except (ValueError, ZeroDivisionError):
        raise InputError(f"not a frame rate: {fps!r} (use e.g. 24, 29.97 or 30000/1001)") from None
    if rate <= 0:
        raise InputError(f"the frame rate must be positive, not {fps}")
    return rate


# ---- video files -----------------------------------------------------------------------


def _probe_video(path: Path, fps) -> VideoInfo:
    with _open_video(path) as (container, stream):
        count, width, height, rotation, colour, full_chroma = 0, 0, 0, 0, ColourTags(), False
        for frame in _decode(path, container, stream):
            if count == 0:
                width, height, rotation = frame.width, frame.height, _display_rotation(frame)
                colour, full_chroma = colour_of(frame), _full_chroma(frame)
                _yuv_matrix(frame, path)  # a matrix that cannot be read is refused before any work
            count += 1
        if count == 0:
            raise InputError(f"{path}: the video has zero frames")
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=_stream_rate(stream, fps),
            num_frames=count,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            is_image_sequence=False,
            timecode=_timecode(container, stream),
            pixel_aspect=_pixel_aspect(stream, rotation),
            colour=colour,
            full_chroma=full_chroma,
        )


def _full_chroma(frame) -> bool:
    """Whether the frame's pixel format has colour at every pixel (three planes or more,
    each the luma's size: 4:4:4, RGB), not subsampled (4:2:0, 4:2:2, 4:1:1) or none (gray)."""
    components = frame.format.components
    return len(components) >= 3 and all((c.width, c.height) == (components[0].width, components[0].height)
                                        for c in components)


def _pixel_aspect(stream, rotation: int) -> Fraction:
    """The sample aspect ratio (of the upright frame: a quarter turn inverts it); 1 where none is set."""
    ratio = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not ratio or ratio <= 0:
        return Fraction(1)
    ratio = Fraction(ratio)
    return 1 / ratio if rotation in (90, 270) else ratio


def _timecode(container, stream) -> str | None:
    """The start timecode as FFmpeg reports it: on the video stream, a timecode
    track (mov, mp4) or the container (MXF)."""
    for metadata in (stream.metadata, *(s.metadata for s in container.streams), container.metadata):
        if metadata.get("timecode"):
            return metadata["timecode"]
    return None


def _iter_video(path: Path) -> Iterator[np.ndarray]:
    with _open_video(path) as (container, stream):
        size = rotation = None
        for frame in _decode(path, container, stream):
            if size is None:
                size, rotation = (frame.width, frame.height), _display_rotation(frame)
            yield _rotate(_to_rgb(frame, size, path), rotation)


@contextlib.contextmanager
def _open_video(path: Path):
    if path.stat().st_size == 0:
        raise InputError(f"not a video: {path} (the file is empty)")
    try:
        # An absolute path can never be mistaken for a protocol such as "pipe:" or "http:".
        container = av.open(str(path.absolute()))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise InputError(f"not a video: {path} ({_reason(error)})") from None
    try:
        yield container, _video_stream(path, container)
    finally:
        container.close()


def _video_stream(path: Path, container):
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        found = "only audio" if container.streams.audio else "no video stream"
        raise InputError(f"not a video: {path} ({found})")
    stream = streams[0]
    if stream.codec_context is None:
        raise InputError(f"{path}: the video codec is not supported")
    if stream.codec_context.name in _TEXT_CODECS:
        raise InputError(f"not a video: {path} (a text file)")
    stream.thread_type = "AUTO"
    return stream


def _decode(path: Path, container, stream) -> Iterator[av.VideoFrame]:
    """Decode every frame; a damaged or missing packet is an error, not fewer frames."""
    truncated = f"{path}: the video is corrupt or truncated"
    # mp4/mov index every packet up front (after applying edit lists), so packets
    # missing from the end of a cut file show up as a shortfall.
    indexed = len(stream.index_entries) if container.format.name.startswith("mov") else 0
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.is_corrupt:  # e.g. the file ends inside this packet
                raise InputError(f"{truncated} (damaged data after frame {packets})")
            packets += packet.dts is not None  # not the final empty packet, which flushes
            yield from packet.decode()
    except av.FFmpegError as error:
        raise InputError(f"{truncated} ({_reason(error)})") from None
    if packets < indexed:
        raise InputError(f"{truncated} ({packets} of {indexed} frames present)")


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _stream_rate(stream, fallback) -> Fraction:
    """The constant rate that best describes the stream.

    The guessed rate is exact for constant-rate files (30000/1001, not 29.97...); when it
    disagrees with the average (variable-rate phone video), the average keeps the duration.
    Denominators are kept small (up to 1001) so that encoders can use the rate as a time base.
    """
    guessed, average = stream.guessed_rate, stream.average_rate
    if guessed and (not average or abs(guessed / average - 1) < 0.01):
        return Fraction(guessed).limit_denominator(1001)
    if average:
        return Fraction(average).limit_denominator(1001)
    return _parse_fps(fallback)


def _display_rotation(frame) -> int:
    # frame.rotation is the counter-clockwise angle of the display matrix.
    return round(-frame.rotation / 90) % 4 * 90


def _rotate(rgb: np.ndarray, clockwise_degrees: int) -> np.ndarray:
    if clockwise_degrees == 0:
        return rgb
    return np.ascontiguousarray(np.rot90(rgb, k=-clockwise_degrees // 90))


def _to_rgb(frame, size, path: Path) -> np.ndarray:
    """RGB with the frame's own color matrix and range (scaled to ``size`` if it changed)."""
    return frame.to_ndarray(
        format="rgb24",
        width=size[0],
        height=size[1],
        src_colorspace=_yuv_matrix(frame, path),
        src_color_range=frame.color_range,
        interpolation=_EXACT_COLOUR,
    )


def _yuv_matrix(frame, path: Path) -> str | None:
    """The matrix to read the frame's YUV with, as PyAV names it (None: the frame's tag)."""
    matrix = int(frame.colorspace)
    if matrix in _SWSCALE_READS_TAG:
        return None
    if matrix in _UNTAGGED_MATRIX:
        # What players assume for untagged video: BT.709 for HD, BT.601 for SD.
        return "itu709" if frame.width >= 1280 or frame.height > 576 else "itu601"
    if matrix == _BT2020_CL:
        return "bt2020"
    name = _UNREADABLE_MATRIX.get(matrix, f"number {matrix}")
    raise InputError(f"{path}: the video's colour matrix ({name}) is not one FFmpeg can turn into RGB")


# ---- image folders ---------------------------------------------------------------------


def _image_files(folder: Path) -> list[Path]:
    files = [
        f
        for f in folder.iterdir()
        # Hidden files include macOS "._name.jpg" resource forks, which are not images.
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file()
    ]
    if not files:
        raise InputError(f"{folder}/: no .jpg or .png images")
    return sorted(files, key=_natural_key)


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _probe_folder(folder: Path, fps: Fraction) -> VideoInfo:
    files = _image_files(folder)
    width, height = _image_size(files[0])
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"{files[0]}: its header says {width}x{height} pixels, more than an image is read "
                         f"(at most {MAX_IMAGE_PIXELS} pixels)")
    for file in files[1:]:
        size = _image_size(file)
        if size != (width, height):
            raise InputError(
                f"{folder}/: images differ in size ({file.name} is {size[0]}x{size[1]}, "
                f"expected {width}x{height})"
            )
    return VideoInfo(
        path=folder,
        width=width,
        height=height,
        fps=fps,
        num_frames=len(files),
        rotation=0,
        has_audio=False,
        is_image_sequence=True,
        full_chroma=True,
    )


# OpenCV refuses to decode images of more pixels than this (CV_IO_MAX_IMAGE_PIXELS)
MAX_IMAGE_PIXELS = 1 << 30


def _iter_folder(folder: Path) -> Iterator[np.ndarray]:
    files = _image_files(folder)
    expected = _image_size(files[0])
    for file in files:
        # imdecode of the bytes also works for paths imread cannot open (non-ASCII on Windows).
        # EXIF orientation is ignored so that every image has the size its header states.
        data = np.fromfile(file, dtype=np.uint8)
        image = _decode_image(file, data)
        if (image.shape[1], image.shape[0]) != expected:
            raise InputError(
                f"{folder}/: images differ in size ({file.name} is {image.shape[1]}x{image.shape[0]}, "
                f"expected {expected[0]}x{expected[1]})"
            )
        yield image


def _decode_image(file: Path, data: np.ndarray) -> np.ndarray:
    """The image in `data` (a file's bytes) as RGB, or an InputError naming the file.
    libpng and libjpeg's own warnings are kept off the terminal: the error says it."""
    try:
        with _c_stderr_silenced():
            image = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        image = None
    if image is None:
        raise InputError(f"{file}: not a readable image")
    return image


@contextlib.contextmanager
def _c_stderr_silenced():
    """File descriptor 2 sent to /dev/null for the block: what C libraries print there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _image_size(file: Path) -> tuple[int, int]:
    """(width, height) from the PNG or JPEG header, without decoding the image."""
    with open(file, "rb") as f:
        head = f.read(24)
        if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head.startswith(b"\xff\xd8"):
            f.seek(2)
            size = _jpeg_size(f)
            if size:
                return size
    raise InputError(f"{file}: not a readable PNG or JPEG image")


def _jpeg_size(f) -> tuple[int, int] | None:
    while True:
        if f.read(1) != b"\xff":
            return None
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            return None
        code = marker[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a payload
            continue
        header = f.read(7 if code in _JPEG_SOF else 2)
        if code in _JPEG_SOF:
            if len(header) < 7:
                return None
            height, width = struct.unpack(">HH", header[3:7])
            return (width, height) if width and height else None
        if len(header) < 2:
            return None
        f.seek(struct.unpack(">H", header)[0] - 2, 1)
