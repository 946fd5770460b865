"""The `ddip-video` command: info, fgbg, transition."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from fractions import Fraction
from pathlib import Path

from . import __version__
from .errors import InputError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _fps(text: str) -> Fraction:
    try:
        value = Fraction(text).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a frame rate like 24, 29.97 or 30000/1001, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the frame rate must be positive, got {text!r}")
    return value


def _add_common(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """The options every task takes; defaults: the task's max_side and iters per device
    (None is passed on: the task fills them in for the device it runs on)."""
    def per_device(key: str) -> str:
        return f"{defaults['cuda'][key]} on a GPU, {defaults['cpu'][key]} on a CPU"

    parser.add_argument("input", help="a video file (mp4, mov, mkv, webm, avi, ...) or a folder of .jpg/.png frames")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--max-side", type=_positive_int, default=None, metavar="N",
                        help=f"working resolution: longer side in pixels (default {per_device('max_side')}); "
                             "outputs keep the input's size")
    parser.add_argument("--iters", type=_positive_int, default=None, metavar="N",
                        help=f"optimisation steps (default {per_device('iters')})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--fps", type=_fps, default=None,
                        help="frame rate of a folder of frames (default 24); ignored for videos")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _common_options(args) -> dict:
    """The TaskOptions fields from the flags _add_common declares."""
    return dict(device=args.device, max_side=args.max_side, iters=args.iters, seed=args.seed, fps=args.fps,
                progress=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    from .tasks.fgbg import DEFAULTS as FGBG_DEFAULTS
    from .tasks.transition import DEFAULTS as TRANSITION_DEFAULTS

    parser = argparse.ArgumentParser(prog="ddip-video", description=(
        "Split a video into layers with a temporally coupled Double-DIP (no training data)."))
    parser.add_argument("--version", action="version", version=f"ddip-video {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("info", help="versions, built kernels, devices and encoders")
    fgbg = sub.add_parser("fgbg", help="separate the moving foreground from the background",
                          description="Writes foreground.mp4, background.mp4, mask.mp4, foreground.mov "
                                      "(with alpha, ProRes 4444) and preview.png into OUTDIR.")
    _add_common(fgbg, FGBG_DEFAULTS)
    fgbg.add_argument("--mask-png", action="store_true", help="also write binary masks as OUTDIR/masks/00000.png ...")
    transition = sub.add_parser("transition",
                                help="unmix a dissolve, a fade or a dip to black (or white) into its two shots",
                                description="Writes shot_a.mp4 (the shot visible at the start), shot_b.mp4 "
                                            "(the shot visible at the end), alpha.csv (the weight of shot A "
                                            "per frame; for a dip to black or white, that of shot B too), "
                                            "alpha.png (its plot) and preview.png into OUTDIR. The first "
                                            "frame is taken as shot A alone and the last as shot B alone.")
    _add_common(transition, TRANSITION_DEFAULTS)
    return parser


def run_info() -> int:
    import av
    import cv2
    import torch

    from . import ops

    print(f"ddip-video {__version__}")
    print(f"torch {torch.__version__} | PyAV {av.__version__} (FFmpeg {av.library_versions.get('libavcodec')}) | "
          f"OpenCV {cv2.__version__}")
    print(f"C++ kernels: {'built' if ops.KERNELS_BUILT else 'NOT built (' + str(ops.LOAD_ERROR) + ')'}")
    print(f"CUDA kernels: {'built' if ops.CUDA_KERNELS_BUILT else 'not built'}")
    devices = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    print(f"devices: {', '.join(devices)}")
    wanted = ["libx264", "prores_ks", "png", "aac"]
    print("encoders: " + ", ".join(f"{c} {'yes' if c in av.codecs_available else 'MISSING'}" for c in wanted))
    return 0


def run_fgbg(args) -> int:
    from .tasks.fgbg import FgbgOptions, run_fgbg as run

    opts = FgbgOptions(**_common_options(args), mask_png=args.mask_png)
    result = run(args.input, args.output, opts)
    sep = result.separation
    frames = f"{result.num_frames} frame" + ("" if result.num_frames == 1 else "s")
    cuts = f"a cut at frame {sep.cuts[0]}" if len(sep.cuts) == 1 else f"cuts at frames {', '.join(map(str, sep.cuts))}"
    work = (f"{len(sep.cuts) + 1} shots ({cuts}), {sep.iterations} iterations in all" if sep.cuts
            else f"{sep.iterations} iterations")
    work += f" at --max-side {sep.options.max_side}"
    best = "" if sep.cuts else f", best at {sep.best_iteration + 1}"
    print(f"fgbg: {frames} at {result.size[0]}x{result.size[1]} -> {args.output} in {result.seconds:.1f} s "
          f"({work}{best}, {sep.device}); {result.foreground_text()}")
    return 0


def run_transition(args) -> int:
    from .tasks.transition import TransitionOptions, run_transition as run

    opts = TransitionOptions(**_common_options(args))
    result = run(args.input, args.output, opts)
    u = result.unmixing
    print(f"transition: {result.num_frames} frames at {result.size[0]}x{result.size[1]} -> {args.output}: "
          f"{result.span_text()}; in {result.seconds:.1f} s ({u.work_text()}, {u.device})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return run_info()
        with _stop_signals_interrupt():
            return {"fgbg": run_fgbg, "transition": run_transition}[args.command](args)
    except InputError as error:
        print(f"ddip-video {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        print(f"ddip-video {args.command}: {how}; no output was written", file=sys.stderr)
        return 128 + signum
    except (MemoryError, RuntimeError) as error:  # torch.OutOfMemoryError is a RuntimeError
        where = _out_of_memory(error)
        if where is None:
            raise
        print(f"ddip-video {args.command}: error: out of {where} memory; no output was written. Try a lower "
              "--max-side or a shorter clip", file=sys.stderr)
        return 1
    except OSError as error:
        if not _cannot_write(error, args.output):
            raise
        print(f"ddip-video {args.command}: error: cannot write the results into {args.output} "
              f"({error.strerror}); no output was written", file=sys.stderr)
        return 1


class Stopped(KeyboardInterrupt):
    """A stop signal other than Ctrl-C, raised where the run is so that it unwinds as
    Ctrl-C does: the staged outputs removed, OUTDIR as it was."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals_interrupt():
    """SIGTERM (kill, timeout, a job scheduler) and SIGHUP (a closed terminal) would
    end the process at once and leave OUTDIR with a hidden staging folder; within this
    block they raise Stopped instead. A second such signal ends the process as before."""
    def stop(signum, frame):
        signal.signal(signum, signal.SIG_DFL)
        raise Stopped(signum)

    previous = {}
    for signum in (getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)):
        if signal.getsignal(signum) is signal.SIG_IGN:  # nohup: asked to run on
            continue
        try:
            previous[signum] = signal.signal(signum, stop)
        except ValueError:  # not the main thread: signals cannot be caught here
            break
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# Failures of the storage the results go to: a full disk or quota, a file too large
# for the file system, a read-only file system (EDQUOT is not defined everywhere).
_WRITE_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS")
                          if hasattr(errno, name))


def _cannot_write(error: OSError, outdir: str) -> bool:
    """Whether error is the output folder's storage failing (not the input's, not a bug)."""
    if error.errno in _WRITE_ERRNOS:
        return True
    if error.errno in (errno.EACCES, errno.EPERM) and error.filename:
        return Path(os.fsdecode(error.filename)).resolve().is_relative_to(Path(outdir).resolve())
    return False


def _out_of_memory(error: BaseException) -> str | None:
    """'GPU' or 'host' where error is an allocation failure (torch's, numpy's), else None."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return "GPU" if "CUDA" in str(error) or "GPU" in str(error) else "host"
    if isinstance(error, MemoryError) or "can't allocate memory" in str(error):
        return "host"
    return None


if __name__ == "__main__":
    sys.exit(main())
