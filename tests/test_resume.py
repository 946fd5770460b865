"""--resume: a long clip's run killed part way (SIGKILL, Ctrl-C) is picked up at its first
unfinished segment, and ends with the masks of a run never interrupted, bit for bit; a
transition's at its first unfinished fit, with the curve of a run never interrupted."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import ddip_video.tasks.fgbg.separate as separate
import ddip_video.tasks.transition.unmix as unmix_module
from ddip_video.cli import main
from ddip_video.segments import SEGMENT_FRAMES, SEGMENT_OVERLAP
from ddip_video.video import iter_frames, probe

ENV = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
COUNT = SEGMENT_FRAMES + SEGMENT_OVERLAP + 10  # two segments
ARGS = ["--device", "cpu", "--max-side", "64", "--iters", "6", "--mask-png", "--quiet"]


@pytest.fixture(scope="module")
def long_clip(sample_clip, tmp_path_factory) -> Path:
    """The sample played forwards and backwards to two segments' length, 96x54, as PNGs."""
    frames = [cv2.resize(f, (96, 54), interpolation=cv2.INTER_AREA) for f in iter_frames(sample_clip)]
    folder = tmp_path_factory.mktemp("long") / "frames"
    folder.mkdir()
    period = 2 * len(frames) - 2
    for t in range(COUNT):
        k = t % period
        frame = frames[k if k < len(frames) else period - k]
        cv2.imwrite(str(folder / f"{t:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def start(clip: Path, outdir: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ddip_video.cli", "fgbg", str(clip), "-o", str(outdir), *ARGS,
                             *extra], stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop_after_first_segment(process: subprocess.Popen, outdir: Path, signum: int, folder: str = ".segments") -> str:
    try:
        deadline = time.monotonic() + 300
        while not list(outdir.glob(f".ddip-staging-*/{folder}/segment-00000.pt")) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.05)
        process.send_signal(signum)
        return process.communicate(timeout=120)[1]
    finally:
        process.kill()  # a run that did not stop must not outlive the test


def masks_of(outdir: Path) -> np.ndarray:
    return np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((outdir / "masks").glob("*.png"))])


def count_fits(monkeypatch) -> list[int]:
    """The length of each segment fitted from now on."""
    fitted = []
    original = separate.fit_segment

    def counted(frames, *args, **kwargs):
        fitted.append(len(frames))
        return original(frames, *args, **kwargs)
    monkeypatch.setattr(separate, "fit_segment", counted)
    return fitted


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_killed_run_resumes_at_its_first_unfinished_segment(long_clip, tmp_path, monkeypatch, capsys):
    whole = tmp_path / "whole"
    assert main(["fgbg", str(long_clip), "-o", str(whole), *ARGS]) == 0
    assert "2 segments" in capsys.readouterr().out

    killed = tmp_path / "killed"
    process = start(long_clip, killed)
    stop_after_first_segment(process, killed, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "mask.mp4").exists()

    fitted = count_fits(monkeypatch)
    assert main(["fgbg", str(long_clip), "-o", str(killed), *ARGS, "--resume"]) == 0
    assert len(fitted) == 1  # the second segment only
    assert np.array_equal(masks_of(killed), masks_of(whole))  # bit for bit
    assert probe(killed / "background.mp4").num_frames == COUNT
    assert not list(killed.glob(".*"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_ctrl_c_keeps_the_finished_segments_and_resume_refuses_other_runs(long_clip, tmp_path, monkeypatch,
                                                                          capsys):
    outdir = tmp_path / "out"
    process = start(long_clip, outdir)
    stderr = stop_after_first_segment(process, outdir, signal.SIGINT)
    assert process.returncode == 128 + signal.SIGINT, stderr
    line, = stderr.strip().splitlines()
    assert line.startswith("ddip-video fgbg: interrupted; no output was written; the finished work is kept in ")
    assert line.endswith("the same command with --resume picks up from there")
    kept = list(outdir.iterdir())
    assert len(kept) == 1 and [p.name for p in kept[0].iterdir() if not p.name.startswith(".")] == []

    # other options, or another output folder's nothing: one line each, and the work is still there
    assert main(["fgbg", str(long_clip), "-o", str(outdir), *ARGS, "--resume", "--seed", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ddip-video fgbg: error: --resume: the interrupted run in {outdir} was of another input or with other "
        "options (run without --resume to start over)")
    assert main(["fgbg", str(long_clip), "-o", str(tmp_path / "empty"), *ARGS, "--resume"]) == 2
    assert capsys.readouterr().err.strip().endswith("holds no interrupted run to pick up")
    assert not (tmp_path / "empty").exists()

    fitted = count_fits(monkeypatch)
    assert main(["fgbg", str(long_clip), "-o", str(outdir), *ARGS, "--resume"]) == 0
    assert len(fitted) == 1 and probe(outdir / "mask.mp4").num_frames == COUNT


TRANSITION_ARGS = ["--device", "cpu", "--max-side", "64", "--iters", "300", "--quiet"]


@pytest.fixture(scope="module")
def dip_clip(sample_clip, second_clip, tmp_path_factory) -> Path:
    """A dip to black between two real shots, 96x54, as PNGs: 8 frames of A, A fading
    out over 6, 2 black, B fading in over 6, 8 of B (a dip is two fits)."""
    a = [cv2.resize(f, (96, 54), interpolation=cv2.INTER_AREA) for f in iter_frames(sample_clip)]
    b = [cv2.resize(f, (96, 54), interpolation=cv2.INTER_AREA) for f in iter_frames(second_clip)]
    steps = np.linspace(1, 0, 8)[1:-1]
    weights = [(1.0, 0.0)] * 8 + [(w, 0.0) for w in steps] + [(0.0, 0.0)] * 2 + \
        [(0.0, w) for w in steps[::-1]] + [(0.0, 1.0)] * 8
    folder = tmp_path_factory.mktemp("dip") / "frames"
    folder.mkdir()
    for t, (wa, wb) in enumerate(weights):
        frame = np.clip(wa * a[t].astype(np.float32) + wb * b[t].astype(np.float32) + 0.5, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{t:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def count_transition_fits(monkeypatch) -> list[str]:
    """The label of each transition fit run from now on (not taken from a checkpoint)."""
    fitted = []
    original = unmix_module.fit

    def counted(task, num_frames, schedule, device, generator, label, *args, **kwargs):
        fitted.append(label)
        return original(task, num_frames, schedule, device, generator, label, *args, **kwargs)
    monkeypatch.setattr(unmix_module, "fit", counted)
    return fitted


def decoded(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(path))).astype(np.int16)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_killed_transition_resumes_after_its_finished_fit(dip_clip, tmp_path, monkeypatch, capsys):
    # the reference runs in its own process, as the killed run does
    whole = tmp_path / "whole"
    reference = subprocess.run([sys.executable, "-m", "ddip_video.cli", "transition", str(dip_clip), "-o",
                                str(whole), *TRANSITION_ARGS], capture_output=True, text=True, env=ENV)
    assert reference.returncode == 0, reference.stderr

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "ddip_video.cli", "transition", str(dip_clip), "-o",
                                str(killed), *TRANSITION_ARGS], stderr=subprocess.PIPE, text=True, env=ENV)
    stop_after_first_segment(process, killed, signal.SIGKILL, ".fits")
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "alpha.csv").exists()

    fitted = count_transition_fits(monkeypatch)
    assert main(["transition", str(dip_clip), "-o", str(killed), *TRANSITION_ARGS, "--resume"]) == 0
    assert fitted == ["fade in"]  # the fade out was finished
    # the same up to the fits' float rounding, which is not the same from run to run in a
    # process that ran other tests first (seen: shots 41-58 dB apart, amplified where a fade
    # is faint; alpha.csv equal); a fade-in fitted from other random numbers is far off
    curves = [np.loadtxt(folder / "alpha.csv", delimiter=",", skiprows=1) for folder in (killed, whole)]
    assert np.abs(curves[0] - curves[1]).max() < 1e-4
    for name in ("shot_a.mp4", "shot_b.mp4"):
        error = np.mean((decoded(killed / name) - decoded(whole / name)) ** 2.0)
        assert 10 * np.log10(255**2 / max(error, 1e-10)) > 35, name
    assert not list(killed.glob(".*"))
    assert main(["transition", str(dip_clip), "-o", str(tmp_path / "new"), *TRANSITION_ARGS, "--resume"]) == 2
    assert capsys.readouterr().err.strip().endswith("holds no interrupted run to pick up")
