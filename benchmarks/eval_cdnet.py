"""CDnet F-measure of `ddip-video fgbg`, of its hints alone, and of OpenCV's
MOG2 and KNN, on one CDnet folder (like ../shared/data/cdnet2014/highway, or
highway-long: the whole sequence as one video).

    python -m benchmarks.eval_cdnet FOLDER [--max-side N] [--device D] [--iters N] [--no-baselines]

fgbg runs through the CLI's code path on FOLDER/input (a folder of in*.jpg, or
input.mp4 whose frame k is the sequence's frame k + 1); the F-measure counts
the frames of temporalROI.txt inside ROI.bmp and ignores the pixels the
ground truth marks 50 (shadow), 85 (outside) and 170 (unknown). Also printed:
fgbg's seconds by phase and a frame, and, for a clip separated in segments, the
mean change of the mask between neighbouring frames at the seams (the pairs
within a segments' overlap or at its edges) against elsewhere.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.baselines import METHODS
from benchmarks.data import enlarge, read_gray, read_rgb, run_timed, shrink
from benchmarks.eval_davis import run_fgbg_masks
from benchmarks.metrics import cdnet_f_measure
from benchmarks.overrides import option_overrides
from ddip_video.segments import plan_segments
from ddip_video.tasks.fgbg.options import FgbgOptions
from ddip_video.tasks.fgbg.separate import HINT_SIDE
from ddip_video.video import iter_frames


def clip_input(folder: Path) -> tuple[Path, list[int]]:
    """The input fgbg reads and the sequence's frame number of each of its frames."""
    if (folder / "input.mp4").exists():
        count = sum(1 for _ in iter_frames(folder / "input.mp4"))
        return folder / "input.mp4", list(range(1, count + 1))
    inputs = sorted((folder / "input").glob("in*.jpg"))
    return folder / "input", [int(p.stem[2:]) for p in inputs]


def seam_pairs(num_frames: int, cuts: list[int]) -> np.ndarray:
    """Per pair of neighbouring frames (t, t + 1): whether it lies at a seam of fgbg's
    segments (over an overlap, or just before it)."""
    at_seam = np.zeros(num_frames - 1, bool)
    for segment in plan_segments(num_frames, cuts):
        if segment.overlap:
            at_seam[max(0, segment.first - 1):segment.first + segment.overlap] = True
    return at_seam


def mask_change(masks: list[np.ndarray], roi: np.ndarray) -> np.ndarray:
    """The share of the ROI's pixels whose binary mask changes from each frame to the next."""
    return np.array([np.mean((a != b)[roi]) for a, b in zip(masks, masks[1:])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--max-side", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--no-baselines", action="store_true", help="fgbg alone (not MOG2 and KNN)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an FgbgOptions field (tuning), e.g. --set segment_iters=0.25")
    args = parser.parse_args()
    source, numbers = clip_input(args.folder)
    first, last = (int(v) for v in (args.folder / "temporalROI.txt").read_text().split()[:2])
    keep = [i for i, n in enumerate(numbers) if first <= n <= last]
    truth = [read_gray(args.folder / "groundtruth" / f"gt{numbers[i]:06d}.png") for i in keep]
    roi = read_gray(args.folder / "ROI.bmp") > 0
    h, w = truth[0].shape
    opts = FgbgOptions(device=args.device, max_side=args.max_side, iters=args.iters, mask_png=True, progress=False,
                       **option_overrides(FgbgOptions, args.set))
    masks, hint_masks, result, seconds = run_fgbg_masks(source, opts)
    sep = result.separation
    scores = {"fgbg": (cdnet_f_measure([masks[i] for i in keep], truth, roi), seconds)}
    if isinstance(hint_masks, np.ndarray):  # a long clip's hints were kept on disk, and are gone with the run
        hints = enlarge(hint_masks, h, w)
        scores["hints"] = (cdnet_f_measure([hints[i] for i in keep], truth, roi), sep.timings["hints"])
    if not args.no_baselines:
        frames = shrink([read_rgb(p) for p in sorted((args.folder / "input").glob("in*.jpg"))]
                        if source.is_dir() else list(iter_frames(source)), HINT_SIDE)
        for name in ("MOG2", "KNN"):
            found, secs = run_timed(METHODS[name], frames)
            found = enlarge(found, h, w)
            scores[name] = (cdnet_f_measure([found[i] for i in keep], truth, roi), secs)
    print(f"CDnet {args.folder.name}: {len(keep)} of {len(numbers)} frames scored, fgbg at --max-side "
          f"{sep.options.max_side} --iters {sep.options.iters} on {sep.device}: {sep.segments} segments, "
          f"{sep.iterations} iterations")
    print(f"{'method':<8}{'F':>8}{'precision':>11}{'recall':>8}{'seconds':>9}")
    for name, ((f, p, r), secs) in scores.items():
        print(f"{name:<8}{f:>8.3f}{p:>11.3f}{r:>8.3f}{secs:>9.1f}")
    phases = ", ".join(f"{name} {value:.1f}" for name, value in sep.timings.items())
    print(f"fgbg seconds by phase: {phases}; {seconds / len(numbers):.3f} s a frame in all")
    # over the scored pairs, against the truth's own change there: traffic varies along a
    # clip, and a seam in a busy stretch changes more for that alone
    at_seam = seam_pairs(len(masks), sep.cuts)[keep[:-1]]
    ours = mask_change([masks[i] for i in keep], roi)
    true = mask_change([t == 255 for t in truth], roi)
    print(f"mask change between neighbouring frames (the truth's in brackets): at the seams {ours[at_seam].mean():.5f} "
          f"({true[at_seam].mean():.5f}), elsewhere {ours[~at_seam].mean():.5f} ({true[~at_seam].mean():.5f})")


if __name__ == "__main__":
    main()
