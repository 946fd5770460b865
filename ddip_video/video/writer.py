"""Streaming writer: frames are encoded on a background thread and the output appears
under its final name only once it is complete.
"""

from __future__ import annotations

import queue
import re
import secrets
import struct
import threading
import zlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from ddip_video.errors import InputError
from ddip_video.video.colour import ColourTags
from ddip_video.video.output import remove_path, replace_path, same_path

_STOP = object()  # queue item that ends the encoder thread

# kind -> (channel counts accepted, output suffixes accepted)
_KINDS = {
    "rgb": ((3,), (".mp4", ".mov")),
    "gray": ((1,), (".mp4", ".mov")),
    "rgba": ((4,), (".mov",)),
    "png": ((1, 3, 4), None),
}
_CONTAINERS = {".mp4": "mp4", ".mov": "mov"}
# mp4 can technically hold more (PCM, Vorbis, MP2), but common players do not play those
# from mp4; they are transcoded to AAC instead. mov takes whatever FFmpeg can mux into it.
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
# By channel count; AAC needs a named layout, which e.g. PCM in Matroska does not carry.
_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 8: "7.1"}
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


class StreamingWriter:
    """Write frames to a video (or a folder of PNGs) without holding the clip in memory.

    kind "rgb": H.264 in .mp4 (yuv420p; yuv444p when a side is odd, since 4:2:0 cannot
    hold an odd size exactly, and with ``full_chroma``, for an input that has colour at
    every pixel). "gray": the same with neutral chroma (a mask anyone can play).
    "rgba": ProRes 4444 with alpha in .mov, as editing software imports it.
    "png": a folder 00000.png, 00001.png, ... (1, 3 or 4 channels: gray, RGB, RGBA).

    The output is written as a hidden ``.<name>.partial-<random>`` beside ``path`` and
    renamed to ``path`` by ``close()``; ``abort()`` (or an exception in the ``with``
    block) deletes it. ``audio_from``: the input video, whose audio track (if any) is
    copied into the output, cut to the output's length. ``quality`` is the H.264 CRF
    (0 = lossless ... 51; 18 looks like the original); ProRes and PNG ignore it.
    ``timecode``: the start timecode (HH:MM:SS:FF, ';' before FF for drop-frame), written
    as a timecode track so that an editor lines the output up with its source; left out
    where it does not parse or the track cannot hold the frame rate. ``pixel_aspect``: the
    sample aspect ratio to tag the video with (an anamorphic source's, so that the output
    is shown the same shape). ``colour``: the primaries and transfer curve the frames' RGB
    is in (the input's: an HDR clip's HLG or PQ curve), which the video is tagged with,
    and the YUV matrix it is encoded with. PNG ignores all three.
    """

    def __init__(self, path, fps: Fraction, size: tuple[int, int], kind: str, audio_from=None,
                 queue_size: int = 8, quality: int = 18, timecode: str | None = None,
                 pixel_aspect: Fraction = Fraction(1), colour: ColourTags = ColourTags(),
                 full_chroma: bool = False):
        self.path = Path(path)
        self.fps = Fraction(fps)
        self.size = (int(size[0]), int(size[1]))
        self.kind = kind
        self._check_arguments(queue_size, quality)
        if audio_from is not None and same_path(self.path, Path(audio_from)):
            raise InputError(f"{self.path}: the output would overwrite the input")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(f".{self.path.name}.partial-{secrets.token_hex(4)}")
        try:
            if kind == "png":
                self._sink = _PngSink(self._partial)
            else:
                container_format = _CONTAINERS[self.path.suffix.lower()]
                self._sink = _VideoSink(
                    self._partial, container_format, self.fps, self.size, kind, quality, audio_from, timecode,
                    Fraction(pixel_aspect), colour, full_chroma
                )
        except BaseException:
            remove_path(self._partial)
            raise
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._cancelled = False
        self._frames = 0
        self._state = "open"  # then "closed" or "aborted"
        self._thread = threading.Thread(
            target=self._encode_loop, name=f"writer:{self.path.name}", daemon=True
        )
        self._thread.start()

    def _check_arguments(self, queue_size: int, quality: int) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, not {self.kind!r}")
        suffixes = _KINDS[self.kind][1]
        if suffixes and self.path.suffix.lower() not in suffixes:
            raise ValueError(f"a {self.kind} video must be named *{' or *'.join(suffixes)}: {self.path}")
        if min(self.size) < 1 or self.fps <= 0 or queue_size < 1 or not 0 <= quality <= 51:
            raise ValueError(
                f"bad writer settings: size {self.size}, fps {self.fps}, "
                f"queue {queue_size}, quality {quality}"
            )

    @property
    def frames_written(self) -> int:
        """Frames accepted by ``write()`` so far."""
        return self._frames

    def write(self, frame) -> None:
        """Queue one frame: H x W x C uint8, or C x H x W float in [0, 1] (clamped).

        Blocks only while the queue is full; raises the encoder thread's error, if any.
        """
        if self._state != "open":
            raise RuntimeError(f"write() after the writer was {self._state}")
        self._put(self._to_array(frame))
        self._frames += 1

    def close(self) -> Path:
        """Finish encoding, add the audio, and move the output to ``path``."""
        if self._state == "closed":
            return self.path
        if self._state == "aborted":
            raise RuntimeError("close() after abort()")
        try:
            if self._frames == 0:
                raise ValueError(f"{self.path}: no frames were written")
            self._put(_STOP)
            self._thread.join()
            self._raise_encoder_error()
            self._sink.finish()
            replace_path(self._partial, self.path)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return self.path

    def abort(self) -> None:
        """Stop encoding and delete everything written so far. Safe to call twice."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._cancelled = True
        _drain(self._queue)
        self._queue.put_nowait(_STOP)  # the queue is empty and only this thread adds to it
        self._thread.join()
        self._sink.discard()
        remove_path(self._partial)

    def __enter__(self) -> StreamingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def _encode_loop(self) -> None:
        try:
            while not self._cancelled:
                item = self._queue.get()
                if item is _STOP:
                    return
                self._sink.write(item)
        except BaseException as error:  # handed to the caller's next write() or close()
            self._error = error

    def _put(self, item) -> None:
        # Wait in short steps so that an encoder that died cannot leave us blocked forever.
        while True:
            self._raise_encoder_error()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise_encoder_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _to_array(self, frame) -> np.ndarray:
        array = _to_uint8_hwc(frame)
        height, width, channels = array.shape
        if (width, height) != self.size:
            expected = f"{self.size[0]}x{self.size[1]}"
            raise ValueError(f"frame is {width}x{height}, but {self.path.name} is {expected}")
        if channels not in _KINDS[self.kind][0]:
            raise ValueError(f"a {self.kind} frame cannot have {channels} channels")
        return array


def _to_uint8_hwc(frame) -> np.ndarray:
    """A private H x W x C uint8 copy of a uint8 H x W x C or float C x H x W frame."""
    if isinstance(frame, np.ndarray):
        frame = torch.from_numpy(frame)
    if not isinstance(frame, torch.Tensor):
        raise TypeError(f"a frame must be a torch.Tensor or numpy array, not {type(frame).__name__}")
    frame = frame.detach()
    if frame.ndim == 2:  # a single channel
        frame = frame[None] if frame.is_floating_point() else frame[..., None]
    if frame.ndim != 3:
        raise ValueError(f"a frame must have 2 or 3 dimensions, not shape {tuple(frame.shape)}")
    if frame.is_floating_point():
        # Quantise on the frame's device: a GPU frame then crosses to the CPU as bytes.
        frame = frame.clamp(0, 1).mul(255).round_().to(torch.uint8).permute(1, 2, 0)
    elif frame.dtype != torch.uint8:
        raise TypeError(f"a frame must be uint8 or float, not {frame.dtype}")
    return np.array(frame.cpu().numpy(), order="C")  # a copy: the caller may reuse its buffer


def save_png(path: Path, image: np.ndarray, colour: ColourTags = ColourTags()) -> None:
    """Writes a BGR(A) or gray uint8 image as a PNG. Encoded by OpenCV, written by Python,
    not cv2.imwrite, so that a failure (a full disk) raises an OSError with its cause, not
    just False. Pixels in other primaries or on another curve than BT.709's (video frames
    of an HDR clip) are tagged so (a cICP chunk), for viewers that show them as such."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode {Path(path).name} as PNG")
    data = encoded.tobytes()
    Path(path).write_bytes(data if colour == ColourTags() else _with_cicp(data, colour))


_PNG_IHDR_END = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, type, data and CRC


def _with_cicp(png: bytes, colour: ColourTags) -> bytes:
    """The PNG with a cICP chunk (PNG third edition: coding-independent code points,
    the video tags; matrix 0 for RGB, full range) right after its header."""
    body = b"cICP" + bytes([colour.primaries, colour.transfer, 0, 1])
    chunk = struct.pack(">I", 4) + body + struct.pack(">I", zlib.crc32(body))
    return png[:_PNG_IHDR_END] + chunk + png[_PNG_IHDR_END:]


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


class _PngSink:
    """Numbered PNGs in a folder."""

    _TO_BGR = {1: None, 3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}

    def __init__(self, folder: Path):
        self._folder = folder
        folder.mkdir()
        self._index = 0

    def write(self, array: np.ndarray) -> None:
        conversion = self._TO_BGR[array.shape[2]]
        image = array if conversion is None else cv2.cvtColor(array, conversion)
        save_png(self._folder / f"{self._index:05d}.png", image)
        self._index += 1

    def finish(self) -> None:
        pass

    def discard(self) -> None:
        pass


class _VideoSink:
    """One video stream (plus the input's audio) in an mp4 or mov container."""

    def __init__(self, file: Path, container_format: str, fps: Fraction, size, kind: str,
                 quality: int, audio_from, timecode: str | None = None, pixel_aspect: Fraction = Fraction(1),
                 colour: ColourTags = ColourTags(), full_chroma: bool = False):
        # faststart puts the index first, so that a browser can play while downloading.
        options = {"movflags": "+faststart"} if container_format == "mp4" else {}
        self._container = av.open(
            str(file.absolute()), "w", format=container_format, container_options=options
        )
        try:
            self._stream = _add_video_stream(self._container, fps, size, kind, quality, colour, full_chroma)
            if timecode_fits(timecode, fps):
                self._stream.metadata["timecode"] = timecode
            if pixel_aspect != 1:
                self._stream.codec_context.sample_aspect_ratio = pixel_aspect
            self._audio = _AudioCopy.open(audio_from, self._container, container_format)
        except BaseException:
            self._container.close()
            raise
        self._fps = fps
        self._colour = colour
        self._index = 0
        self._input_format = {"rgb": "rgb24", "gray": "gray", "rgba": "rgba"}[kind]

    def write(self, array: np.ndarray) -> None:
        image = array[..., 0] if self._input_format == "gray" else array
        frame = av.VideoFrame.from_ndarray(image, format=self._input_format)
        # Convert with the matrix the stream is tagged with (swscale defaults to BT.601).
        frame = frame.reformat(format=self._stream.pix_fmt, dst_colorspace=self._colour.swscale_matrix,
                               dst_color_range="MPEG")
        # ProRes writes each frame's own tags into its header (H.264 the stream's).
        frame.color_primaries, frame.color_trc = self._colour.primaries, self._colour.transfer
        frame.colorspace = self._colour.matrix
        frame.pts = self._index
        frame.time_base = 1 / self._fps
        self._container.mux(self._stream.encode(frame))
        self._index += 1
        if self._audio is not None:
            self._audio.copy_until(self._index / self._fps)

    def finish(self) -> None:
        self._container.mux(self._stream.encode(None))
        if self._audio is not None:
            self._audio.finish(self._index / self._fps)
        self._container.close()

    def discard(self) -> None:
        if self._audio is not None:
            self._audio.close()
        try:
            self._container.close()
        except (av.FFmpegError, OSError):  # e.g. nothing was ever encoded; the file is deleted anyway
            pass


# HH:MM:SS:FF; ';' or '.' before the frames for drop-frame.
_TIMECODE = re.compile(r"\d{2}:\d{2}:\d{2}[:;.]\d{2,3}")
_TIMECODE_MAX_FPS = 255  # a timecode track counts the frames of a second in one byte


def timecode_fits(timecode: str | None, fps: Fraction) -> bool:
    """Whether a timecode track can hold `timecode` at `fps` (FFmpeg refuses the whole
    file, not just the track, for a rate over 255)."""
    return bool(timecode) and _TIMECODE.fullmatch(timecode) is not None and 0 < round(fps) <= _TIMECODE_MAX_FPS


def _add_video_stream(container, fps: Fraction, size, kind: str, quality: int, colour: ColourTags,
                      full_chroma: bool = False):
    width, height = size
    if kind == "rgba":
        stream = container.add_stream("prores_ks", rate=fps)
        stream.pix_fmt = "yuva444p10le"
        stream.options = {"profile": "4444", "alpha_bits": "16"}
    else:
        stream = container.add_stream("libx264", rate=fps)
        # 4:2:0 subsamples chroma in 2x2 blocks, so H.264 cannot store an odd size in it.
        subsampled = width % 2 == 0 and height % 2 == 0 and not (full_chroma and kind == "rgb")
        stream.pix_fmt = "yuv420p" if subsampled else "yuv444p"
        stream.options = {"crf": str(quality), "preset": "medium"}
    stream.width, stream.height = width, height
    stream.codec_context.time_base = 1 / fps
    context = stream.codec_context
    context.color_primaries, context.color_trc, context.colorspace = colour.primaries, colour.transfer, colour.matrix
    context.color_range = _LIMITED_RANGE
    return stream


class _AudioCopy:
    """Copies the input's audio track into the output, interleaved with the video.

    Packets are copied as they are (remux) when the container can hold the codec, else
    decoded and encoded to AAC. Times are kept relative to the input's first video frame.
    """

    @classmethod
    def open(cls, source, container, container_format: str) -> _AudioCopy | None:
        if source is None or not Path(source).is_file():
            return None
        try:
            source_container = av.open(str(Path(source).absolute()))
        except (av.FFmpegError, OSError) as error:
            raise InputError(f"cannot read the audio of {source} ({error})") from None
        if not source_container.streams.audio:
            source_container.close()
            return None
        return cls(source_container, container, container_format)

    def __init__(self, source_container, container, container_format: str):
        self._source = source_container
        self._in = source_container.streams.audio[0]
        codec = self._in.codec_context.name
        remux = codec in _MP4_AUDIO if container_format == "mp4" else codec in container.supported_codecs
        if remux:
            self._out = container.add_stream_from_template(self._in)
        else:
            layout = _AAC_LAYOUTS.get(self._in.layout.nb_channels, "stereo")
            self._out = container.add_stream("aac", rate=aac_rate(self._in.sample_rate), layout=layout)
        self._container = container
        self._transcode = not remux
        self._start = _video_start(source_container)
        self._packets = source_container.demux(self._in)
        self._pending = None

    def copy_until(self, seconds: Fraction) -> None:
        """Copy the audio that starts before ``seconds`` (output time)."""
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.size == 0 or packet.pts is None:  # demuxer's end-of-stream marker
                continue
            start = packet.pts * packet.time_base - self._start
            if start >= seconds:
                self._pending = packet
                return
            # Audio before the first video frame keeps its negative time (AAC's first packet
            # primes the decoder); the muxer's edit list starts playback at zero.
            self._copy(packet, round(self._start / packet.time_base))

    def _copy(self, packet, offset: int) -> None:
        if not self._transcode:
            packet.pts -= offset
            if packet.dts is not None:
                packet.dts -= offset
            packet.stream = self._out
            self._container.mux(packet)
            return
        for frame in packet.decode():
            if frame.pts is not None:
                frame.pts -= offset
            self._container.mux(self._out.encode(frame))

    def finish(self, seconds: Fraction) -> None:
        self.copy_until(seconds)
        if self._transcode:
            self._container.mux(self._out.encode(None))
        self.close()

    def close(self) -> None:
        self._source.close()


# The sample rates the AAC encoder takes (MPEG-4 audio's sampling frequency table).
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def aac_rate(rate: int) -> int:
    """The rate audio of `rate` Hz is encoded at: its own where AAC takes it, else the
    nearest AAC rate at or above it (48 kHz for anything above 96 kHz: beyond hearing),
    the encoder resampling to it."""
    if rate in AAC_RATES:
        return rate
    if rate > AAC_RATES[0]:
        return 48000
    return min(r for r in AAC_RATES if r >= rate)


def _video_start(container) -> Fraction:
    """Start time in seconds of the input's video, which the output's frame 0 lines up with."""
    video = container.streams.video
    if not video or video[0].start_time is None:
        return Fraction(0)
    return video[0].start_time * video[0].time_base
