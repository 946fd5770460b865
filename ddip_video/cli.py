"""The `ddip-video` command: info, and one subcommand per task (ddip_video.tasks).
Building the parser imports no torch, so --help and --version answer at once."""
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
from .tasks import TASKS, task_cli


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


SEED_LIMIT = 2**64  # torch's generator takes seeds below this
MAX_FPS = 1000     # high-speed footage is played at its own rate, not at 1000s of frames a second


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {SEED_LIMIT - 1}, got {text}")
    return value


def _fps(text: str) -> Fraction:
    try:
        value = Fraction(text).limit_denominator(1001)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected a frame rate like 24, 29.97 or 30000/1001, got {text!r}") from None
    if not 0 < value <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"expected a frame rate above 0 and at most {MAX_FPS}, got {text}")
    return value


def _outdir(text: str) -> str:
    """OUTDIR, checked where it is parsed: not empty, no name in it longer than the
    file system takes."""
    if not text:
        raise argparse.ArgumentTypeError("OUTDIR is empty (use . for the current folder)")
    path = os.fsencode(text)
    if len(path) >= _PATH_MAX or any(len(part) > _NAME_MAX for part in path.split(b"/")):
        raise argparse.ArgumentTypeError(f"the path is too long for the file system: {_printable(text)[:80]}...")
    return text


_NAME_MAX = 255    # bytes in one name (Linux, macOS, Windows file systems)
_PATH_MAX = 4096   # bytes in a path (Linux)


def _printable(text: str) -> str:
    """text with its control characters escaped (a newline in a path shown as \\n), so
    that an error message stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class _OneLineParser(argparse.ArgumentParser):
    """An option error is one line (the usage block is one --help away), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_printable(message)} (see {self.prog} --help)\n")


def _add_common(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """The options every task takes; defaults: the task's max_side and iters per device
    (None is passed on: the task fills them in for the device it runs on)."""
    def per_device(key: str) -> str:
        return f"{defaults['cuda'][key]} on a GPU, {defaults['cpu'][key]} on a CPU"

    parser.add_argument("input", help="a video file (mp4, mov, mkv, webm, avi, ...) or a folder of .jpg/.png frames")
    parser.add_argument("-o", "--output", required=True, type=_outdir, metavar="OUTDIR", help="folder for the results")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--max-side", type=_positive_int, default=None, metavar="N",
                        help=f"working resolution: longer side in pixels (default {per_device('max_side')}); "
                             "outputs keep the input's size")
    parser.add_argument("--iters", type=_positive_int, default=None, metavar="N",
                        help=f"optimisation steps (default {per_device('iters')})")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    parser.add_argument("--fps", type=_fps, default=None,
                        help="frame rate of a folder of frames (default 24); ignored for videos")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _common_options(args) -> dict:
    """The TaskOptions fields from the flags _add_common declares."""
    return dict(device=args.device, max_side=args.max_side, iters=args.iters, seed=args.seed, fps=args.fps,
                progress=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="ddip-video", description=(
        "Split a video into layers with a temporally coupled Double-DIP (no training data)."))
    parser.add_argument("--version", action="version", version=f"ddip-video {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("info", help="versions, built kernels, devices and encoders")
    for name in TASKS:
        task = task_cli(name)
        task_parser = sub.add_parser(name, help=task.HELP, description=task.DESCRIPTION)
        _add_common(task_parser, task.DEFAULTS)
        task.add_arguments(task_parser)
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return run_info()
        with _stop_signals_interrupt():
            return task_cli(args.command).run(args, _common_options(args))
    except InputError as error:
        print(f"ddip-video {args.command}: error: {_printable(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        return _report_stop(args.command, stop, stop)
    except SystemError as error:
        # a signal handler's raise inside a C call that then returned a value (pathlib's
        # __fspath__ under np.fromfile, seen in CI): CPython wraps the stop in a SystemError
        if not isinstance(error.__cause__, KeyboardInterrupt):
            raise
        return _report_stop(args.command, error.__cause__, error)
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
        print(f"ddip-video {args.command}: error: cannot write the results into {_printable(args.output)} "
              f"({error.strerror}); no output was written", file=sys.stderr)
        return 1


def _report_stop(command: str, stop: KeyboardInterrupt, raised: BaseException) -> int:
    """The one line a stop signal ends a run with, and its exit status (128 + the signal)."""
    signum = getattr(stop, "signum", signal.SIGINT)
    how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    kept = "".join(f"; {note}" for note in getattr(raised, "__notes__", ()))  # finished work kept for --resume
    print(f"ddip-video {command}: {how}; no output was written{kept}", file=sys.stderr)
    return 128 + signum


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
    block they raise Stopped instead. A second such signal ends the process as before.
    Ctrl-C raises KeyboardInterrupt as always, once: a second one is ignored."""
    def stop(signum, frame):
        signal.signal(signum, signal.SIG_DFL)
        raise Stopped(signum)

    def interrupt(signum, frame):
        # a second Ctrl-C while the first unwinds would break off the clean-up (the
        # staged outputs left half removed, a traceback from an exit handler): ignored
        # until the process ends
        signal.signal(signum, signal.SIG_IGN)
        previous.pop(signum, None)
        raise KeyboardInterrupt

    previous = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        with contextlib.suppress(ValueError):  # not the main thread
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
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
        for signum, handler in list(previous.items()):
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
