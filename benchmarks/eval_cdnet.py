"""CDnet F-measure of `ddip-video fgbg`, of its hints alone, and of OpenCV's
MOG2 and KNN, on one CDnet folder (like ../shared/data/cdnet2014/highway).

    python -m benchmarks.eval_cdnet FOLDER [--max-side N] [--device D] [--iters N]

fgbg runs through the CLI's code path on FOLDER/input; the F-measure counts
the frames of temporalROI.txt inside ROI.bmp and ignores the pixels the
ground truth marks 50 (shadow), 85 (outside) and 170 (unknown).
"""
from __future__ import annotations

import argparse
from pathlib import Path


from benchmarks.baselines import METHODS
from benchmarks.data import enlarge, read_gray, read_rgb, run_timed, shrink
from benchmarks.eval_davis import run_fgbg_masks
from benchmarks.metrics import cdnet_f_measure
from ddip_video.tasks.fgbg.options import FgbgOptions
from ddip_video.tasks.fgbg.separate import HINT_SIDE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--max-side", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=None, help="default: fgbg's for the device")
    args = parser.parse_args()
    inputs = sorted((args.folder / "input").glob("in*.jpg"))
    first, last = (int(v) for v in (args.folder / "temporalROI.txt").read_text().split()[:2])
    number = lambda p: int(p.stem[2:])
    keep = [i for i, p in enumerate(inputs) if first <= number(p) <= last]
    truth = [read_gray(args.folder / "groundtruth" / f"gt{number(inputs[i]):06d}.png") for i in keep]
    roi = read_gray(args.folder / "ROI.bmp") > 0
    h, w = truth[0].shape
    opts = FgbgOptions(device=args.device, max_side=args.max_side, iters=args.iters, mask_png=True, progress=False)
    masks, hint_masks, result, seconds = run_fgbg_masks(args.folder / "input", opts)
    scores = {"fgbg": (cdnet_f_measure([masks[i] for i in keep], truth, roi), seconds)}
    hints = enlarge(hint_masks, h, w)
    scores["hints"] = (cdnet_f_measure([hints[i] for i in keep], truth, roi), result.separation.timings["hints"])
    frames = shrink([read_rgb(p) for p in inputs], HINT_SIDE)
    for name in ("MOG2", "KNN"):
        found, secs = run_timed(METHODS[name], frames)
        found = enlarge(found, h, w)
        scores[name] = (cdnet_f_measure([found[i] for i in keep], truth, roi), secs)
    print(f"CDnet {args.folder.name}: {len(keep)} frames, fgbg at --max-side {result.separation.options.max_side} "
          f"--iters {result.separation.options.iters} "
          f"on {result.separation.device}")
    print(f"{'method':<8}{'F':>8}{'precision':>11}{'recall':>8}{'seconds':>9}")
    for name, ((f, p, r), secs) in scores.items():
        print(f"{name:<8}{f:>8.3f}{p:>11.3f}{r:>8.3f}{secs:>9.1f}")


if __name__ == "__main__":
    main()
