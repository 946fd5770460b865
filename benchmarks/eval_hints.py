"""Score the motion hints against OpenCV's background subtractors.

    python benchmarks/eval_hints.py /path/to/davis2016 [--max-side 427] [--seq dog ...]
    python benchmarks/eval_hints.py --cdnet /path/to/cdnet2014/highway

DAVIS mode: every sub-folder of DATA_DIR with frames/ and masks/ is a sequence. Frames
are shrunk (INTER_AREA) so that the longer side is --max-side, each method runs on those,
and its masks are scaled back (nearest) to the ground truth's size for the region
similarity J. CDnet mode: the same methods on one CDnet folder, scored with the
F-measure over ROI.bmp and the frames in temporalROI.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip_video.metrics import cdnet_f_measure, mean_jaccard  # noqa: E402
from ddip_video import motion  # noqa: E402
from ddip_video.motion import motion_hints, plain_motion_hints  # noqa: E402

Method = Callable[[np.ndarray], np.ndarray]  # T x h x w x 3 uint8 RGB -> T x h x w bool


def hints_method(frames: np.ndarray) -> np.ndarray:
    return motion_hints(frames).fg_mask


def plain_method(frames: np.ndarray) -> np.ndarray:
    return plain_motion_hints(frames).fg_mask


def scene_method(frames: np.ndarray) -> np.ndarray:
    """What a sharp background plate alone says: each frame's colour distance to the
    median of its neighbours warped by the camera's motion (a still camera: of frames
    spread over the clip; the hints' change cue, at full working resolution), blurred by 2 px, cut at the frame's Otsu threshold, the largest
    components kept. The reconstruction error a perfect background layer would give the
    Double-DIP objective: how far that evidence goes without the hints."""
    _, homographies, static = motion._camera(motion._gray(frames))
    distances = np.nan_to_num(motion._change(frames, homographies, static))
    masks = []
    for distance in distances:
        distance = cv2.GaussianBlur(distance, (0, 0), 2)
        masks.append(motion._keep_components(motion._clean(distance >= motion._otsu(distance)), static))
    return np.stack(masks)


def _subtractor_method(make: Callable[[], cv2.BackgroundSubtractor]) -> Method:
    def run(frames: np.ndarray) -> np.ndarray:
        subtractor = make()
        bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        # A first pass learns the background from the whole clip, as the hints see the
        # whole clip too (CDnet gives subtractors a training stretch for the same reason).
        for frame in bgr:
            subtractor.apply(frame)
        # 255 is foreground; 127 marks shadows, which are not foreground.
        return np.stack([subtractor.apply(frame) == 255 for frame in bgr])

    return run


METHODS: dict[str, Method] = {
    "hints": hints_method,
    "plain": plain_method,
    "scene": scene_method,
    "MOG2": _subtractor_method(cv2.createBackgroundSubtractorMOG2),
    "KNN": _subtractor_method(cv2.createBackgroundSubtractorKNN),
}


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


def shrink(frames: list[np.ndarray], max_side: int) -> np.ndarray:
    h, w = frames[0].shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return np.stack(frames)
    size = (round(w * scale), round(h * scale))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def enlarge(masks: np.ndarray, h: int, w: int) -> list[np.ndarray]:
    return [cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in masks]


def run_timed(method: Method, frames: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    masks = method(frames)
    return masks, time.perf_counter() - start


Row = tuple[str, int, dict[str, tuple[float, float]]]  # label, frames, method -> (score, seconds)


def _print_table(title: str, rows: list[Row], score_name: str) -> None:
    names = list(METHODS)
    print(f"\n{title}")
    header = f"{'sequence':<14}{'frames':>7}" + "".join(f"{n + ' ' + score_name:>12}{n + ' s':>9}" for n in names)
    print(header)
    print("-" * len(header))
    for label, frames, results in rows:
        cells = "".join(f"{results[n][0]:>12.3f}{results[n][1]:>9.1f}" for n in names)
        print(f"{label:<14}{frames:>7}{cells}")


def eval_davis(data_dir: Path, max_side: int, only: list[str] | None) -> None:
    sequences = sorted(p for p in data_dir.iterdir() if (p / "frames").is_dir() and (p / "masks").is_dir())
    if only:
        sequences = [p for p in sequences if p.name in only]
    if not sequences:
        raise SystemExit(f"no sequences (folders with frames/ and masks/) in {data_dir}")
    rows = []
    for seq in sequences:
        frame_files = sorted((seq / "frames").glob("*.jpg")) + sorted((seq / "frames").glob("*.png"))
        truth = [_read_gray(p) > 127 for p in sorted((seq / "masks").glob("*.png"))]
        frames = shrink([_read_rgb(p) for p in frame_files], max_side)
        h, w = truth[0].shape
        results = {}
        for name, method in METHODS.items():
            masks, seconds = run_timed(method, frames)
            results[name] = (mean_jaccard(enlarge(masks, h, w), truth)[0], seconds)
        rows.append((seq.name, len(frames), results))
        print(seq.name, "  ".join(f"{n} J={r[0]:.3f} ({r[1]:.1f} s)" for n, r in results.items()), flush=True)
    total_frames = sum(r[1] for r in rows)
    mean = {
        n: (float(np.mean([r[2][n][0] for r in rows])), float(np.mean([r[2][n][1] for r in rows])))
        for n in METHODS
    }
    per_50 = {n: 50 * sum(r[2][n][1] for r in rows) / total_frames for n in METHODS}
    working = f"{frames.shape[2]}x{frames.shape[1]}"
    _print_table(f"DAVIS J (working size {working}; seconds per sequence)", rows + [("mean", total_frames, mean)], "J")
    print("seconds per 50 frames: " + "  ".join(f"{n} {seconds:.1f}" for n, seconds in per_50.items()))


def eval_cdnet(folder: Path, max_side: int) -> None:
    first, last = (int(v) for v in (folder / "temporalROI.txt").read_text().split()[:2])
    numbers = range(first, last + 1)
    frames_full = [_read_rgb(folder / "input" / f"in{n:06d}.jpg") for n in numbers]
    truth = [_read_gray(folder / "groundtruth" / f"gt{n:06d}.png") for n in numbers]
    roi = _read_gray(folder / "ROI.bmp") > 0
    frames = shrink(frames_full, max_side)
    h, w = truth[0].shape
    results = {}
    for name, method in METHODS.items():
        masks, seconds = run_timed(method, frames)
        f, precision, recall = cdnet_f_measure(enlarge(masks, h, w), truth, roi)
        results[name] = (f, seconds)
        print(f"{name}: F={f:.3f} precision={precision:.3f} recall={recall:.3f} ({seconds:.1f} s)", flush=True)
    working = f"{frames.shape[2]}x{frames.shape[1]}"
    _print_table(f"CDnet F-measure (working size {working}; seconds)", [(folder.name, len(frames), results)], "F")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", nargs="?", type=Path, help="folder of DAVIS-format sequences")
    parser.add_argument("--max-side", type=int, default=427, help="longer side of the working frames (default 427)")
    parser.add_argument("--seq", nargs="+", help="only these sequences")
    parser.add_argument("--cdnet", type=Path, help="a CDnet folder (input/, groundtruth/, ROI.bmp, temporalROI.txt)")
    args = parser.parse_args()
    if args.data_dir is None and args.cdnet is None:
        parser.error("give DATA_DIR, --cdnet DIR, or both")
    if args.data_dir is not None:
        eval_davis(args.data_dir, args.max_side, args.seq)
    if args.cdnet is not None:
        eval_cdnet(args.cdnet, args.max_side)


if __name__ == "__main__":
    main()
