"""`ddip-video fgbg`'s flags and summary line; torch is imported only when it runs."""
from __future__ import annotations

import argparse

from .options import DEFAULTS, FgbgOptions, parse_pick

HELP = "separate the moving foreground from the background"
DESCRIPTION = ("Writes foreground.mp4, background.mp4 (the clean plate), mask.mp4, foreground.mov (with alpha, "
               "ProRes 4444), plate.png (the whole scene, RGBA) and preview.png into OUTDIR.")
__all__ = ["DEFAULTS", "DESCRIPTION", "HELP", "add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.add_argument("--mask-png", action="store_true", help="also write binary masks as OUTDIR/masks/00000.png ...")
    parser.add_argument("--pick", type=_pick, default=None, metavar="X,Y|largest",
                        help="one object of several that move: the one under the point X,Y (pixels) of the "
                             "first frame that shows a foreground, or the largest there (default: every "
                             "object that moves against the scene)")
    parser.add_argument("--resume", action="store_true",
                        help="pick up where an interrupted run into the same OUTDIR (same input and options) "
                             "stopped: a long clip's finished segments are not run again")


def _pick(text: str) -> str:
    try:
        parse_pick(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def run(args, common: dict) -> int:
    from .outputs import run_fgbg

    opts = FgbgOptions(**common, mask_png=args.mask_png, pick=args.pick, resume=args.resume)
    result = run_fgbg(args.input, args.output, opts)
    sep = result.separation
    frames = f"{result.num_frames} frame" + ("" if result.num_frames == 1 else "s")
    cuts = f"a cut at frame {sep.cuts[0]}" if len(sep.cuts) == 1 else f"cuts at frames {', '.join(map(str, sep.cuts))}"
    parts = [f"{len(sep.cuts) + 1} shots ({cuts})"] if sep.cuts else []
    if sep.segments > len(sep.cuts) + 1:
        parts.append(f"{sep.segments} segments")
    work = ", ".join(parts + [f"{sep.iterations} iterations" + (" in all" if parts else "")])
    work += f" at --max-side {sep.options.max_side}"
    best = "" if parts else f", best at {sep.best_iteration + 1}"
    per_frame = result.seconds / max(1, result.num_frames)
    print(f"fgbg: {frames} at {result.size[0]}x{result.size[1]} -> {args.output} in {result.seconds:.1f} s, "
          f"{per_frame:.2f} s a frame ({work}{best}, {sep.device}); {result.foreground_text()}")
    return 0
