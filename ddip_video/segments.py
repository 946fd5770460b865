"""Clips of any length: a shot longer than a few seconds is separated in overlapping
segments, each with its own motion hints, camera path and scene, the model
warm-started from the segment before; the results are blended across each overlap
and, for a long clip, kept on disk chunk by chunk (FrameStore), so that the memory a
run holds does not grow with the clip.

`fgbg` reads its input through `read_segments` (one decode, only one segment's frames
at the working size held) and joins its per-segment results with `SeamBlender`;
`transition` does not use them yet (it holds the whole clip).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .analysis.cuts import thumbnails
from .errors import InputError
from .runtime import release_free_memory
from .video import iter_frames
from .video.reader import store_frame

# A segment is at most this many frames (5 s at 30 fps): the motion hints of 150 frames
# at 427x240 take some 0.75 GB; the model sees each frame often enough in its steps.
SEGMENT_FRAMES = 150
# Frames two segments of a shot share: the results are blended over them (a linear
# ramp), and the later segment's camera path is chained to the earlier one's there.
SEGMENT_OVERLAP = 20


@dataclass(frozen=True)
class Segment:
    index: int       # in the whole plan
    shot: int
    first: int       # frames first .. end - 1 of the clip
    end: int
    overlap: int     # frames shared with the segment before (0: the first of its shot)

    @property
    def length(self) -> int:
        return self.end - self.first

    @property
    def warm(self) -> bool:
        """Whether it continues a segment of the same shot (its model starts from that one's)."""
        return self.overlap > 0


def plan_segments(num_frames: int, cuts: Iterable[int] = (), length: int | None = None,
                  overlap: int | None = None) -> list[Segment]:
    """Each shot (frames `cuts` start a new one) in as few segments of at most
    `length` frames (default SEGMENT_FRAMES) as it takes, consecutive ones sharing
    `overlap` frames (default SEGMENT_OVERLAP). A shot of at most `length` frames is
    one segment; in a longer one every segment is `length` frames but the last two,
    which share the rest evenly (each at least (length + overlap) / 2 frames): the
    memory a segment takes is then that of `length` frames whatever the shot's length,
    and no segment is left with a few frames."""
    length = SEGMENT_FRAMES if length is None else length
    overlap = SEGMENT_OVERLAP if overlap is None else overlap
    if not 0 <= overlap < length // 2:
        raise ValueError(f"overlap {overlap} must be under half the length {length}")
    bounds = [0, *cuts, num_frames]
    plan: list[Segment] = []
    for shot, (a, b) in enumerate(zip(bounds, bounds[1:])):
        count = max(1, math.ceil((b - a - overlap) / (length - overlap)))
        starts = [a + i * (length - overlap) for i in range(count - 1)] or [a]
        if count > 1:  # the last two share what the full ones leave: rest = their lengths - overlap
            rest = b - starts[-1]
            starts.append(starts[-1] + (rest + overlap + 1) // 2 - overlap)
        ends = [*(s + overlap for s in starts[1:]), b]
        for i, (first, end) in enumerate(zip(starts, ends)):
            plan.append(Segment(len(plan), shot, first, end, overlap if i else 0))
    return plan


def has_long_shot(plan: list[Segment]) -> bool:
    """Whether some shot of the plan takes more than one segment."""
    return len(plan) > plan[-1].shot + 1


def overlap_after(plan: list[Segment], segment: Segment) -> int:
    """Frames `segment` shares with the one after it."""
    following = plan[segment.index + 1] if segment.index + 1 < len(plan) else None
    return following.overlap if following is not None else 0


def read_segments(path, plan: list[Segment], size: tuple[int, int], fps=None
                  ) -> Iterator[tuple[Segment, torch.Tensor]]:
    """(segment, its frames: n x 3 x h x w float in [0, 1] at size = (w, h)) for each
    segment of the plan, in order, from one pass over the input: only one segment's
    frames (and the overlap carried into the next) are held at a time."""
    frames = iter(iter_frames(path, fps))
    w, h = size
    previous: tuple[Segment, torch.Tensor] | None = None
    for segment in plan:
        chunk = torch.empty(segment.length, 3, h, w)
        shared = 0
        if previous is not None and segment.overlap:
            shared = segment.overlap
            chunk[:shared] = previous[1][previous[0].length - shared:]
        previous = None  # the last segment's frames are released before more are read
        for k in range(shared, segment.length):
            frame = next(frames, None)
            if frame is None:
                raise InputError(f"{Path(path).name}: the input changed while it was being read")
            store_frame(chunk[k], frame)
        previous = (segment, chunk)
        yield segment, chunk


def read_thumbnails(path, num_frames: int, size: tuple[int, int], fps=None) -> np.ndarray:
    """T x D: each frame at size = (w, h), then as a thumbnail (analysis.cuts.thumbnails),
    from one pass over the input: what finding the hard cuts needs, without holding
    the frames."""
    frame_at_size = torch.empty(3, size[1], size[0])
    thumbs = None  # one block, filled in place: rows kept one by one pinned the freed frames' memory
    count = 0
    for count, frame in enumerate(iter_frames(path, fps), 1):
        if count > num_frames:
            break
        store_frame(frame_at_size, frame)
        row = thumbnails(frame_at_size[None])[0]
        if thumbs is None:
            thumbs = np.empty((num_frames, len(row)), row.dtype)
        thumbs[count - 1] = row
    if count != num_frames:
        raise InputError(f"{Path(path).name}: the input changed while it was being read")
    release_free_memory()
    return thumbs


class FrameStore:
    """Per-frame arrays (a float16 copy, or float32: exact) kept on disk in chunks,
    one file per chunk, read back chunk by chunk: a long clip's masks and layers at
    the working size without holding them in memory. Indexing gives float32 tensors."""

    def __init__(self, folder: Path, name: str, chunks: int = 0, dtype=np.float16):
        """chunks: how many chunks already in the folder to keep (a resumed run's); any
        after them (written by a run killed before its checkpoint) are removed."""
        self.folder, self.name, self.dtype = Path(folder), name, dtype
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ends: list[int] = []   # frame count after each chunk
        self.frame_shape: tuple[int, ...] | None = None
        self._cached: tuple[int, np.ndarray] | None = None
        for chunk in range(chunks):
            kept = np.load(self._file(chunk), mmap_mode="r")
            self.frame_shape = tuple(kept.shape[1:])
            self.ends.append(len(self) + len(kept))
        for file in self.folder.glob(f"{self.name}-*.npy"):
            if int(file.stem.rsplit("-", 1)[1]) >= chunks:
                file.unlink()

    def append(self, array: torch.Tensor | np.ndarray) -> None:
        array = np.asarray(array.cpu() if isinstance(array, torch.Tensor) else array)
        if len(array) == 0:
            return
        self.frame_shape = self.frame_shape or tuple(array.shape[1:])
        np.save(self._file(len(self.ends)), array.astype(self.dtype))
        self.ends.append(len(self) + len(array))

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *(self.frame_shape or ()))

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            frames = [self[t] for t in range(*key.indices(len(self)))]
            return torch.stack(frames) if frames else torch.empty(0, *(self.frame_shape or ()))
        t = int(key) + (len(self) if int(key) < 0 else 0)
        if not 0 <= t < len(self):
            raise IndexError(f"frame {key} of {len(self)}")
        chunk = int(np.searchsorted(self.ends, t, side="right"))
        if self._cached is None or self._cached[0] != chunk:
            self._cached = (chunk, np.load(self._file(chunk)))
        start = self.ends[chunk - 1] if chunk else 0
        return torch.from_numpy(self._cached[1][t - start].astype(np.float32))

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[t] for t in range(len(self)))

    def _file(self, chunk: int) -> Path:
        return self.folder / f"{self.name}-{chunk:05d}.npy"


class FrameRange:
    """Frames start..stop-1 of a T x C x h x w tensor or FrameStore, as they are
    or inverted (1 - x), read only where indexed: a long clip's analysis reads
    its frames from disk a few at a time. Indexing by a slice gives a tensor,
    part() a narrower range without reading."""

    def __init__(self, source, start: int = 0, stop: int | None = None, inverted: bool = False):
        self.source, self.start, self.inverted = source, start, inverted
        self.stop = len(source) if stop is None else stop

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *tuple(self.source.shape[1:]))

    def part(self, start: int, stop: int | None = None) -> "FrameRange":
        first, last, _ = slice(start, stop).indices(len(self))
        return FrameRange(self.source, self.start + first, self.start + max(first, last), self.inverted)

    def invert(self) -> "FrameRange":
        return FrameRange(self.source, self.start, self.stop, not self.inverted)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            first, last, step = key.indices(len(self))
            if step != 1:
                raise IndexError("a FrameRange is read in steps of one frame")
            frames = self.source[self.start + first:self.start + max(first, last)]
        else:
            t = int(key) + (len(self) if int(key) < 0 else 0)
            if not 0 <= t < len(self):
                raise IndexError(f"frame {key} of {len(self)}")
            frames = self.source[self.start + t]
        frames = frames.float()
        return 1.0 - frames if self.inverted else frames

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[t] for t in range(len(self)))


def linear_ramp(count: int) -> torch.Tensor:
    """The later segment's weights over an overlap of `count` frames: (k + 1) / (count + 1)."""
    return torch.arange(1, count + 1, dtype=torch.float32) / (count + 1)


class SeamBlender:
    """Joins segments' per-frame results (tensors named alike, frames first) into the
    clip's: over each overlap the two segments' results are blended by a linear ramp
    (the earlier one fading out), and each frame is handed to `sink(name, tensor)` once
    it is final, in order. The camera path is chained: a later segment's homographies
    (each frame to the segment's first) are carried into the shot's first frame through
    the earlier segment's homography of that frame."""

    def __init__(self, plan: list[Segment], sink: Callable[[str, torch.Tensor], None]):
        self.plan, self.sink = plan, sink
        self.tail: dict[str, torch.Tensor] = {}
        self.tail_homographies: np.ndarray | None = None
        self.homographies: list[np.ndarray] = []

    def add(self, segment: Segment, results: dict[str, torch.Tensor], homographies: np.ndarray) -> None:
        """results: name -> segment.length x ... tensors; homographies: each frame to the segment's first."""
        homographies = np.asarray(homographies, np.float64)
        if segment.overlap:
            anchor = self.tail_homographies[0]  # the shot's path at the segment's first frame
            homographies = np.einsum("ij,tjk->tik", anchor, homographies)
            homographies[:segment.overlap] = self.tail_homographies  # the earlier path, unbroken
            ramp = linear_ramp(segment.overlap)
            for name, value in results.items():
                weight = ramp.view(-1, *[1] * (value.dim() - 1))
                results[name] = torch.cat([(1 - weight) * self.tail[name] + weight * value[:segment.overlap],
                                           value[segment.overlap:]])
        keep = overlap_after(self.plan, segment)
        final = segment.length - keep
        for name, value in results.items():
            self.sink(name, value[:final])
        self.homographies.append(homographies[:final])
        # copies: a slice would keep the whole segment's results alive
        self.tail = {name: value[final:].clone() for name, value in results.items()}
        self.tail_homographies = homographies[final:] if keep else None

    def saved(self) -> dict:
        """What restore() needs to go on after the segments added so far."""
        return dict(tail=self.tail, tail_homographies=self.tail_homographies, homographies=self.homographies)

    def restore(self, saved: dict) -> None:
        self.tail, self.tail_homographies, self.homographies = (
            saved["tail"], saved["tail_homographies"], list(saved["homographies"]))

    def camera_path(self) -> np.ndarray:
        """T x 3 x 3: each frame to its shot's first frame."""
        return np.concatenate(self.homographies)


def run_manifest(input_path, opts, device: torch.device, **extra) -> dict:
    """What a run's checkpoints belong to: the input file as it is now, the device, and
    every option that changes the result (not --resume or the progress bars), with
    `extra` (what else decides the result)."""
    path = Path(input_path).resolve()
    try:
        stat = path.stat()
        size, modified = stat.st_size, stat.st_mtime_ns
    except OSError:  # no input: the task's check says so, in its words
        size = modified = None
    options = {key: str(value) for key, value in asdict(opts).items() if key not in ("resume", "progress")}
    return dict(input=str(path), size=size, modified=modified, device=device.type, options=options, **extra)


class Checkpoints:
    """A long run's finished segments, in its staging folder, for --resume: after each
    segment, what the next one starts from (the model's weights, the blender's
    overlap, the counters), written whole or not at all; `manifest` says which input
    and options they belong to."""

    MANIFEST = "manifest.json"

    def __init__(self, folder: Path, manifest: dict, on_save: Callable[[], None] = lambda: None):
        """on_save: called once some segment is recorded (now, for a resumed run's)."""
        self.folder, self.on_save = Path(folder), on_save
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.matches(self.folder, manifest):
            (self.folder / self.MANIFEST).write_text(json.dumps(manifest, sort_keys=True))
        if any(self.folder.glob("segment-*.pt")):
            on_save()

    @classmethod
    def matches(cls, folder: Path, manifest: dict) -> bool:
        try:
            return json.loads((Path(folder) / cls.MANIFEST).read_text()) == json.loads(json.dumps(manifest))
        except (OSError, ValueError):
            return False

    def save(self, index: int, payload: dict) -> None:
        partial = self.folder / f".segment-{index:05d}.pt"
        torch.save(payload, partial)
        os.replace(partial, self.folder / f"segment-{index:05d}.pt")  # whole, or not there
        self.on_save()

    def load(self, index: int) -> dict | None:
        """The payload saved for `index`, or None."""
        found = self.folder / f"segment-{index:05d}.pt"
        return torch.load(found, weights_only=False) if found.exists() else None

    def last(self) -> tuple[int, dict] | None:
        """(index, payload) of the last finished segment, or None."""
        found = sorted(self.folder.glob("segment-*.pt"))
        if not found:
            return None
        return int(found[-1].stem.split("-")[1]), torch.load(found[-1], weights_only=False)
