"""The clean plate: the scene behind the foreground, at the input's full size,
from the frames that see it.

Where the mask holds the foreground in frame t (the hole), the background comes
from the input frames around t that see that spot, each aligned onto frame t by
the camera's path that the model's background is drawn through. Up to `samples`
of them, the nearest in time first, are averaged per pixel, each weighted by how
well it matches frame t on a ring around the hole and by how near it is in time
(one homography fits a handheld scene less the further apart the frames): a source
that is misaligned or lit otherwise counts for little, and the average of several
keeps the fill steady from frame to frame. The hole also takes in what the mask
missed next to it: pixels where frame t departs from the median of its nearest
sources by more than 20 grey levels and twice those sources' own spread (water that
the sources disagree on stays), connected to the hole; the ring that judges the
sources stays the mask's (benchmarks/notes/fgbg.md, "What the mask missed, taken in
by the fill"). What no frame around t sees comes from
the shot's plate (a panorama of its frames' backgrounds in its first frame's
coordinates, written as plate.png); what no frame sees at all, from the model's
background layer. Outside the hole the input is left as it is. (Measured
alternatives, benchmarks/notes/fgbg.md, "The clean plate": refining each source's
alignment by optical flow, a median consensus, a per-pixel weighting and keeping the
input where it agrees with the fill all scored lower, the same, or cost more.)

A scene with depth (the motion hints' `parallax`) is not one homography: there each
source, aligned by the homography, is moved onto frame t by the optical flow left
between them, measured where both show the background and carried smoothly into the
hole (the flow inside it would follow the foreground). On goat-shaped holes placed over
goat's real background this takes the fill from 27.9 to 28.8 dB (benchmarks/notes/fgbg.md,
"The clean plate with depth"); on flat scenes, where it was tried without the carrying
into the hole, it lost 1.6 dB, so they keep the homography alone.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice, tee
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from .model import scene_box


@dataclass(frozen=True)
class PlateSettings:
    samples: int = 9            # sources averaged per pixel of the hole, at most
    reach: int = 20             # how far in time (frames) sources are looked for
    sources: int = 16           # sources aligned per frame, at most
    hole_level: float = 0.25    # mask above this is the foreground to remove
    grow: float = 2.0           # the hole reaches this far beyond it (px at 480 lines): the mask's soft edge
    cover_level: float = 0.5    # a source shows the scene where its mask is below this...
    cover_grow: float = 1.0     # ... and this far (px at 480 lines) from where it is above
    margin: float = 24.0        # context kept around the hole (px at 480 lines)
    ring: float = 8.0           # width of the ring that judges each source (px at 480 lines)
    sharpness: float = 4.0      # a source's weight: 1 / (its mean ring mismatch + 2) ** sharpness,
    apart: float = 1.0          # divided by (1 + frames between it and the target) ** apart
    plate_frames: int = 25      # frames spread over a shot that make its plate
    band: float = 24.0          # the hole takes in what departs from the sources this far beyond it (px at 480 lines)...
    departs: float = 20.0       # ... by more than this (grey levels, 0-255) ...
    spread: float = 2.0         # ... and this many times the sources' own spread there ...
    judges: int = 9             # ... judged by the median of this many sources (at least 3)


def _px(length: float, height: int) -> int:
    """A length given at 480 lines, in pixels of a frame `height` lines high."""
    return max(1, round(length * height / 480))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _shift(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


class CameraPath:
    """The camera's path at full size: for each frame, the homography mapping its
    pixels to its shot's first frame's."""

    def __init__(self, to_first: np.ndarray):
        self.to_first = np.asarray(to_first, np.float64)

    def between(self, source: int, target: int) -> np.ndarray:
        """The homography mapping frame `source`'s pixels onto frame `target`'s."""
        h = np.linalg.solve(self.to_first[target], self.to_first[source])
        return h / h[2, 2]


def hole_of(mask: np.ndarray, settings: PlateSettings = PlateSettings()) -> np.ndarray:
    """The pixels to fill in a frame whose full-size mask (H x W in [0, 1]) is `mask`:
    the foreground, grown by the mask's soft edge."""
    return _grown(mask > settings.hole_level, settings.grow)


def cover_of(mask: np.ndarray, settings: PlateSettings = PlateSettings()) -> np.ndarray:
    """Where a frame whose full-size mask is `mask` does not show the scene, as a source
    for other frames' fills: its foreground as the mask decides it, hardly grown. Tighter
    than the hole it fills (what must go is not what can be trusted): on the removal
    benchmark's clips a source's every pixel counts, the fill coming from nearer frames
    (benchmarks/notes/fgbg.md, "The clean plate")."""
    return _grown(mask > settings.cover_level, settings.cover_grow)


def _grown(region: np.ndarray, length: float) -> np.ndarray:
    return cv2.dilate(region.astype(np.uint8), _disk(_px(length, region.shape[0]))) > 0


def _box(hole: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    return (max(0, int(xs.min()) - margin), max(0, int(ys.min()) - margin),
            min(w, int(xs.max()) + margin + 1), min(h, int(ys.max()) + margin + 1))


class Plate:
    """A shot's background in its first frame's coordinates: the panorama of a
    moving camera's scene, the empty set of a still one. `colour` (H x W x 3
    float32, 0-255) and `seen` (H x W bool) over a canvas whose pixel (0, 0) is
    the first frame's pixel `origin`."""

    def __init__(self, colour: np.ndarray, seen: np.ndarray, origin: tuple[int, int]):
        self.colour, self.seen, self.origin = colour, seen, origin

    def rgba(self) -> np.ndarray:
        """The plate as RGBA uint8, transparent where no frame saw the scene."""
        alpha = np.where(self.seen, 255, 0).astype(np.uint8)
        return np.dstack([np.clip(self.colour + 0.5, 0, 255).astype(np.uint8), alpha])

    def view(self, to_first: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
        """The plate as a frame whose homography to the first frame is `to_first` sees
        it, over the crop box = (x0, y0, x1, y1) of that frame: colour and where seen."""
        x0, y0, x1, y1 = box
        crop_to_canvas = _shift(-self.origin[0], -self.origin[1]) @ to_first @ _shift(x0, y0)
        size, inverse = (x1 - x0, y1 - y0), cv2.WARP_INVERSE_MAP
        colour = cv2.warpPerspective(self.colour, crop_to_canvas, size, flags=cv2.INTER_LINEAR | inverse,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        seen = cv2.warpPerspective(self.seen.astype(np.uint8), crop_to_canvas, size,
                                   flags=cv2.INTER_NEAREST | inverse, borderMode=cv2.BORDER_CONSTANT) > 0
        return colour, seen


def plate_frames(num_frames: int, count: int) -> list[int]:
    """The frames, spread over a shot, that make its plate."""
    return sorted(set(np.linspace(0, num_frames - 1, min(num_frames, count)).round().astype(int).tolist()))


class PlateBuilder:
    """A shot's plate, made from the frames plate_frames() picks as they stream by:
    each frame's background warped into the first frame's coordinates; each point
    then takes the per-pixel median of the frames that saw it (robust to what the
    masks missed). to_first[t]: frame t's homography to the shot's first frame.

    In a scene with depth (`parallax`) one homography puts near and far things of a
    frame elsewhere than the first frame shows them, and their median smears. The
    plate written (plate.png) then follows the depth: each frame, once warped, is moved
    by the optical flow onto what the frames before it made of the scene (the first
    frame's own view, and beyond it what later frames added), measured where both show
    the scene and carried smoothly beyond (moved_by_flow, as the fill follows the
    depth), and each point is the median of the first DEPTH_PLATE_FRAMES that saw it.
    The fill's plate of last resort stays the homographies' median, which the fill
    moves onto each frame by the flow: seen from other frames than the first, the
    plate made for the first's view matches less (benchmarks/notes/fgbg.md, "The
    plate with depth")."""

    def __init__(self, to_first: np.ndarray, size: tuple[int, int], settings: PlateSettings = PlateSettings(),
                 memory: int = 1 << 30, parallax: bool = False):
        self.to_first, self.parallax = to_first, parallax
        self.origin = (x0, y0, x1, y1) = scene_box(to_first, *size)
        self.canvas = (x1 - x0 + 1, y1 - y0 + 1)
        # each frame kept costs the canvas in colour and coverage: a big canvas takes fewer
        fits = memory // (4 * self.canvas[0] * self.canvas[1])
        self.wanted = set(plate_frames(len(to_first), max(3, min(settings.plate_frames, fits))))
        # filled in place as the frames come: stacking lists at the end held every frame twice
        # (0.8 GB at the largest canvas, 2562x1440, against 0.4 GB)
        width, height = self.canvas
        self.warped = np.zeros((len(self.wanted), height, width, 3), np.uint8)
        self.seen = np.zeros((len(self.wanted), height, width), bool)
        self.added = 0

    def add(self, t: int, frame: np.ndarray, cover: np.ndarray) -> None:
        """Frame t of the shot (H x W x 3 uint8) and where it does not show the scene
        (cover_of); ignored unless wanted. Frames come in time order."""
        if t not in self.wanted:
            return
        h = _shift(-self.origin[0], -self.origin[1]) @ self.to_first[t]
        k, self.added = self.added, self.added + 1
        cv2.warpPerspective(frame, h, self.canvas, dst=self.warped[k], flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT)
        self.seen[k] = cv2.warpPerspective((~cover).astype(np.uint8), h, self.canvas, flags=cv2.INTER_NEAREST,
                                           borderMode=cv2.BORDER_CONSTANT) > 0

    def plates(self) -> tuple[Plate, Plate]:
        """The plate the fill falls back on, and the plate written (plate.png): one and
        the same unless the scene has depth. The frames kept are moved in place."""
        for_fill = self._median()
        if not self.parallax:
            return for_fill, for_fill
        self._follow_depth()
        return for_fill, self._median(DEPTH_PLATE_FRAMES)

    def _follow_depth(self) -> None:
        """Moves each frame kept, in time order, onto the scene the ones before it made."""
        flow = _flow_estimator()
        scene, scene_seen = self.warped[0].copy(), self.seen[0].copy()
        for k in range(1, self.added):
            self.warped[k], self.seen[k] = moved_by_flow(flow, self.warped[k], self.seen[k], scene,
                                                         self.seen[k] & scene_seen)
            new = self.seen[k] & ~scene_seen
            scene[new] = self.warped[k][new]
            scene_seen |= new

    def _median(self, first: int | None = None) -> Plate:
        """Per point the median of the frames that saw it (only the `first` that did, in time order)."""
        stack, seen = self.warped[:self.added], self.seen[:self.added]
        width, height = self.canvas
        colour = np.zeros((height, width, 3), np.float32)
        rows = max(1, (8 << 20) // (len(stack) * width * 3 * 4))  # a strip at a time: the float stack stays small
        for r in range(0, height, rows):
            part, used = stack[:, r:r + rows].astype(np.float32), seen[:, r:r + rows]
            if first is not None:
                used = used & (np.cumsum(used, axis=0, dtype=np.int32) <= first)
            part[~used] = np.nan
            colour[r:r + rows] = _nan_median(part)
        return Plate(colour, seen.any(0), self.origin[:2])


def _nan_median(stack: np.ndarray) -> np.ndarray:
    """The median over axis 0 ignoring NaN; 0 where all are NaN (no frame saw the point)."""
    count = (~np.isnan(stack[..., :1])).sum(0)
    ordered = np.sort(stack, axis=0)  # NaN sort last
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[None] // 2, 0)[0]
    high = np.take_along_axis(ordered, np.maximum(count, 1)[None] // 2, 0)[0]
    return np.where(count > 0, 0.5 * (low + high), 0).astype(np.float32)


class PlateRenderer:
    """Fills the holes of one shot's frames from the frames around them (see the
    module's doc). `plate`: the shot's plate (or None); `last_resort(t)`: frame t's
    background where nothing else reaches (H x W x 3 float32, 0-255)."""

    def __init__(self, path: CameraPath, plate: Plate | None, last_resort: Callable[[int], np.ndarray],
                 settings: PlateSettings = PlateSettings(), parallax: bool = False):
        self.path, self.plate, self.last_resort, self.settings = path, plate, last_resort, settings
        self.parallax = parallax
        self.flow = _flow_estimator() if parallax else None
        self.taken_in: np.ndarray | None = None

    def fill(self, t: int, frames: Callable[[int], np.ndarray], holes: Callable[[int], np.ndarray],
             available: range, covers: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
        """Frame t with its hole filled (H x W x 3 float32, 0-255). frames(k), holes(k),
        covers(k): frame k (H x W x 3 uint8), its hole (hole_of) and where it does not
        show the scene as a source (cover_of; by default its hole), for k in `available`
        (the shot's frames at hand, t among them). What it filled beyond the hole (the
        mask missed it) is left in `taken_in` (H x W bool)."""
        covers = covers or holes
        image, hole = frames(t), holes(t)
        out = image.astype(np.float32)
        self.taken_in = np.zeros(hole.shape, bool)
        if not hole.any():
            return out
        s = self.settings
        height = image.shape[0]
        box = x0, y0, x1, y1 = _box(hole, _px(s.margin, height))
        target, crop_hole = out[y0:y1, x0:x1], hole[y0:y1, x0:x1]
        # the ring around the mask's hole shows frame t's background: it judges each source
        ring = ~crop_hole & (cv2.dilate(crop_hole.astype(np.uint8), _disk(_px(s.ring, height))) > 0)
        # two readers of one stream: each source is aligned once, and only as far as it is needed
        judges, sources = tee(self._sources(t, frames, covers, available, box, target, crop_hole))
        if not self.parallax:  # moved by a flow that blurs the depth's edges, the sources judge those edges wrongly
            self.taken_in[y0:y1, x0:x1] = self._departs(target, crop_hole, judges, height)
            crop_hole = crop_hole | self.taken_in[y0:y1, x0:x1]
        ring &= ~crop_hole
        total = np.zeros(crop_hole.shape, np.float32)
        blend = np.zeros((*crop_hole.shape, 3), np.float32)
        count = np.zeros(crop_hole.shape, np.int32)
        for k, source, seen in sources:
            if (count[crop_hole] >= s.samples).all():
                break
            take = crop_hole & seen & (count < s.samples)
            if not take.any():
                continue
            judged = ring & seen
            mismatch = float(np.abs(source[judged] - target[judged]).mean()) if judged.sum() > 50 else 20.0
            weight = (mismatch + 2.0) ** -s.sharpness * (1.0 + abs(k - t)) ** -s.apart
            blend[take] += weight * source[take]
            total[take] += weight
            count[take] += 1
        fill = target.copy()
        found = crop_hole & (count > 0)
        fill[found] = blend[found] / total[found][:, None]
        missing = crop_hole & ~found
        if missing.any():
            fill[missing] = self._elsewhere(t, box, target, crop_hole)[missing]
        out[y0:y1, x0:x1] = np.clip(fill, 0, 255)
        return out

    def _sources(self, t: int, frames, covers, available: range, box, target: np.ndarray, crop_hole: np.ndarray
                 ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Up to `sources` frames around t that see some of the hole, nearest first, each
        aligned onto the crop `box` of frame t: (k, colour, where it shows the scene),
        aligned as they are asked for (the last ones are seldom needed)."""
        s = self.settings
        near = iter(sorted((k for k in available if k != t and abs(k - t) <= s.reach), key=lambda k: (abs(k - t), k)))
        return islice(self._aligned_near(t, near, frames, covers, box, target, crop_hole), s.sources)

    def _aligned_near(self, t: int, near: Iterator[int], frames, covers, box, target, crop_hole):
        for k in near:
            source, seen = self._aligned(k, t, frames(k), covers(k), box)
            if not (seen & crop_hole).any():
                continue  # sees none of the hole: costs a warp, not a try
            if self.parallax:
                source, seen = self._follow_depth(source, seen, target, crop_hole)
            yield k, source, seen

    def _departs(self, target: np.ndarray, crop_hole: np.ndarray, sources: Iterable, height: int) -> np.ndarray:
        """What the mask missed next to its hole: pixels within `band` of it where frame t
        departs from the median of its nearest `judges` sources by more than `departs`
        grey levels and `spread` times those sources' own spread (water and foliage, which
        the sources disagree on, stay), connected to the hole: the classic background
        subtraction cue, against a plate aligned to this very frame."""
        s = self.settings
        band = ~crop_hole & (cv2.dilate(crop_hole.astype(np.uint8), _disk(_px(s.band, height))) > 0)
        judges = [(source[band], seen[band]) for _, source, seen in islice(sources, s.judges)]
        if len(judges) < 3 or not band.any():
            return np.zeros_like(crop_hole)
        stack = np.stack([np.where(seen[:, None], colour, np.nan) for colour, seen in judges])
        median = _nan_median(stack)
        spread = 1.4826 * _nan_median(np.abs(stack - median[None])).mean(-1)
        enough = (~np.isnan(stack[..., 0])).sum(0) >= 3
        departs = np.abs(target[band] - median).mean(-1) > np.maximum(s.departs, s.spread * spread)
        found = np.zeros_like(crop_hole)
        found[band] = departs & enough
        found = cv2.morphologyEx(found.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
        _, parts = cv2.connectedComponents((found | crop_hole).astype(np.uint8))
        touching = np.unique(parts[crop_hole])
        return found & np.isin(parts, touching[touching > 0])

    def _aligned(self, k: int, t: int, source: np.ndarray, source_cover: np.ndarray, box
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Frame k aligned onto the crop `box` of frame t (float32), and where it
        shows the background (bool)."""
        x0, y0, x1, y1 = box
        size = (x1 - x0, y1 - y0)
        h = _shift(-x0, -y0) @ self.path.between(k, t)
        seen = cv2.warpPerspective((~source_cover).astype(np.uint8), h, size, flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT) > 0
        warped = cv2.warpPerspective(source, h, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return warped.astype(np.float32), seen

    def _follow_depth(self, source: np.ndarray, seen: np.ndarray, target: np.ndarray, crop_hole: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """A source aligned by the homography, moved onto the target by the flow left
        between them (the scene's depth), measured where both show the background: the
        flow inside the hole would follow the foreground."""
        return moved_by_flow(self.flow, source, seen, target, seen & ~crop_hole)

    def _elsewhere(self, t: int, box, target: np.ndarray, crop_hole: np.ndarray) -> np.ndarray:
        """Frame t's crop `box` from the shot's plate (with depth, moved onto the frame
        as a source is), and where it has nothing, the last resort."""
        x0, y0, x1, y1 = box
        back = self.last_resort(t)[y0:y1, x0:x1].astype(np.float32)
        if self.plate is None:
            return back
        colour, seen = self.plate.view(self.path.to_first[t], box)
        if self.parallax:
            colour, seen = self._follow_depth(colour, seen, target, crop_hole)
        return np.where(seen[..., None], colour, back)


FLOW_SCALE = 0.5  # the depth's flow is smooth: measured at half size
# With depth, a point of the plate is the median of the first frames (in time) that saw
# it: later ones, moved onto the first's view by a flow across more parallax, match it
# less (goat, the plate against frame 0's background: all 25 20.3 dB, the first 3 22.6,
# the first alone 39.7 but with whatever its mask missed).
DEPTH_PLATE_FRAMES = 3


def moved_by_flow(estimator: cv2.DISOpticalFlow, source: np.ndarray, seen: np.ndarray, target: np.ndarray,
                  known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`source` (H x W x 3) and where it shows the scene (`seen`) moved onto `target` by
    the optical flow between them, measured where `known` (both show the scene) and
    carried smoothly beyond it."""
    scale = FLOW_SCALE
    small = lambda image: cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    gray = lambda image: cv2.cvtColor(np.clip(small(image), 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    flow = estimator.calc(gray(target), gray(source), None)
    known = cv2.resize(known.astype(np.uint8), flow.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    known = cv2.erode(known, _disk(2)) > 0
    flow = cv2.resize(_fill_in(flow, known), source.shape[1::-1], interpolation=cv2.INTER_LINEAR) / scale
    h, w = source.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    moved = cv2.remap(source, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moved_seen = cv2.remap(seen.astype(np.uint8), mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
    return moved, moved_seen


def _flow_estimator() -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _fill_in(flow: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The flow where `known`, and elsewhere a smooth continuation of it (normalised
    convolution at growing scales, the nearest known flow weighing most); none where
    nothing is known."""
    if not known.any():  # nothing both show: the flow measured there follows no scene
        return np.zeros_like(flow)
    if known.all():
        return flow
    out = flow.copy()
    weight = known.astype(np.float32)
    missing = ~known
    for sigma in (2, 8, 32, 128):
        spread = cv2.GaussianBlur(flow * weight[..., None], (0, 0), sigma)
        norm = cv2.GaussianBlur(weight, (0, 0), sigma)
        reached = missing & (norm > 1e-3)
        out[reached] = spread[reached] / norm[reached][:, None]
        missing &= ~reached
        if not missing.any():
            break
    out[missing] = 0
    return out


class Lookahead:
    """Items of an iterator with their neighbours in reach: iterating yields each
    index t once every item up to t + reach has been read (or the items ran out),
    and get(k) gives any item within `reach` of the current one (older ones are
    dropped, so at most 2 reach + 1 are held)."""

    def __init__(self, items: Iterable, reach: int):
        self.items, self.reach = iter(items), reach
        self.buffer: deque = deque()
        self.first = 0  # the index of buffer[0]
        self.done = False

    def get(self, k: int):
        return self.buffer[k - self.first]

    def available(self) -> range:
        return range(self.first, self.first + len(self.buffer))

    def __iter__(self) -> Iterator[int]:
        t = 0
        while True:
            while not self.done and self.first + len(self.buffer) <= t + self.reach:
                try:
                    self.buffer.append(next(self.items))
                except StopIteration:
                    self.done = True
            if t >= self.first + len(self.buffer):
                return
            while self.first < t - self.reach:
                self.buffer.popleft()
                self.first += 1
            yield t
            t += 1
