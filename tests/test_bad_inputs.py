"""A corpus of bad and unusual inputs, options and output folders, each run
through the command as a user would (in-process, stderr read at the file
descriptor, so C libraries' chatter counts too). For each: the exit status, one
stderr line, no traceback, nothing of the run left, the input unchanged. Refusals
happen before any work (the work is replaced by a failure here); the unusual
inputs that are fine run a tiny job to the end."""
from __future__ import annotations

import errno
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from ddip_video.cli import main
from ddip_video.video import StagedOutputDir, probe
from ddip_video.video import output as staged_output

TINY = ["--device", "cpu", "--max-side", "64", "--iters", "3", "--quiet"]


def digest(path: Path) -> str:
    if path.is_dir():
        return "".join(digest(p) for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def video(path: Path, size=(64, 48), frames=6, codec="libx264", pix_fmt="yuv420p", audio=None, rotation=None,
          fmt=None) -> Path:
    """A small clip of moving noise (`audio`: (codec, rate) of a sine track)."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = container.add_stream(audio[0], rate=audio[1], layout="mono") if audio else None
        for i in range(frames):
            image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        if sound is not None:
            rate = audio[1]
            count = rate * frames // 24
            samples = (0.3 * np.sin(np.arange(count) / 10) * 32767).astype(np.int16)[None]
            chunk = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = rate, 0
            container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
        container.mux(stream.encode(None))
    return path


def png_with_header(path: Path, width: int, height: int) -> Path:
    """A real 8x8 PNG whose header claims width x height (its checksum fixed)."""
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def folder_of(path: Path, images: list[tuple[str, bytes]]) -> Path:
    path.mkdir()
    for name, data in images:
        (path / name).write_bytes(data)
    return path


def png(shape=(48, 64, 3), seed=0) -> bytes:
    return cv2.imencode(".png", np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))[1].tobytes()


def corrupt_png() -> bytes:
    data = bytearray(png())
    data[60:90] = b"x" * 30  # inside the image data: the header stays readable
    return bytes(data)


# name: (how to make the input, extra arguments, what the one line says); the input
# maker gets (tmp_path, sample_clip) and returns the input path
INPUTS = {
    "missing file": (lambda d, s: d / "nope.mp4", [], r"no such file or folder: .*nope\.mp4$"),
    "missing, with a newline in its name": (lambda d, s: d / "a\nb.mp4", [], r"no such file or folder: .*a\\nb\.mp4$"),
    "dangling symlink": (lambda d, s: _symlink(d / "link.mp4", d / "gone.mp4"), [], r"no such file or folder"),
    "empty file": (lambda d, s: _write(d / "empty.mp4", b""), [], r"the file is empty"),
    "text named .mp4": (lambda d, s: _write(d / "notes.mp4", b"just notes\n" * 50), [], r"not a video"),
    "text file": (lambda d, s: _write(d / "notes.txt", b"just notes\n" * 50), [], r"not a video"),
    "random bytes": (lambda d, s: _write(d / "noise.mov", np.random.default_rng(1).bytes(20000)), [],
                     r"not a video"),
    "first 4000 bytes of a clip": (lambda d, s: _write(d / "cut.mp4", s.read_bytes()[:4000]), [], r"cut\.mp4"),
    "first half of a clip": (lambda d, s: _write(d / "cut.mp4", s.read_bytes()[: s.stat().st_size // 2]), [],
                             r"cut\.mp4"),
    "zero frames": (lambda d, s: _zero_frames(d / "zero.avi"), [], r"zero frames"),
    "audio only": (lambda d, s: _audio_only(d / "song.m4a"), [], r"only audio"),
    "a PNG as the input": (lambda d, s: _write(d / "still.png", png()), [], r"at least 2 frames"),
    "one frame": (lambda d, s: video(d / "one.mp4", frames=1), [], r"at least 2 frames"),
    "too small": (lambda d, s: video(d / "tiny.mp4", size=(8, 8)), [], r"too small|at least"),
    "empty folder": (lambda d, s: folder_of(d / "frames", []), [], r"no \.jpg or \.png images"),
    "folder of text": (lambda d, s: folder_of(d / "frames", [("a.txt", b"x")]), [], r"no \.jpg or \.png images"),
    "images of two sizes": (lambda d, s: folder_of(d / "frames", [("0.png", png()), ("1.png", png((40, 64, 3)))]),
                            [], r"images differ in size"),
    "not really a JPEG": (lambda d, s: folder_of(d / "frames", [("0.png", png()), ("1.jpg", b"\xff\xd8 nope")]),
                          [], r"1\.jpg: not a readable"),
    "corrupt PNG body": (lambda d, s: folder_of(d / "frames", [("0.png", corrupt_png()), ("1.png", corrupt_png())]),
                         [], r"0\.png: not a readable image"),
    "PNG header of 100000x100000": (lambda d, s: _huge_pngs(d / "frames"), [], r"100000x100000 pixels"),
}

OPTIONS = {
    "--iters 0": (["--iters", "0"], r"--iters"),
    "--iters x": (["--iters", "x"], r"--iters"),
    "--max-side -3": (["--max-side", "-3"], r"--max-side"),
    "--max-side 8": (["--max-side", "8"], r"max-side must be at least"),
    "--device tpu": (["--device", "tpu"], r"--device"),
    "--fps abc": (["--fps", "abc"], r"--fps"),
    "--fps 0": (["--fps", "0"], r"--fps"),
    "--fps 1e30": (["--fps", "1e30"], r"at most 1000"),
    "--fps inf": (["--fps", "inf"], r"--fps"),
    "--seed -1": (["--seed", "-1"], r"--seed"),
    "--seed 2**64": (["--seed", str(2**64)], r"--seed"),
    "--seed x": (["--seed", "x"], r"--seed"),
    "-o ''": (["-o", ""], r"OUTDIR is empty"),
    "-o a name of 300 bytes": (["-o", "a" * 300], r"too long"),
    "-o a path of 5000 bytes": (["-o", "/".join(["b" * 100] * 50)], r"too long"),
    "an unknown option": (["--colour", "red"], r"unrecognized arguments"),
    "--pick a,b": (["--pick", "a,b"], r"--pick"),
    "--pick -1,5": (["--pick", "-1,5"], r"--pick"),
    "--pick 5000,5": (["--pick", "5000,5"], r"outside the frame \(854x480\)"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _symlink(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def _zero_frames(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100, layout="mono")
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 44100, 0
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    return path


def _huge_pngs(folder: Path) -> Path:
    folder.mkdir()
    for name in ("0.png", "1.png"):
        png_with_header(folder / name, 100000, 100000)
    return folder


def run(argv: list[str], capfd) -> tuple[int, list[str]]:
    """The command's exit status and its stderr lines (C libraries' included)."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse
        status = exit_.code
    return status, capfd.readouterr().err.strip().splitlines()


def _no_work(*args, **kwargs):
    raise AssertionError("the work started")


@pytest.fixture
def no_work(monkeypatch):
    """Refusals come before the work: the optimisation fails the test if reached."""
    import ddip_video.tasks.fgbg.outputs as fgbg
    import ddip_video.tasks.transition.outputs as transition

    monkeypatch.setattr(fgbg, "separate_segments", _no_work)
    monkeypatch.setattr(transition, "unmix", _no_work)


def assert_refused(status: int, lines: list[str], task: str, message: str, outdir: Path, before: list[str]):
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"ddip-video {task}: error: "), lines
    assert __import__("re").search(message, lines[0]), lines
    assert listing(outdir) == before, "the output folder changed"


@pytest.mark.parametrize("task", ["fgbg", "transition"])
@pytest.mark.parametrize("case", list(INPUTS))
def test_bad_input(case, task, tmp_path, sample_clip, capfd, no_work):
    make, extra, message = INPUTS[case]
    source = make(tmp_path, sample_clip)
    before = digest(source)
    outdir = tmp_path / "out"
    status, lines = run([task, source, "-o", outdir, *TINY, *extra], capfd)
    assert_refused(status, lines, task, message, outdir, [])
    assert not outdir.exists()
    assert digest(source) == before


@pytest.mark.parametrize("case", list(OPTIONS))
def test_bad_option(case, tmp_path, sample_clip, capfd, no_work, monkeypatch):
    args, message = OPTIONS[case]
    monkeypatch.chdir(tmp_path)
    argv = ["fgbg", sample_clip, *TINY, *args]
    if "-o" not in args:
        argv += ["-o", tmp_path / "out"]
    status, lines = run(argv, capfd)
    assert status == 2, lines
    # an argument no subcommand knows is the top-level parser's to refuse
    assert len(lines) == 1 and lines[0].startswith(("ddip-video fgbg: error: ", "ddip-video: error: ")), lines
    assert __import__("re").search(message, lines[0]), lines
    assert listing(tmp_path) == []  # no output folder made, not even the current one touched


# ---- output folders in the way ------------------------------------------------------------


def test_input_inside_the_output_folder_as_an_output_is_refused_before_the_work(tmp_path, sample_clip, capfd,
                                                                             no_work):
    for task, name in (("fgbg", "foreground.mp4"), ("transition", "shot_a.mp4")):
        outdir = tmp_path / task
        outdir.mkdir()
        clip = outdir / name
        clip.write_bytes(sample_clip.read_bytes())
        status, lines = run([task, clip, "-o", outdir, *TINY], capfd)
        assert_refused(status, lines, task, "would overwrite the input", outdir, [name])
        clip.rename(outdir / "real.mp4")  # the same through a symlink
        (outdir / name).symlink_to(outdir / "real.mp4")
        status, lines = run([task, outdir / "real.mp4", "-o", outdir, *TINY], capfd)
        assert_refused(status, lines, task, "would overwrite the input", outdir, sorted([name, "real.mp4"]))


@pytest.mark.parametrize("name, flags", [("foreground.mp4", []), ("plate.png", []), ("masks", ["--mask-png"])])
def test_something_of_the_users_in_the_way_of_an_output_is_refused_not_deleted(name, flags, tmp_path,
                                                                               sample_clip, capfd, no_work):
    outdir = tmp_path / "out"
    outdir.mkdir()
    if name == "masks":  # a file where the folder of masks goes
        (outdir / name).write_text("mine")
    else:  # a folder where a file goes
        (outdir / name).mkdir()
        (outdir / name / "keep.txt").write_text("mine")
    status, lines = run(["fgbg", sample_clip, "-o", outdir, *TINY, *flags], capfd)
    assert_refused(status, lines, "fgbg", "move it away", outdir, [name])
    assert digest(outdir / name) == hashlib.sha256(b"mine").hexdigest()


def test_a_masks_folder_holding_more_than_frames_is_refused(tmp_path, sample_clip, capfd, no_work):
    outdir = tmp_path / "out"
    (outdir / "masks").mkdir(parents=True)
    (outdir / "masks" / "00000.png").write_bytes(png())
    (outdir / "masks" / "notes.txt").write_text("mine")
    status, lines = run(["fgbg", sample_clip, "-o", outdir, *TINY, "--mask-png"], capfd)
    assert_refused(status, lines, "fgbg", "more than PNG frames", outdir, ["masks"])


# ---- unusual inputs that are fine --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("task", ["fgbg", "transition"])
def test_audio_at_a_rate_aac_does_not_take_is_resampled(task, tmp_path, capfd):
    """PCM at 192 kHz in .mkv: the layers (mp4, AAC) carry it at 48 kHz."""
    clip = video(tmp_path / "pcm.mkv", frames=8, audio=("pcm_s16le", 192000))
    before = digest(clip)
    status, lines = run([task, clip, "-o", tmp_path / "out", *TINY], capfd)
    assert status == 0, lines
    layer = tmp_path / "out" / ("background.mp4" if task == "fgbg" else "shot_a.mp4")
    with av.open(str(layer)) as container:
        assert container.streams.audio[0].sample_rate == 48000
    assert probe(layer).num_frames == 8 and digest(clip) == before


@pytest.mark.slow
@pytest.mark.parametrize("case", ["odd size", "rotated", "4:4:4 ProRes"])
def test_unusual_videos_run_and_keep_their_shape(case, tmp_path, capfd):
    clip = {"odd size": lambda: video(tmp_path / "odd.mp4", size=(67, 49), pix_fmt="yuv444p"),
            "rotated": lambda: video(tmp_path / "rot.mp4", size=(64, 48), rotation=90),
            "4:4:4 ProRes": lambda: video(tmp_path / "pro.mov", size=(64, 48), codec="prores_ks",
                                          pix_fmt="yuv444p10le")}[case]()
    status, lines = run(["fgbg", clip, "-o", tmp_path / "out", *TINY], capfd)
    assert status == 0, lines
    source, out = probe(clip), probe(tmp_path / "out" / "mask.mp4")
    assert (out.width, out.height, out.num_frames, out.fps) == (source.width, source.height, 6, Fraction(24))


# ---- the commit: all or nothing -----------------------------------------------------------


def _earlier_run(outdir: Path) -> dict[str, bytes]:
    outdir.mkdir()
    earlier = {name: f"old {name}".encode() for name in ("a.mp4", "b.mp4", "c.mp4", "d.png")}
    for name, data in earlier.items():
        (outdir / name).write_bytes(data)
    (outdir / "masks").mkdir()
    (outdir / "masks" / "00000.png").write_bytes(b"old frame")
    return earlier


@pytest.mark.parametrize("fails_at", [0, 2, 4, 6, 8])
@pytest.mark.parametrize("error", [errno.EPERM, errno.ENOSPC])
def test_a_commit_that_fails_part_way_leaves_every_earlier_output(fails_at, error, tmp_path, monkeypatch):
    """An output that cannot be replaced (chattr +i, another user's file in a sticky
    folder) or a disk that fills: the n-th move of the commit fails; OUTDIR then holds
    exactly what it held before, and the staged outputs are gone."""
    outdir = tmp_path / "out"
    earlier = _earlier_run(outdir)
    real_replace, calls = os.replace, []

    def replace(source, target):
        calls.append(target)
        if len(calls) == fails_at + 1:
            raise OSError(error, os.strerror(error), str(target))
        real_replace(source, target)
    with pytest.raises(OSError):
        with StagedOutputDir(outdir) as staged:
            for name in earlier:
                staged.path(name).write_bytes(b"new")
            staged.path("masks").mkdir()
            (staged.path("masks") / "00000.png").write_bytes(b"new frame")
            monkeypatch.setattr(staged_output.os, "replace", replace)  # the commit's moves, from here
    assert len(calls) > fails_at  # the failure was reached
    assert listing(outdir) == sorted([*earlier, "masks"])
    assert all((outdir / name).read_bytes() == data for name, data in earlier.items())
    assert (outdir / "masks" / "00000.png").read_bytes() == b"old frame"


def test_a_commit_that_succeeds_replaces_every_output(tmp_path):
    outdir = tmp_path / "out"
    earlier = _earlier_run(outdir)
    (outdir / "notes.txt").write_text("the user's")
    with StagedOutputDir(outdir) as staged:
        for name in earlier:
            staged.path(name).write_bytes(b"new")
        staged.path("masks").mkdir()
        (staged.path("masks") / "00001.png").write_bytes(b"new frame")
    assert listing(outdir) == sorted([*earlier, "masks", "notes.txt"])
    assert all((outdir / name).read_bytes() == b"new" for name in earlier)
    assert listing(outdir / "masks") == ["00001.png"]


# ---- Ctrl-C twice -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_second_ctrl_c_does_not_break_off_the_clean_up(tmp_path):
    """An impatient user presses Ctrl-C again 50 ms after the first: still exit 130, one
    line, no traceback from an exit handler, OUTDIR as it was."""
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for t in range(8):
        cv2.imwrite(str(frames / f"{t}.png"), rng.integers(0, 256, (40, 72, 3), dtype=np.uint8))
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "earlier.txt").write_text("kept")
    process = subprocess.Popen([sys.executable, "-m", "ddip_video.cli", "fgbg", str(frames), "-o", str(outdir),
                                "--device", "cpu", "--iters", "100000", "--quiet"], stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, OMP_NUM_THREADS="2"),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal gives it
    try:
        deadline = time.monotonic() + 120
        while not list(outdir.glob(".ddip-staging-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3)  # into the work
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()  # a run that did not stop must not outlive the test
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["ddip-video fgbg: interrupted; no output was written"]
    assert listing(outdir) == ["earlier.txt"]
