"""What a task's run needs from the machine: the device and its defaults, the
seed, the memory a clip takes, and the input read at a working size."""
from __future__ import annotations

import ctypes
import ctypes.util
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from .errors import InputError
from .nets import smallest_side
from .options import TaskOptions
from .video import VideoInfo, probe, working_size


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here (try --device cpu)")
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def with_device_defaults(opts: TaskOptions, defaults: dict) -> tuple[TaskOptions, torch.device]:
    """(opts with max_side and iters filled in where None from defaults[device type], the device).
    defaults: {"cuda": dict(max_side=..., iters=...), "cpu": {...}}."""
    device = choose_device(opts.device)
    chosen = defaults[device.type]
    return replace(opts, max_side=opts.max_side or chosen["max_side"], iters=opts.iters or chosen["iters"]), device


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    cv2.setRNGSeed(seed % 2**31)  # RANSAC and GrabCut draw from OpenCV's generator
    return torch.Generator().manual_seed(seed)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


LOADED_BYTES = 0.25 * 2**30  # resident once Python, torch, OpenCV and PyAV are loaded (measured)


@dataclass(frozen=True)
class MemoryNeed:
    """About how much memory a task takes for a clip: base + per_frame bytes a frame."""
    base: float
    per_frame: float

    def total(self, num_frames: int) -> float:
        return self.base + self.per_frame * num_frames


def check_clip(path, max_side: int | None, fps=None, memory: Callable[[VideoInfo], MemoryNeed] | None = None,
               frames_held: int | None = None, held_text: str | None = None) -> VideoInfo:
    """The input described (probe), after checking that the working size that max_side
    gives keeps the pixels a side the nets need (smallest_side) and, given `memory`
    (what the task needs for a clip), that the machine has that much for `frames_held`
    frames at a time (default: the whole clip)."""
    min_side = smallest_side()
    if max_side is not None and max_side < min_side:
        raise InputError(f"--max-side must be at least {min_side}, got {max_side}")
    info = probe(path, fps)
    try:
        check_working_size((info.width, info.height), working_size(info.width, info.height, max_side), min_side)
    except InputError as error:
        raise InputError(f"{info.path.name}: {error}") from None
    if memory is not None:
        check_memory(info, memory(info), frames_held=frames_held,
                     **({"held_text": held_text} if held_text else {}))
    return info


def check_memory(info: VideoInfo, need: MemoryNeed, available: float | None = None,
                 frames_held: int | None = None, held_text: str = "a segment of {held} of its frames needs") -> None:
    """Raises InputError, before any work, when the clip needs more memory than
    is free (available: bytes; default available_memory()). Without this, Linux
    kills the process without a word once memory runs out. frames_held: the frames
    a task holds at a time where it streams a long clip in segments (default: all);
    held_text: what those are, for the message ({held}: their count)."""
    available = available_memory() if available is None else available
    held = info.num_frames if frames_held is None else min(frames_held, info.num_frames)
    needed = need.total(held)
    if available is None or needed <= available:
        return
    if held < info.num_frames:  # the length is not the problem: what is held at a time does not fit
        raise InputError(f"{info.path.name}: {held_text.format(held=held)} about {needed / 2**30:.1f} "
                         f"GiB of memory and {available / 2**30:.1f} GiB is free")
    fits = max(1, int((available - need.base) // need.per_frame))
    raise InputError(f"{info.path.name}: its {info.num_frames} frames need about {needed / 2**30:.1f} GiB of "
                     f"memory and {available / 2**30:.1f} GiB is free; split the clip into parts of at most "
                     f"{fits} frames")


def release_free_memory() -> None:
    """Hands the heap's free pages back to the system (glibc's malloc_trim; elsewhere
    nothing). Freed arrays the size of a frame stay resident where smaller objects
    that live on were allocated after them: over the 20 segments of a 3000-frame clip
    fgbg's peak resident set grew from 1.31 to 1.87 GB so (benchmarks/notes/memory.md)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return None


_LIBC = _glibc()


def available_memory() -> float | None:
    """Bytes of memory this process can still take: the kernel's MemAvailable,
    less where the process's cgroup (a container) has a lower limit; None where
    unknown (not Linux)."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE)
    if found is None:
        return None
    available = int(found.group(1)) * 1024
    room = cgroup_room()
    return float(min(available, room) if room is not None else available)


def cgroup_room(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The process's cgroup memory limit less what the cgroup uses (not counting
    page cache it can drop), or None where it has no limit or none can be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, group = line.split(":", 2)
        if controllers == "":  # cgroup v2
            folder, names = root / group.lstrip("/"), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # cgroup v1
            folder = root / "memory" / group.lstrip("/")
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        try:
            limit, usage = (int((folder / name).read_text()) for name in names[:2])
            stat = dict(entry.split() for entry in (folder / "memory.stat").read_text().splitlines())
        except (OSError, ValueError):  # "max" (no limit), or a folder this process cannot see
            continue
        if limit < 2**60:
            return limit - max(0, usage - int(stat.get(names[2], 0)))
    return None


def check_working_size(input_size: tuple[int, int], size: tuple[int, int], min_side: int) -> None:
    """Raises InputError when the working size (w, h) has a side under min_side;
    the advice depends on whether the input itself is that small."""
    if min(input_size) < min_side:
        raise InputError(f"the input is {input_size[0]}x{input_size[1]}: too small (at least {min_side} "
                         "pixels a side)")
    if min(size) < min_side:
        w, h = input_size
        enough = next(n for n in range(max(size), max(w, h) + 1) if min(working_size(w, h, n)) >= min_side)
        fits = working_size(w, h, enough)
        raise InputError(f"the working size {size[0]}x{size[1]} is too small (at least {min_side} pixels "
                         f"a side): --max-side {enough} gives {fits[0]}x{fits[1]}")
