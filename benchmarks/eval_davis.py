"""DAVIS region similarity J of `ddip-video fgbg` (as it runs, and with --pick on the
true object, which the truth marks alone), of its motion hints alone,
of a plain motion segmentation, of a sharp background plate's evidence alone
and of OpenCV's MOG2 and KNN, per sequence.

    python -m benchmarks.eval_davis DATA_DIR [--max-side N] [--device D] [--iters N] [--seq NAME ...] [--json F]
                                    [--plain-hints]

DATA_DIR holds DAVIS-format sequences (<seq>/frames/*.jpg, <seq>/masks/*.png),
like ../shared/data/davis2016. fgbg runs through the CLI's own code path
(run_fgbg, writing every output); its binary masks are read back from
masks/*.png. The hints are the ones that run computed, scaled to its working
size (what the optimisation starts from), scored twice: their binary mask
enlarged pixel for pixel (hints), and their soft map enlarged as fgbg enlarges
its masks, with the frame as guide (guided_hints: fgbg's J minus theirs is what
the refinement adds). plate: the evidence the Double-DIP objective itself has, each
frame's colour distance to the fitted background layer (both blurred, sigma 2 px at
the working size) cut at its Otsu threshold. The plain motion segmentation
(baselines.plain_motion_hints: residual flow, Otsu, largest components),
scene (baselines.scene_method: each frame's distance to a sharp plate, the median of
its neighbours aligned by the camera's motion (a still camera: of frames spread over
the clip), cut the same way, specks dropped),
MOG2 and KNN run on frames of the hints' working size. Times are wall-clock
seconds per sequence. --plain-hints, an ablation: fgbg steered by the plain
segmentation instead of its own hints (what the refinement adds to weak hints).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from unittest.mock import patch

import cv2
import numpy as np
import torch

from benchmarks.baselines import METHODS, otsu, plain_motion_hints
from benchmarks.data import davis_sequences, enlarge, read_gray, read_rgb, run_timed, shrink
from benchmarks.metrics import mean_jaccard
from benchmarks.overrides import option_overrides
from ddip_video.tasks.fgbg.options import FgbgOptions
from ddip_video.tasks.fgbg.outputs import HINT_SIDE, full_size_mask, run_fgbg
from ddip_video.tasks.fgbg.pick import pick_object
from ddip_video.video import frame_to_tensor, resize_frames


def run_fgbg_masks(frames_dir: Path, opts: FgbgOptions):
    """fgbg as the CLI runs it; returns (masks read back, hint masks, result, seconds)."""
    with tempfile.TemporaryDirectory() as outdir:
        start = time.perf_counter()
        result = run_fgbg(frames_dir, outdir, opts)
        seconds = time.perf_counter() - start
        masks = [read_gray(p) > 127 for p in sorted((Path(outdir) / "masks").glob("*.png"))]
    return masks, result.separation.hints.fg_mask, result, seconds


def guided_hint_masks(frames: list[np.ndarray], hint_prob: np.ndarray) -> list[np.ndarray]:
    """The hints' soft maps (at fgbg's working size) enlarged to the frames' size as
    fgbg enlarges its masks (full_size_mask): beside fgbg's J, the refinement's own gain."""
    return [full_size_mask(torch.from_numpy(prob)[None], frame_to_tensor(frame))[0].numpy() > 0.5
            for prob, frame in zip(hint_prob, frames)]


def plate_masks(frames: list[np.ndarray], background: torch.Tensor) -> list[np.ndarray]:
    """Where the frames (H x W x 3 uint8) differ from fgbg's background layer (T x 3 x h x w,
    working size): the colour distance, both blurred (sigma 2 px), cut at each frame's
    Otsu threshold. What the reconstruction tells the mask, without the hints."""
    size = (background.shape[-1], background.shape[-2])
    small = resize_frames(torch.stack([frame_to_tensor(f) for f in frames]), size).numpy()

    def blurred(image):  # 3 x h x w -> h x w x 3
        return cv2.GaussianBlur(np.ascontiguousarray(image.transpose(1, 2, 0)), (0, 0), 2)
    distances = [np.abs(blurred(frame) - blurred(plate)).mean(2) for frame, plate in zip(small, background.numpy())]
    return [distance >= otsu(distance) for distance in distances]


def picked_masks(frames: list[np.ndarray], separation, first_truth: np.ndarray) -> list[np.ndarray]:
    """fgbg's masks as `--pick X,Y` leaves them, (X, Y) the true object's innermost point in
    frame 0 (the truth marks one object; the default keeps every one that moves),
    enlarged as fgbg enlarges its masks."""
    inside = cv2.distanceTransform(first_truth.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(inside.argmax()), inside.shape)
    size = (first_truth.shape[1], first_truth.shape[0])
    picked = pick_object(separation.masks, separation.hints.homographies, (float(x), float(y)), size,
                         separation.cuts)
    return [full_size_mask(mask, frame_to_tensor(frame))[0].numpy() > 0.5 for mask, frame in zip(picked, frames)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--max-side", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seq", nargs="+", help="only these sequences")
    parser.add_argument("--no-baselines", action="store_true", help="skip plain, scene, MOG2 and KNN")
    parser.add_argument("--json", type=Path, help="write the per-sequence figures here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an FgbgOptions field (tuning), e.g. --set hint_floor=0.3")
    parser.add_argument("--save", type=Path, help="save each sequence's soft masks and hints here (.npz)")
    parser.add_argument("--plain-hints", action="store_true",
                        help="an ablation: fgbg steered by the plain motion segmentation (baselines.plain_motion_hints) "
                             "instead of its own hints, to see what the refinement adds to weak hints")
    args = parser.parse_args()
    sequences = davis_sequences(args.data_dir, args.seq)
    opts = FgbgOptions(device=args.device, max_side=args.max_side, iters=args.iters, seed=args.seed,
                       mask_png=True, progress=False, **option_overrides(FgbgOptions, args.set))
    baselines = {} if args.no_baselines else {k: v for k, v in METHODS.items() if k != "hints"}
    rows = []
    for seq in sequences:
        truth = [read_gray(p) > 127 for p in sorted((seq / "masks").glob("*.png"))]
        h, w = truth[0].shape
        with patch("ddip_video.tasks.fgbg.separate.motion_hints", plain_motion_hints) if args.plain_hints else nullcontext():
            masks, hint_masks, result, seconds = run_fgbg_masks(seq / "frames", opts)
        sep = result.separation
        rgb = [read_rgb(p) for p in sorted((seq / "frames").glob("*.jpg"))]
        row = dict(sequence=seq.name, frames=len(truth), fgbg_J=mean_jaccard(masks, truth)[0], fgbg_s=seconds,
                   hints_J=mean_jaccard(enlarge(hint_masks, h, w), truth)[0],
                   guided_hints_J=mean_jaccard(guided_hint_masks(rgb, sep.hints.fg_prob), truth)[0],
                   plate_J=mean_jaccard(enlarge(plate_masks(rgb, sep.background), h, w), truth)[0],
                   picked_J=mean_jaccard(picked_masks(rgb, sep, truth[0]), truth)[0],
                   hints_s=sep.timings["hints"],
                   optimize_s=sep.timings["optimize"], iterations=sep.iterations, best=sep.best_iteration + 1,
                   device=sep.device, max_side=sep.options.max_side, iters=sep.options.iters)
        if baselines:
            frames = shrink(rgb, HINT_SIDE)
            for name, method in baselines.items():
                found, secs = run_timed(method, frames)
                row[f"{name}_J"], row[f"{name}_s"] = mean_jaccard(enlarge(found, h, w), truth)[0], secs
        rows.append(row)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.save / f"{seq.name}.npz",
                                masks=(sep.masks[:, 0].numpy() * 255 + 0.5).astype(np.uint8),
                                hint_prob=(sep.hints.fg_prob * 255 + 0.5).astype(np.uint8), hint_mask=sep.hints.fg_mask)
        print(f"{seq.name}: fgbg J={row['fgbg_J']:.3f} ({seconds:.1f} s, {sep.iterations} its, best "
              f"{row['best']})  hints J={row['hints_J']:.3f} (guided {row['guided_hints_J']:.3f})"
              f"  plate J={row['plate_J']:.3f}" +
              "".join(f"  {n} J={row[n + '_J']:.3f}" for n in baselines), flush=True)
    methods = ["fgbg", "picked", "hints", "guided_hints", "plate"] + list(baselines)
    print(f"\nDAVIS J, fgbg at --max-side {rows[0]['max_side']} --iters {rows[0]['iters']} on {rows[0]['device']}"
          + ("; hints: the plain motion segmentation (--plain-hints)" if args.plain_hints else "")
          + f"; hints computed at longer side {HINT_SIDE} and scored at fgbg's working size, as fgbg gets them"
          + "; guided_hints: the same enlarged as fgbg enlarges its masks (guided filter)"
          + "; picked: fgbg's masks with --pick at the truth's innermost point of frame 0"
          + "; plate: frame vs fgbg's background layer, Otsu"
          + (f"; {', '.join(baselines)} at longer side {HINT_SIDE}" if baselines else ""))
    print(f"{'sequence':<12}{'frames':>7}" + "".join(f"{m + ' J':>{len(m) + 4}}" for m in methods) + f"{'fgbg s':>9}")
    for row in rows:
        print(f"{row['sequence']:<12}{row['frames']:>7}" + "".join(f"{row[m + '_J']:>{len(m) + 4}.3f}" for m in methods)
              + f"{row['fgbg_s']:>9.1f}")
    print(f"{'mean':<12}{'':>7}" + "".join(f"{np.mean([r[m + '_J'] for r in rows]):>{len(m) + 4}.3f}" for m in methods)
          + f"{np.mean([r['fgbg_s'] for r in rows]):>9.1f}")
    if args.json:
        args.json.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, rows=rows), indent=2))


if __name__ == "__main__":
    main()
