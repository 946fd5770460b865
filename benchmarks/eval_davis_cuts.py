"""`fgbg` on an edited clip: DAVIS sequences joined by hard cuts, scored per
sequence (DAVIS J), beside the motion hints it worked from.

    python -m benchmarks.eval_davis_cuts DATA_DIR SEQ SEQ [SEQ ...] [--max-side N] [--iters N] [--device D]

The sequences' frames (and masks) are joined in the order given into one
folder of frames, which `fgbg` runs on through the CLI's code path (run_fgbg,
every output written); J is then taken over each sequence's own frames.
Compare with eval_davis.py on the sequences alone.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


from benchmarks.data import enlarge, read_gray
from benchmarks.eval_davis import run_fgbg_masks
from benchmarks.metrics import mean_jaccard
from ddip_video.tasks.fgbg.options import FgbgOptions


def join_frames(data_dir: Path, sequences: list[str], folder: Path) -> list[tuple[str, int, int]]:
    """Links every sequence's frames, in order, into folder; (name, first, end) per sequence."""
    spans, t = [], 0
    for name in sequences:
        frames = sorted((data_dir / name / "frames").glob("*.jpg"))
        if not frames:
            raise SystemExit(f"no frames in {data_dir / name / 'frames'}")
        for path in frames:
            (folder / f"{t:05d}.jpg").symlink_to(path.resolve())
            t += 1
        spans.append((name, t - len(frames), t))
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("sequences", nargs="+")
    parser.add_argument("--max-side", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--iters", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    truth = [read_gray(p) > 127 for name in args.sequences
             for p in sorted((args.data_dir / name / "masks").glob("*.png"))]
    opts = FgbgOptions(device=args.device, max_side=args.max_side, iters=args.iters, seed=args.seed,
                       mask_png=True, progress=False)
    with tempfile.TemporaryDirectory() as folder:
        spans = join_frames(args.data_dir, args.sequences, Path(folder))
        masks, hint_masks, result, seconds = run_fgbg_masks(Path(folder), opts)
    sep = result.separation
    hints = enlarge(hint_masks, *truth[0].shape)
    print(f"{len(truth)} frames, fgbg at --max-side {sep.options.max_side} --iters {sep.options.iters} on "
          f"{sep.device}: cuts found at frames {sep.cuts or 'none'} (true: {[s[1] for s in spans[1:]]}); "
          f"{sep.iterations} iterations, {seconds:.1f} s")
    print(f"{'sequence':<12}{'frames':>7}{'fgbg J':>9}{'hints J':>9}")
    for name, first, end in spans:
        print(f"{name:<12}{end - first:>7}{mean_jaccard(masks[first:end], truth[first:end])[0]:>9.3f}"
              f"{mean_jaccard(hints[first:end], truth[first:end])[0]:>9.3f}")


if __name__ == "__main__":
    main()
