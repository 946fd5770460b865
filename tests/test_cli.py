"""The `ddip-video` command end to end: info, fgbg on the shipped sample, and
bad input (one-line error, exit status 2, no traceback, nothing written)."""
import hashlib
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from ddip_video.cli import main
from ddip_video.video import probe

ENV = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ddip_video.cli", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=600)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_info_lists_versions_kernels_devices_encoders(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for needle in ("torch ", "PyAV ", "OpenCV ", "C++ kernels: built", "CUDA kernels:", "devices: cpu",
                   "libx264 yes", "prores_ks yes"):
        assert needle in out


@pytest.mark.slow
def test_fgbg_end_to_end_on_the_sample(sample_clip, tmp_path):
    before = digest(sample_clip)
    outdir = tmp_path / "out"
    result = run_cli("fgbg", sample_clip, "-o", outdir, "--max-side", "64", "--iters", "12",
                     "--mask-png", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "fgbg: 30 frames at 854x480" in result.stdout
    assert digest(sample_clip) == before  # the input is never touched
    source = probe(sample_clip)
    for name in ("foreground.mp4", "background.mp4", "mask.mp4", "foreground.mov"):
        info = probe(outdir / name)
        assert (info.width, info.height, info.num_frames) == (854, 480, 30), name
        assert info.fps == source.fps == Fraction(24)
    masks = sorted((outdir / "masks").glob("*.png"))
    assert [p.name for p in masks] == [f"{i:05d}.png" for i in range(30)]
    first = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert first.shape == (480, 854) and set(np.unique(first)) <= {0, 255}
    preview = cv2.imread(str(outdir / "preview.png"))
    assert preview is not None and preview.shape[1] == 4 * 320
    assert sorted(p.name for p in outdir.iterdir()) == [
        "background.mp4", "foreground.mov", "foreground.mp4", "mask.mp4", "masks", "preview.png"]


def _bad_inputs(tmp_path: Path, sample_clip: Path) -> dict:
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(sample_clip.read_bytes()[:4000])
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "readme.txt").write_text("nothing here")
    return {"missing": tmp_path / "nope.mp4", "text": text, "empty": empty, "truncated": truncated,
            "no images": no_images}


@pytest.mark.parametrize("case", ["missing", "text", "empty", "truncated", "no images"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, sample_clip):
    bad = _bad_inputs(tmp_path, sample_clip)[case]
    outdir = tmp_path / "out"
    result = run_cli("fgbg", bad, "-o", outdir, "--iters", "2", "--quiet")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddip-video fgbg: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert not outdir.exists()


def test_bad_option_values_are_usage_errors(tmp_path, sample_clip):
    for args in (["--iters", "0"], ["--max-side", "-3"], ["--device", "tpu"], ["--fps", "abc"]):
        result = run_cli("fgbg", sample_clip, "-o", tmp_path / "o", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, args
    result = run_cli("fgbg", sample_clip, "-o", tmp_path / "o", "--max-side", "8")
    assert result.returncode == 2 and "max-side must be at least" in result.stderr


def test_input_too_small_to_work_on_is_refused(tmp_path):
    frames = tmp_path / "tiny"
    frames.mkdir()
    for t in range(3):
        cv2.imwrite(str(frames / f"{t}.png"), np.full((7, 9, 3), 40 * t, np.uint8))
    for task in ("fgbg", "transition"):
        result = run_cli(task, frames, "-o", tmp_path / "o", "--iters", "2")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "the input is 9x7: too small" in result.stderr and "--max-side" not in result.stderr
        assert not (tmp_path / "o").exists()


def test_output_folder_that_is_a_file_is_refused(tmp_path, sample_clip):
    target = tmp_path / "file"
    target.write_text("x")
    result = run_cli("fgbg", sample_clip, "-o", target, "--iters", "2")
    assert result.returncode == 2 and "is a file" in result.stderr
    assert target.read_text() == "x"
