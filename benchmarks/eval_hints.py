"""Score the motion hints against OpenCV's background subtractors.

    python -m benchmarks.eval_hints /path/to/davis2016 [--max-side 427] [--seq dog ...]
    python -m benchmarks.eval_hints --cdnet /path/to/cdnet2014/highway

DAVIS mode: every sub-folder of DATA_DIR with frames/ and masks/ is a sequence. Frames
are shrunk (INTER_AREA) so that the longer side is --max-side, each method runs on those,
and its masks are scaled back (nearest) to the ground truth's size for the region
similarity J. CDnet mode: the same methods on one CDnet folder, scored with the
F-measure over ROI.bmp and the frames in temporalROI.txt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.baselines import METHODS
from benchmarks.data import davis_sequences, enlarge, read_gray, read_rgb, run_timed, shrink
from benchmarks.metrics import cdnet_f_measure, mean_jaccard


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
    rows = []
    for seq in davis_sequences(data_dir, only):
        frame_files = sorted((seq / "frames").glob("*.jpg")) + sorted((seq / "frames").glob("*.png"))
        truth = [read_gray(p) > 127 for p in sorted((seq / "masks").glob("*.png"))]
        frames = shrink([read_rgb(p) for p in frame_files], max_side)
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
    frames_full = [read_rgb(folder / "input" / f"in{n:06d}.jpg") for n in numbers]
    truth = [read_gray(folder / "groundtruth" / f"gt{n:06d}.png") for n in numbers]
    roi = read_gray(folder / "ROI.bmp") > 0
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
