"""Video I/O: decoding, the streaming writer, and all-or-nothing output folders.

Codec tolerances (mean absolute error per channel, on 0..255), measured on the real
blackswan frames, whose rippling water is about the hardest content for H.264:
  rgb H.264 at the default quality (CRF 18)  < 4   (measured 2.2 at 854x480, 3.0 at 427x241)
  gray H.264 (binary masks)                  < 1   (measured 0.1)
  rgba ProRes 4444: colour < 1, alpha < 2    (measured 0.07 and 0.01)
  png                                        exact
"""

import errno
import hashlib
import os
import shutil
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from ddip_video.errors import InputError
from ddip_video.video.colour import colour_of
from ddip_video.video import (
    ColourTags,
    StagedOutputDir,
    StreamingWriter,
    VideoInfo,
    iter_frames,
    probe,
    read_video,
    resize_frames,
    save_png,
    working_size,
)

NTSC = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clip_frames(sample_clip) -> torch.Tensor:
    """The first 8 frames of the sample clip, 8 x 3 x 480 x 854 float."""
    frames = [torch.from_numpy(f).permute(2, 0, 1) for _, f in zip(range(8), iter_frames(sample_clip))]
    return torch.stack(frames).float() / 255


@pytest.fixture(scope="module")
def clip_masks(sample_masks) -> torch.Tensor:
    """The ground-truth masks of those frames, 8 x 1 x 480 x 854 float (0 or 1)."""
    masks = [cv2.imread(str(sample_masks / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE) for i in range(8)]
    return torch.from_numpy(np.stack(masks))[:, None].float() / 255


def write_all(path, frames, kind, fps=Fraction(24), **options) -> Path:
    size = (frames.shape[-1], frames.shape[-2])
    with StreamingWriter(path, fps, size, kind, **options) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.frames_written == len(frames)
    return path


def decode_rgba(path) -> torch.Tensor:
    """All frames as T x 4 x H x W float, decoded by PyAV directly (alpha included)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgba") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


def mean_error_255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean() * 255)


def quantised(frames: torch.Tensor) -> torch.Tensor:
    return (frames * 255).round() / 255


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_video(path, size=(64, 48), frames=10, fps=24, rotation=None, audio_codec=None,
               container_format=None, matrix=None):
    """A small synthetic clip: frame i is gray level 20*i (mod 256) with a red 8x8 top-left corner.

    ``rotation``: counter-clockwise display-matrix angle; ``audio_codec``: add a 440 Hz sine;
    ``matrix``: the YUV matrix to tag (AVCOL_SPC_*; the frames are converted with BT.601's).
    """
    width, height = size
    with av.open(str(path), "w", format=container_format) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if matrix is not None:
            video.codec_context.colorspace = matrix
        if rotation is not None:
            video.set_display_rotation(rotation)
        audio = container.add_stream(audio_codec, rate=44100, layout="mono") if audio_codec else None
        sample = 0
        for i in range(frames):
            image = np.full((height, width, 3), 20 * i % 256, np.uint8)
            image[:8, :8] = (255, 0, 0)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(video.encode(frame))
            while audio is not None and sample < (i + 1) * 44100 / fps:
                sine = 0.3 * np.sin(2 * np.pi * 440 * np.arange(sample, sample + 1024) / 44100)
                samples = sine.astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 44100, sample, Fraction(1, 44100)
                container.mux(audio.encode(chunk))
                sample += 1024
        container.mux(video.encode(None))
        if audio is not None:
            container.mux(audio.encode(None))
    return path


def audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def audio_seconds(path) -> float | None:
    """Decoded length of the first audio stream, or None without one."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.sample_rate


# ---- reading -----------------------------------------------------------------------------


def test_probe_sample_clip_and_input_untouched(sample_clip):
    digest = file_digest(sample_clip)
    info = probe(sample_clip)
    assert info == VideoInfo(sample_clip, 854, 480, Fraction(24), 30, 0, False, False)
    assert info.duration_s == pytest.approx(1.25)
    _, read_info = read_video(sample_clip)
    assert read_info == info
    assert file_digest(sample_clip) == digest


def test_iter_frames_yields_exactly_num_frames(second_clip):
    info = probe(second_clip)
    frames = list(iter_frames(second_clip))
    assert len(frames) == info.num_frames == 30
    assert all(f.shape == (240, 427, 3) and f.dtype == np.uint8 for f in frames)


def test_read_video_values_and_max_side(second_clip):
    full, info = read_video(second_clip)
    assert full.shape == (30, 3, 240, 427) and full.dtype == torch.float32
    assert 0 <= float(full.min()) and float(full.max()) <= 1
    first = torch.from_numpy(next(iter_frames(second_clip))).permute(2, 0, 1).float() / 255
    assert torch.equal(full[0], first)

    small, _ = read_video(second_clip, max_side=120)
    assert small.shape == (30, 3, 67, 120)
    assert torch.allclose(small, resize_frames(full, (120, 67)), atol=1e-6)


@pytest.mark.parametrize(
    "width, height, max_side, expected",
    [
        (854, 480, None, (854, 480)),
        (854, 480, 854, (854, 480)),
        (854, 480, 2000, (854, 480)),
        (854, 480, 427, (427, 240)),
        (480, 854, 427, (240, 427)),
        (1920, 1080, 512, (512, 288)),
        (1000, 3, 100, (100, 1)),  # never below one pixel
    ],
)
def test_working_size(width, height, max_side, expected):
    assert working_size(width, height, max_side) == expected


def test_working_size_rejects_nonpositive_max_side():
    with pytest.raises(InputError, match="at least 1 pixel"):
        working_size(854, 480, 0)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_resize_frames(channels):
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2  # 1-pixel checkerboard
    frames = checker.float().expand(2, channels, 64, 64).contiguous()
    # Shrinking averages the covered area, so fine texture turns gray instead of aliasing.
    small = resize_frames(frames, (16, 8))
    assert small.shape == (2, channels, 8, 16)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.02)
    # Enlarging is bilinear: a constant stays constant, a ramp stays monotonic.
    ramp = torch.linspace(0, 1, 8).expand(1, channels, 4, 8)
    big = resize_frames(ramp, (32, 16))
    assert big.shape == (1, channels, 16, 32)
    assert (big[..., 1:] >= big[..., :-1] - 1e-6).all()
    assert resize_frames(frames, (64, 64)) is frames


def test_image_folder_natural_order_and_fps(tmp_path):
    for number in (10, 2, 1):  # 1, 2, 10 in natural order (plain sorting would give 1, 10, 2)
        image = np.full((24, 32, 3), number * 20, np.uint8)
        suffix = ".jpg" if number == 2 else ".png"
        cv2.imwrite(str(tmp_path / f"{number}{suffix}"), image)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._1.png").write_bytes(b"macOS resource fork")

    info = probe(tmp_path)
    assert (info.width, info.height, info.num_frames, info.fps) == (32, 24, 3, Fraction(24))
    assert info.is_image_sequence and not info.has_audio
    assert probe(tmp_path, fps="30000/1001").fps == NTSC
    assert probe(tmp_path, fps=29.97).fps == Fraction(2997, 100)
    levels = [int(frame.mean()) for frame in iter_frames(tmp_path)]
    assert levels == pytest.approx([20, 40, 200], abs=2)


def test_image_folder_of_gray_masks(sample_masks):
    info = probe(sample_masks)
    assert (info.width, info.height, info.num_frames) == (854, 480, 30)
    frame = next(iter_frames(sample_masks))
    assert frame.shape == (480, 854, 3)
    assert set(np.unique(frame)) <= {0, 255} and (frame[..., 0] == frame[..., 2]).all()


@pytest.mark.parametrize(
    "ccw, clockwise, marker",
    [
        (0, 0, (0, 0)),
        (-90, 90, (0, -1)),  # the usual portrait phone video: turn 90 degrees clockwise
        (90, 270, (-1, 0)),
        (180, 180, (-1, -1)),
    ],
)
def test_rotation_from_display_matrix(tmp_path, ccw, clockwise, marker):
    path = make_video(tmp_path / "rotated.mp4", size=(64, 48), frames=3, rotation=ccw)
    info = probe(path)
    assert info.rotation == clockwise
    expected_size = (48, 64) if clockwise in (90, 270) else (64, 48)
    assert (info.width, info.height) == expected_size
    frame = next(iter_frames(path))
    assert frame.shape == (expected_size[1], expected_size[0], 3)
    # The red top-left corner of the stored frame ends up in the rotated corner.
    red = frame[marker[0], marker[1]]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert read_video(path)[0].shape == (3, 3, expected_size[1], expected_size[0])


def test_variable_frame_rate_gets_its_average_rate(tmp_path):
    path = tmp_path / "phone.mp4"
    ticks = np.cumsum(np.random.default_rng(0).integers(2100, 4500, 40))  # ~27 fps on a 90 kHz clock
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 90000)
        for i, tick in enumerate(ticks):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 6 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(tick), Fraction(1, 90000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    info = probe(path)
    assert info.num_frames == 40
    assert info.fps.denominator <= 1001
    assert float(info.fps) == pytest.approx(39 * 90000 / (ticks[-1] - ticks[0]), rel=0.05)


def make_bad_input(kind: str, tmp_path: Path, sample_clip: Path) -> Path:
    if kind == "missing":
        return tmp_path / "clip.mp4"
    if kind == "empty folder":
        (tmp_path / "frames").mkdir()
        (tmp_path / "frames" / "readme.txt").write_text("no images here")
        return tmp_path / "frames"
    if kind == "text file":
        path = tmp_path / "notes.txt"
        path.write_text("just some notes\n" * 50)
        return path
    if kind == "empty file":
        path = tmp_path / "empty.mp4"
        path.touch()
        return path
    if kind == "garbage":
        path = tmp_path / "garbage.mp4"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes())
        return path
    if kind == "truncated, index lost":  # the index (moov box) is at the end and cut off
        data = make_video(tmp_path / "whole.mp4", frames=30).read_bytes()
        path = tmp_path / "cut.mp4"
        path.write_bytes(data[: len(data) // 2])
        return path
    if kind == "truncated, index kept":  # faststart file: the index survives, frames do not
        data = sample_clip.read_bytes()
        path = tmp_path / "cut.mp4"
        path.write_bytes(data[: len(data) * 2 // 3])
        return path
    if kind == "truncated between frames":
        path = tmp_path / "cut.mp4"
        with av.open(str(sample_clip)) as container:
            packets = sorted((p.pos, p.size) for p in container.demux(video=0) if p.size)
        position, size = packets[20]
        path.write_bytes(sample_clip.read_bytes()[: position + size])  # ends exactly after a frame
        return path
    if kind == "zero frames":
        path = tmp_path / "zero.avi"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=24)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            container.start_encoding()
        return path
    if kind == "audio only":
        path = tmp_path / "song.m4a"
        with av.open(str(path), "w", format="mp4") as container:
            stream = container.add_stream("aac", rate=44100, layout="mono")
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, 0
            container.mux(stream.encode(chunk))
            container.mux(stream.encode(None))
        return path
    if kind == "colour matrix":
        return make_video(tmp_path / "ictcp.mp4", frames=3, matrix=14)  # ICtCp, which swscale cannot read
    if kind == "images differ in size":
        folder = tmp_path / "frames"
        folder.mkdir()
        for i in range(4):
            size = (480, 640) if i == 3 else (480, 854)
            cv2.imwrite(str(folder / f"{i:05d}.png"), np.zeros(size, np.uint8))
        return folder
    if kind == "broken image":
        folder = tmp_path / "frames"
        folder.mkdir()
        cv2.imwrite(str(folder / "00000.png"), np.zeros((48, 64), np.uint8))
        (folder / "00001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        return folder
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", r"^no such file or folder: .*clip\.mp4$"),
        ("empty folder", r"frames/: no \.jpg or \.png images"),
        ("text file", r"^not a video: .*notes\.txt \(a text file\)"),
        ("empty file", r"^not a video: .*empty\.mp4 \(the file is empty\)"),
        ("garbage", r"^not a video: .*garbage\.mp4 \("),
        ("truncated, index lost", r"^not a video: .*cut\.mp4 \("),
        ("truncated, index kept", r"cut\.mp4: the video is corrupt or truncated \(damaged data"),
        ("truncated between frames", r"cut\.mp4: the video is corrupt or truncated \(21 of 30 frames"),
        ("zero frames", r"zero\.avi: the video has zero frames"),
        ("audio only", r"^not a video: .*song\.m4a \(only audio\)"),
        ("colour matrix", r"ictcp\.mp4: the video's colour matrix \(ICtCp\) is not one FFmpeg can turn into RGB$"),
        (
            "images differ in size",
            r"frames/: images differ in size \(00003\.png is 640x480, expected 854x480\)",
        ),
        ("broken image", r"00001\.jpg: not a readable PNG or JPEG image"),
    ],
)
def test_bad_input_is_one_clear_input_error(tmp_path, sample_clip, kind, message):
    path = make_bad_input(kind, tmp_path, sample_clip)
    for read in (probe, read_video):
        with pytest.raises(InputError, match=message) as caught:
            read(path)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fps", ["fast", 0, -24, "1/0"])
def test_bad_frame_rate_for_folder(sample_masks, fps):
    with pytest.raises(InputError, match="frame rate"):
        probe(sample_masks, fps=fps)


# ---- writing -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(854, 480), (427, 241)])
@pytest.mark.parametrize("fps", [Fraction(24), NTSC])
def test_rgb_round_trip(tmp_path, clip_frames, size, fps):
    frames = resize_frames(clip_frames, size)
    path = write_all(tmp_path / "layer.mp4", frames, "rgb", fps=fps)
    back, info = read_video(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (8, *size, fps)
    assert mean_error_255(back, frames) < 4
    with av.open(str(path)) as container:
        expected_pix_fmt = "yuv420p" if size[1] % 2 == 0 and size[0] % 2 == 0 else "yuv444p"
        assert container.streams.video[0].codec_context.pix_fmt == expected_pix_fmt


def test_full_chroma_is_kept(tmp_path, clip_frames, clip_masks):
    """An input with colour at every pixel (4:4:4) gives 4:4:4 layers; 4:2:0 stays 4:2:0,
    and a mask (no colour) is 4:2:0 either way."""
    frames = resize_frames(clip_frames[:3], (64, 36))
    full = write_all(tmp_path / "full.mp4", frames, "rgb", full_chroma=True)
    half = write_all(tmp_path / "half.mp4", frames, "rgb")
    mask = write_all(tmp_path / "mask.mp4", resize_frames(clip_masks[:3], (64, 36)), "gray", full_chroma=True)
    formats = {}
    for path in (full, half, mask):
        with av.open(str(path)) as container:
            formats[path.stem] = container.streams.video[0].codec_context.pix_fmt
    assert formats == {"full": "yuv444p", "half": "yuv420p", "mask": "yuv420p"}
    assert probe(full).full_chroma and not probe(half).full_chroma
    gray = tmp_path / "gray.mkv"  # no colour at all: nothing to keep at full resolution
    with av.open(str(gray), "w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 36, "gray"
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((36, 64), 128, np.uint8), format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert not probe(gray).full_chroma
    assert mean_error_255(read_video(full)[0], frames) < mean_error_255(read_video(half)[0], frames)


@pytest.mark.parametrize("name, kind, fps, timecode", [("layer.mp4", "rgb", Fraction(24), "01:02:03:04"),
                                                       ("mask.mp4", "gray", NTSC, "10:00:00;02"),
                                                       ("foreground.mov", "rgba", Fraction(25), "00:59:59:24")])
def test_timecode_is_kept(tmp_path, clip_frames, clip_masks, name, kind, fps, timecode):
    frames = {"rgb": clip_frames, "gray": clip_masks, "rgba": torch.cat([clip_frames, clip_masks], 1)}[kind]
    path = write_all(tmp_path / name, resize_frames(frames[:3], (64, 36)), kind, fps=fps, timecode=timecode)
    info = probe(path)
    assert (info.timecode, info.num_frames, info.fps) == (timecode, 3, fps)
    assert probe(write_all(tmp_path / f"none-{name}", resize_frames(frames[:3], (64, 36)), kind, fps=fps)).timecode \
        is None


@pytest.mark.parametrize("name, kind", [("layer.mp4", "rgb"), ("mask.mp4", "gray"), ("foreground.mov", "rgba")])
def test_pixel_aspect_is_kept(tmp_path, clip_frames, clip_masks, name, kind):
    frames = {"rgb": clip_frames, "gray": clip_masks, "rgba": torch.cat([clip_frames, clip_masks], 1)}[kind]
    frames = resize_frames(frames[:2], (72, 58))  # PAL 16:9 (720x576, pixels 64:45), shrunk
    assert probe(write_all(tmp_path / name, frames, kind, pixel_aspect=Fraction(64, 45))).pixel_aspect == \
        Fraction(64, 45)
    assert probe(write_all(tmp_path / f"square-{name}", frames, kind)).pixel_aspect == 1


def test_pixel_aspect_of_a_turned_or_untagged_video():
    from types import SimpleNamespace

    from ddip_video.video.reader import _pixel_aspect

    tagged = SimpleNamespace(sample_aspect_ratio=Fraction(4, 3), codec_context=None)
    untagged = SimpleNamespace(sample_aspect_ratio=None, codec_context=SimpleNamespace(sample_aspect_ratio=None))
    assert [_pixel_aspect(tagged, r) for r in (0, 90, 180, 270)] == [Fraction(4, 3), Fraction(3, 4)] * 2
    assert _pixel_aspect(untagged, 0) == 1


@pytest.mark.parametrize("timecode, fps", [("not a timecode", Fraction(24)), ("01:00:00:00", Fraction(300))])
def test_a_timecode_the_track_cannot_hold_is_left_out(tmp_path, clip_frames, timecode, fps):
    # FFmpeg drops a malformed one itself, but refuses the whole file for a rate over 255
    path = write_all(tmp_path / "layer.mp4", resize_frames(clip_frames[:3], (64, 36)), "rgb", fps=fps,
                     timecode=timecode)
    info = probe(path)
    assert (info.timecode, info.num_frames) == (None, 3)


def test_colours_are_read_as_an_exact_decoder_reads_them(tmp_path):
    # Lossless H.264 (BT.709, 4:2:0) of flat colour patches: what is left is the 8-bit
    # YUV quantisation, at most 1 level. swscale's default conversion read the
    # saturated ones up to 3 levels dark, (30, 160, 90) as (29, 157, 87).
    colours = np.array([(200, 100, 50), (50, 100, 200), (30, 160, 90), (128, 128, 128), (240, 240, 20),
                        (16, 16, 16), (235, 235, 235), (255, 0, 0)], np.uint8)
    patches = np.repeat(np.repeat(colours[None], 32, axis=0), 32, axis=1)  # 32 x 256 x 3, 32 px a patch
    path = tmp_path / "patches.mp4"
    with StreamingWriter(path, Fraction(24), (256, 32), "rgb", quality=0) as writer:
        writer.write(patches)
    back = next(iter_frames(path)).astype(int)
    centres = back[16, 16::32]
    assert np.abs(centres - colours).max() <= 1, centres.tolist()


HLG = ColourTags(primaries=9, transfer=18, matrix=9)  # BT.2020, HLG: a phone's HDR video
PQ = ColourTags(primaries=9, transfer=16, matrix=9)  # BT.2020, PQ (HDR10)


@pytest.mark.parametrize("name, kind", [("layer.mp4", "rgb"), ("mask.mp4", "gray"), ("foreground.mov", "rgba")])
def test_colour_tags_are_kept(tmp_path, clip_frames, clip_masks, name, kind):
    """The stream (H.264's VUI, mov's colr atom) and every frame (ProRes writes its own
    header) carry the tags; without any, BT.709 as always."""
    frames = {"rgb": clip_frames, "gray": clip_masks, "rgba": torch.cat([clip_frames, clip_masks], 1)}[kind]
    frames = resize_frames(frames[:2], (64, 36))
    for tags, path in ((HLG, tmp_path / name), (ColourTags(), tmp_path / f"plain-{name}")):
        write_all(path, frames, kind, colour=tags)
        with av.open(str(path)) as container:
            context = container.streams.video[0].codec_context
            assert (context.color_primaries, context.color_trc, context.colorspace) == (
                tags.primaries, tags.transfer, tags.matrix)
        assert probe(path).colour == tags


@pytest.mark.parametrize("tags", [HLG, PQ, ColourTags()])
def test_colours_round_trip_in_the_tagged_matrix(tmp_path, tags):
    # The writer turns RGB into YUV with the matrix it tags (BT.2020 for HDR), so the
    # reader, which decodes with the tagged matrix, gets the same RGB back (lossless
    # H.264: within the 8-bit YUV quantisation). Encoded with BT.709's matrix, the BT.2020
    # patches come back up to 12 levels off.
    colours = np.array([(200, 100, 50), (50, 100, 200), (30, 160, 90), (128, 128, 128), (240, 240, 20),
                        (255, 0, 0)], np.uint8)
    patches = np.repeat(np.repeat(colours[None], 32, axis=0), 32, axis=1)
    path = tmp_path / "patches.mp4"
    with StreamingWriter(path, Fraction(24), (len(colours) * 32, 32), "rgb", quality=0, colour=tags) as writer:
        writer.write(patches)
    centres = next(iter_frames(path)).astype(int)[16, 16::32]
    assert np.abs(centres - colours).max() <= 1, centres.tolist()


def test_bt2020_constant_luminance_is_read_as_non_constant(tmp_path):
    # swscale has no conversion for it (it failed with "Operation not supported")
    path = make_video(tmp_path / "cl.mp4", frames=3, matrix=10)
    frames, info = read_video(path)
    assert info.num_frames == 3
    assert abs(float(frames[2, :, 24:, 24:].mean()) * 255 - 40) < 2  # the gray of frame 2


def test_a_png_of_hdr_frames_carries_their_tags(tmp_path, png_chunks):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)
    save_png(tmp_path / "hlg.png", image, HLG)
    save_png(tmp_path / "plain.png", image)
    chunks = png_chunks(tmp_path / "hlg.png")
    assert chunks["cICP"] == bytes([9, 18, 0, 1]) and list(chunks).index("cICP") < list(chunks).index("IDAT")
    assert "cICP" not in png_chunks(tmp_path / "plain.png")
    assert np.array_equal(cv2.imread(str(tmp_path / "hlg.png")), image)  # the pixels as they were


def test_colour_tags_of_a_frame():
    from types import SimpleNamespace

    def frame(primaries, transfer, matrix):
        return SimpleNamespace(color_primaries=primaries, color_trc=transfer, colorspace=matrix)

    assert colour_of(frame(9, 18, 9)) == HLG
    assert colour_of(frame(9, 16, 10)) == PQ  # constant luminance is written as non-constant
    assert colour_of(frame(2, 2, 2)) == ColourTags()  # untagged: BT.709, as players assume
    assert colour_of(frame(0, 3, 0)) == ColourTags()  # reserved values
    assert colour_of(frame(6, 6, 6)) == ColourTags(6, 6, 1)  # SD: its primaries, encoded BT.709
    assert colour_of(frame(9, 14, 1)) == ColourTags(9, 14, 1)  # BT.2020 primaries in a BT.709 matrix
    with pytest.raises(ValueError, match="matrix"):
        ColourTags(matrix=6)


@pytest.mark.parametrize("size", [(854, 480), (427, 241)])
def test_gray_round_trip_is_gray(tmp_path, clip_masks, size):
    masks = quantised(resize_frames(clip_masks, size))
    path = write_all(tmp_path / "mask.mp4", masks, "gray", fps=NTSC)
    back, info = read_video(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (8, *size, NTSC)
    spread = back.max(dim=1).values - back.min(dim=1).values  # no colour: R = G = B
    assert float(spread.mean()) * 255 < 1 and float(spread.max()) * 255 <= 8
    assert mean_error_255(back[:, :1], masks) < 1


@pytest.mark.parametrize("size", [(854, 480), (427, 241)])
def test_rgba_prores_keeps_alpha(tmp_path, clip_frames, clip_masks, size):
    rgba = quantised(resize_frames(torch.cat([clip_frames, clip_masks], 1)[:4], size))
    path = write_all(tmp_path / "foreground.mov", rgba, "rgba")
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        assert (context.name, context.profile) == ("prores", "4444")
        assert context.pix_fmt.startswith("yuva444p")
    back = decode_rgba(path)
    assert back.shape == (4, 4, size[1], size[0])
    assert mean_error_255(back[:, :3], rgba[:, :3]) < 1
    assert mean_error_255(back[:, 3:], rgba[:, 3:]) < 2
    assert probe(path).fps == 24


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_folder_is_exact(tmp_path, clip_frames, clip_masks, channels):
    data = torch.cat([clip_frames[:3], clip_masks[:3]], 1)
    frames = (data[:, [3], ...] if channels == 1 else data[:, :channels]).mul(255).round().to(torch.uint8)
    folder = tmp_path / "layers"
    with StreamingWriter(folder, Fraction(24), (854, 480), "png") as writer:
        for frame in frames:
            writer.write(frame.permute(1, 2, 0).numpy())  # H x W x C uint8
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    for i, frame in enumerate(frames):
        image = cv2.imread(str(folder / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        expected = frame.permute(1, 2, 0).numpy()
        if channels == 1:
            assert image.shape == (480, 854) and np.array_equal(image, expected[..., 0])
        else:
            code = cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGBA
            assert np.array_equal(cv2.cvtColor(image, code), expected)


def test_float_frames_are_clamped(tmp_path):
    frames = torch.tensor([-1.0, 0.5, 2.0]).repeat_interleave(8).expand(1, 3, 4, 24)
    write_all(tmp_path / "clamped", frames, "png")
    image = cv2.imread(str(tmp_path / "clamped" / "00000.png"))
    assert (image[0, 0, 0], image[0, 8, 0], image[0, 23, 0]) == (0, 128, 255)


@pytest.mark.parametrize("kind, suffix", [("rgb", ".mp4"), ("rgba", ".mov")])
def test_audio_is_copied(tmp_path, kind, suffix):
    source = make_video(tmp_path / "input.mp4", frames=24, audio_codec="aac")
    assert probe(source).has_audio and audio_seconds(source) == pytest.approx(1.0, abs=0.05)
    frames = torch.rand(12, 4 if kind == "rgba" else 3, 48, 64)  # half the input's length
    path = write_all(tmp_path / f"out{suffix}", frames, kind, audio_from=source)
    copied = audio_packets(path)
    assert copied == audio_packets(source)[: len(copied)]  # the same AAC packets, not re-encoded
    assert audio_seconds(path) == pytest.approx(0.5, abs=0.05)  # cut to the output's length
    assert probe(path).num_frames == 12


def test_audio_transcoded_when_container_cannot_hold_it(tmp_path):
    source = make_video(tmp_path / "input.mkv", frames=24, audio_codec="pcm_s16le")
    path = write_all(tmp_path / "out.mp4", torch.rand(24, 3, 48, 64), "rgb", audio_from=source)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert audio_seconds(path) == pytest.approx(1.0, abs=0.05)


def test_no_audio_for_silent_input_or_png(tmp_path, sample_clip):
    path = write_all(tmp_path / "out.mp4", torch.rand(3, 3, 48, 64), "rgb", audio_from=sample_clip)
    assert audio_seconds(path) is None
    source = make_video(tmp_path / "input.mp4", frames=5, audio_codec="aac")
    write_all(tmp_path / "pngs", torch.rand(3, 3, 48, 64), "png", audio_from=source)
    assert len(list((tmp_path / "pngs").iterdir())) == 3


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_inside_writer_leaves_nothing(tmp_path, error):
    for name, kind in [("layer.mp4", "rgb"), ("layer.mov", "rgba"), ("layers", "png")]:
        with pytest.raises(error):
            with StreamingWriter(tmp_path / name, Fraction(24), (64, 48), kind) as writer:
                for _ in range(5):
                    writer.write(torch.rand(4 if kind == "rgba" else 3, 48, 64))
                raise error()
        writer.abort()  # idempotent
    assert list(tmp_path.iterdir()) == []


def test_output_appears_only_when_closed(tmp_path):
    path = tmp_path / "layer.mp4"
    path.write_bytes(b"earlier run")
    writer = StreamingWriter(path, Fraction(24), (64, 48), "rgb")
    writer.write(torch.rand(3, 48, 64))
    assert path.read_bytes() == b"earlier run"
    assert all(p.name.startswith(".layer.mp4.partial-") for p in tmp_path.iterdir() if p != path)
    assert writer.close() == path
    assert probe(path).num_frames == 1
    assert list(tmp_path.iterdir()) == [path]


def test_encoder_error_reaches_the_caller(tmp_path):
    writer = StreamingWriter(tmp_path / "layer.mp4", Fraction(24), (64, 48), "rgb")

    def broken(array):
        raise OSError("disk full")

    writer._sink.write = broken
    with pytest.raises(OSError, match="disk full"):
        for _ in range(100):  # the error surfaces on a later write, or at close
            writer.write(torch.rand(3, 48, 64))
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_queue_is_bounded(tmp_path):
    """A slow encoder makes write() wait instead of piling frames up in memory."""
    writer = StreamingWriter(tmp_path / "layers", Fraction(24), (64, 48), "png", queue_size=3)
    gate, write_frame = threading.Event(), writer._sink.write

    def slow(array):
        gate.wait()
        write_frame(array)

    writer._sink.write = slow
    producer = threading.Thread(target=lambda: [writer.write(torch.rand(3, 48, 64)) for _ in range(10)])
    producer.start()
    try:
        deadline = time.monotonic() + 30
        while not writer._queue.full() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer._queue.maxsize == 3 and writer._queue.full()
        assert writer.frames_written <= 3 + 1  # the queue plus the frame held by the encoder
        assert producer.is_alive()  # blocked in write() until the encoder catches up
    finally:
        gate.set()
        producer.join()
    writer.close()
    assert len(list((tmp_path / "layers").iterdir())) == 10


def test_writer_rejects_bad_frames_and_settings(tmp_path, sample_clip):
    with StreamingWriter(tmp_path / "layer.mp4", Fraction(24), (64, 48), "rgb") as writer:
        with pytest.raises(ValueError, match="64x48"):
            writer.write(torch.rand(3, 48, 60))
        with pytest.raises(ValueError, match="channels"):
            writer.write(torch.rand(4, 48, 64))
        with pytest.raises(TypeError):
            writer.write(np.zeros((48, 64, 3), np.int32))
        writer.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="kind"):
        StreamingWriter(tmp_path / "x.mp4", Fraction(24), (64, 48), "hdr")
    with pytest.raises(ValueError, match=r"\.mov"):
        StreamingWriter(tmp_path / "x.mp4", Fraction(24), (64, 48), "rgba")
    copy = tmp_path / "input.mp4"
    shutil.copy(sample_clip, copy)
    with pytest.raises(InputError, match="overwrite the input"):
        StreamingWriter(copy, Fraction(24), (854, 480), "rgb", audio_from=copy)
    assert file_digest(copy) == file_digest(sample_clip)


# ---- staged output folder ----------------------------------------------------------------


def test_staged_output_commits_everything(tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "foreground.mp4").write_bytes(b"old")
    (outdir / "mask").mkdir()
    (outdir / "mask" / "stale.png").write_bytes(b"old")
    (outdir / "notes.txt").write_text("unrelated")
    with StagedOutputDir(outdir) as staged:
        write_all(staged.path("foreground.mp4"), torch.rand(2, 3, 48, 64), "rgb")
        write_all(staged.path("mask"), torch.rand(2, 1, 48, 64), "png")
        staged.path("sheet.png").write_bytes(b"png")
        assert (outdir / "foreground.mp4").read_bytes() == b"old"  # untouched until commit
        final = staged.commit()
    assert sorted(p.name for p in final) == ["foreground.mp4", "mask", "sheet.png"]
    assert sorted(p.name for p in outdir.iterdir()) == ["foreground.mp4", "mask", "notes.txt", "sheet.png"]
    assert probe(outdir / "foreground.mp4").num_frames == 2
    assert sorted(p.name for p in (outdir / "mask").iterdir()) == ["00000.png", "00001.png"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_staged_output_failure_leaves_nothing(tmp_path, error):
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "foreground.mp4").write_bytes(b"old")
    with pytest.raises(error):
        with StagedOutputDir(outdir) as staged:
            write_all(staged.path("foreground.mp4"), torch.rand(2, 3, 48, 64), "rgb")
            raise error()
    assert [p.name for p in outdir.iterdir()] == ["foreground.mp4"]
    assert (outdir / "foreground.mp4").read_bytes() == b"old"
    # A folder the run created is removed again.
    with pytest.raises(error):
        with StagedOutputDir(tmp_path / "new" / "out"):
            raise error()
    assert not (tmp_path / "new" / "out").exists()


@pytest.mark.skipif(os.name != "posix", reason="file locks")
def test_staging_left_by_a_killed_run_is_removed_by_the_next_one(tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    abandoned = outdir / ".ddip-staging-0badc0de"  # as a SIGKILLed run leaves it: its lock free
    abandoned.mkdir()
    (abandoned / ".lock").touch()
    (abandoned / ".foreground.mp4.partial-1234").write_bytes(b"x" * 1000)
    starting = outdir / ".ddip-staging-5ca1ab1e"  # a run in its first instant: no lock yet
    starting.mkdir()
    live = StagedOutputDir(outdir)  # a run under way, its lock held
    live_staging = next(p for p in outdir.glob(".ddip-staging-*") if p not in (abandoned, starting))
    assert not abandoned.exists() and starting.is_dir()
    with StagedOutputDir(outdir) as staged:
        staged.path("notes.txt").write_text("second run")
    assert live_staging.is_dir() and starting.is_dir()  # neither taken for abandoned
    assert (outdir / "notes.txt").read_text() == "second run"
    live.discard()
    assert not live_staging.exists()


@pytest.mark.skipif(os.name != "posix", reason="file locks")
def test_commits_into_one_folder_take_turns(tmp_path):
    """Two runs finishing at once into one folder: each moves all its outputs in while
    the other waits, so the folder ends up with one run's outputs, not a mix."""
    import fcntl

    outdir = tmp_path / "out"
    outdir.mkdir()
    staged = StagedOutputDir(outdir)
    for name in ("foreground.mp4", "mask.mp4"):
        staged.path(name).write_text("second run")
    other_run = os.open(outdir, os.O_RDONLY)
    fcntl.flock(other_run, fcntl.LOCK_EX)  # the other run is committing
    committing = threading.Thread(target=staged.commit)
    committing.start()
    time.sleep(0.5)
    assert committing.is_alive() and not (outdir / "foreground.mp4").exists()
    os.close(other_run)
    committing.join(timeout=10)
    assert [(outdir / name).read_text() for name in ("foreground.mp4", "mask.mp4")] == ["second run"] * 2


def test_staged_output_refuses_bad_folders(tmp_path, sample_clip):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        StagedOutputDir(not_a_folder)
    clip = tmp_path / "clip.mp4"
    shutil.copy(sample_clip, clip)
    with StagedOutputDir(tmp_path, input_path=clip) as staged:
        with pytest.raises(InputError, match="overwrite the input"):
            staged.path("clip.mp4")
        with pytest.raises(ValueError):
            staged.path("../escape.mp4")
    frames = tmp_path / "frames"
    frames.mkdir()
    with pytest.raises(InputError, match="inside the input folder"):
        StagedOutputDir(frames / "out", input_path=frames)
    assert file_digest(clip) == file_digest(sample_clip)


def test_staged_output_on_a_read_only_file_system(tmp_path, monkeypatch):
    mkdir = Path.mkdir

    def read_only_staging(self, *args, **kwargs):
        if self.name.startswith(".ddip-staging-"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_staging)
    with pytest.raises(InputError, match=r"cannot write into the output folder .*\(Read-only file system\)"):
        StagedOutputDir(tmp_path / "new")
    assert not (tmp_path / "new").exists()  # the folder it made for the run is gone again
