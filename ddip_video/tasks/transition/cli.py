"""`ddip-video transition`'s flags and summary line; torch is imported only when it runs."""
from __future__ import annotations

from .options import DEFAULTS, TransitionOptions

HELP = "unmix a dissolve, a fade or a dip to black (or white) into its two shots"
DESCRIPTION = ("Writes shot_a.mp4 (the shot visible at the start), shot_b.mp4 (the shot visible at the end), "
               "alpha.csv (the weight of shot A per frame; for a dip to black or white, that of shot B too), "
               "alpha.png (its plot) and preview.png into OUTDIR. The first frame is taken as shot A alone and "
               "the last as shot B alone.")
__all__ = ["DEFAULTS", "DESCRIPTION", "HELP", "add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.add_argument("--resume", action="store_true",
                        help="pick up where an interrupted run into the same OUTDIR (same input and options) "
                             "stopped: a finished fit (a dip has two) is not run again")


def run(args, common: dict) -> int:
    from .outputs import run_transition

    result = run_transition(args.input, args.output, TransitionOptions(**common, resume=args.resume))
    u = result.unmixing
    print(f"transition: {result.num_frames} frames at {result.size[0]}x{result.size[1]} -> {args.output}: "
          f"{result.span_text()}; in {result.seconds:.1f} s ({u.work_text()}, {u.device})")
    return 0
