"""Peak memory (resident set) of `ddip-video fgbg` and `transition` against clip length.

    python -m benchmarks.bench_memory SEQUENCE_DIR [--frames 100 200 400] [--max-side 160 320]
                                      [--tasks hints fgbg transition dip] [--iters 10] [--second DIR]

SEQUENCE_DIR: a folder of frames (e.g. ../shared/data/davis2016/dog/frames). Each clip
length is made from those frames played forwards and backwards; `transition` gets a
dissolve over 30 frames in its middle into shot B (--second's frames played the same way,
or by default the clip's mirror image run backwards): long shots around a dissolve, where
the frames the model runs on do not grow with the clip; `dip` runs `transition`
on a dip to black between the same two shots (A fades out over 15 frames, 3 black frames,
B fades in over 15). Every run is its own
child process on the CPU (--iters 10: the memory a run holds does not grow with the
steps), and the figure is that child's peak resident set. `hints` runs fgbg's first
stage alone (read at 427 px, motion hints), which is what grows with a long clip.
Prints one row per run and the growth per frame between consecutive lengths, the figure
the tasks' memory check (`memory_need`) is set from.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

HINTS_ONLY = """
import sys
from ddip_video.tasks.fgbg.separate import HINT_SIDE, clip_hints
from ddip_video.video import read_video
frames, _ = read_video(sys.argv[1], max_side=HINT_SIDE)
clip_hints(frames)
"""


def ping_pong(count: int, available: int) -> list[int]:
    """Frame indices 0, 1, ..., n-1, n-2, ..., 0, 1, ... of length count."""
    period = max(1, 2 * available - 2)
    return [t % period if t % period < available else period - t % period for t in range(count)]


TRANSITION_FRAMES = 30  # a dissolve of about a second, however long the clip
FADE_FRAMES = 15        # a dip's fade out and fade in


def shot_weights(task: str, t: int, count: int) -> tuple[float, float]:
    """The weights of shot A and shot B in frame t of a `task` clip."""
    middle = count // 2
    if task == "transition":  # alpha falls over TRANSITION_FRAMES in the middle
        alpha = float(np.clip((middle + TRANSITION_FRAMES / 2 - t) / TRANSITION_FRAMES, 0.0, 1.0))
        return alpha, 1.0 - alpha
    if task == "dip":  # A fades out over FADE_FRAMES, 3 black frames, B fades in over FADE_FRAMES
        return (float(np.clip((middle - 1 - t) / FADE_FRAMES, 0.0, 1.0)),
                float(np.clip((t - middle - 1) / FADE_FRAMES, 0.0, 1.0)))
    return 1.0, 0.0


def make_clip(files: list[Path], count: int, task: str, folder: Path, second: list[Path] | None = None) -> Path:
    """The clip of `task`, `count` frames; shot B is `second` played forwards and
    backwards, or (None) the first sequence run backwards and mirrored."""
    folder.mkdir(parents=True)
    order = ping_pong(count, len(files))
    order_b = ping_pong(count, len(second)) if second else None
    for t, i in enumerate(order):
        frame = cv2.imread(str(files[i]))
        weight_a, weight_b = shot_weights(task, t, count)
        if weight_b > 0 or weight_a < 1:  # shot B: the clip run backwards, mirrored
            other = cv2.imread(str(second[order_b[t]])) if second else \
                cv2.imread(str(files[order[count - 1 - t]]))[:, ::-1]
            frame = (weight_a * frame + weight_b * other.astype(np.float32) + 0.5).astype(np.uint8)
        cv2.imwrite(str(folder / f"{t:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def peak_gb(command: list[str]) -> float:
    """Runs command as a child process; its peak resident set in GB (1e9 bytes)."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}): {message}")
    return usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequence", type=Path)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--max-side", type=int, nargs="+", default=[160, 320])
    parser.add_argument("--tasks", nargs="+", default=["hints", "fgbg", "transition"],
                        choices=["hints", "fgbg", "transition", "dip"])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--second", type=Path, default=None,
                        help="shot B's frames for transition and dip (default: the sequence run backwards and "
                             "mirrored, which the classic analysis does not tell from shot A on a long clip)")
    args = parser.parse_args()
    files = image_files(args.sequence)
    second = image_files(args.second) if args.second else None
    if not files or (args.second and not second):
        sys.exit(f"no frames in {args.sequence}")
    first = cv2.imread(str(files[0]))
    print(f"{args.sequence} ({len(files)} frames, {first.shape[1]}x{first.shape[0]})"
          + (f" and {args.second} ({len(second)} frames)" if second else "") + ", played forwards and "
          f"backwards; peak resident set of each run, CPU, --iters {args.iters}")
    print(f"{'task':<11} {'--max-side':>10} {'frames':>7} {'peak GB':>8} {'growth MB/frame':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for task in args.tasks:
            sides = [None] if task == "hints" else args.max_side
            for side in sides:
                previous = None
                for count in args.frames:
                    clip = make_clip(files, count, task, tmp / f"{task}-{side}-{count}", second)
                    if task == "hints":
                        command = [sys.executable, "-c", HINTS_ONLY, str(clip)]
                    else:
                        command = [sys.executable, "-m", "ddip_video.cli", "transition" if task == "dip" else task,
                                   str(clip), "-o",
                                   str(tmp / f"out-{task}-{side}-{count}"), "--device", "cpu", "--max-side",
                                   str(side), "--iters", str(args.iters), "--quiet"]
                    peak = peak_gb(command)
                    growth = "" if previous is None else f"{(peak - previous[1]) * 1e3 / (count - previous[0]):.2f}"
                    print(f"{task:<11} {side or 427:>10} {count:>7} {peak:>8.2f} {growth:>16}", flush=True)
                    previous = (count, peak)


if __name__ == "__main__":
    main()
