"""The classic analysis of a transition, without the model: where a clip mixes
two shots and by how much (alpha_t), whether it holds a transition at all,
where it changes shot, and whether its solid shot (a fade's) is black or white.

A dissolve mixes two shots, I_t = alpha_t * A_t + (1 - alpha_t) * B_t, with A
the shot visible at the start and alpha_t falling from 1 to 0. Two estimates
of alpha_t that fail differently are averaged: the projection of each frame's
thumbnail between two reference frames (hurt by moving content) and the mix of
the references' gradient energy per block of pixels (hurt by texture that
changes). The stretch that mixes is located by fitting a linear dissolve, and
a hard cut is one step that stands out (analysis.cuts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..video import resize_frames, working_size
from .cuts import CUT_STEP_RATIO, frame_steps, largest_step_ratio, thumbnails


def decreasing_fit(values: np.ndarray) -> np.ndarray:
    """The non-increasing sequence nearest to `values` in least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in np.asarray(values, dtype=np.float64):
        blocks.append([float(v), 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean, count = blocks.pop()
            blocks[-1][0] = (blocks[-1][0] * blocks[-1][1] + mean * count) / (blocks[-1][1] + count)
            blocks[-1][1] += count
    return np.concatenate([np.full(int(count), mean) for mean, count in blocks])


def projection_alpha(thumbs: np.ndarray, start: int, end: int) -> np.ndarray:
    """Each frame's least-squares weight between frames start (shot A) and end
    (shot B), on thumbnails: coarse enough that moving content changes them
    little, fine enough to tell the shots apart."""
    d = thumbs[start] - thumbs[end]
    return (thumbs - thumbs[end]) @ d / max(float(d @ d), 1e-12)


def gray_gradients(frames: torch.Tensor, side: int = 160) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along x and y (T x 1 x h-1 x w-1, float64) of the gray
    frames shrunk to `side` pixels on the longer side."""
    t, _, h, w = frames.shape
    gray = resize_frames(frames.float(), working_size(w, h, side)).mean(1, keepdim=True).double().cpu()
    return gray[..., :-1, 1:] - gray[..., :-1, :-1], gray[..., 1:, :-1] - gray[..., :-1, :-1]


BLOCK = 8  # pixels a side of a block whose gradient energy is compared (at 160 px)


def block_means(maps: torch.Tensor, block: int = BLOCK) -> np.ndarray:
    """T x blocks: the mean of each of T maps (T x 1 x h x w) per block of pixels."""
    return F.avg_pool2d(maps, block).flatten(1).numpy()


def block_energy(gradients: tuple[torch.Tensor, torch.Tensor], block: int = BLOCK) -> np.ndarray:
    """T x blocks: the gradient energy of every frame per block of pixels."""
    dx, dy = gradients
    return block_means(dx * dx + dy * dy, block)


class BlockEnergies:
    """The gradient energy of every frame per block of pixels, and how far a mix
    of frames start (shot A) and end (shot B) is from it. A mix has, per block,
    the energy a^2 |grad A|^2 + (1 - a)^2 |grad B|^2 + 2 a (1 - a) <grad A, grad B>:
    exact for still shots, and for moving ones a block's energy changes much
    less than its pixels, and does not care about brightness. `cross`: the
    blocks' <grad A, grad B> of the two references (ClassicView.cross)."""

    EPS = 1e-5  # gradient energies of flat blocks (8-bit steps are 1.5e-5)

    def __init__(self, energy: np.ndarray, start: int, end: int, cross: np.ndarray):
        self.energy = energy  # T x blocks
        self.a, self.b, self.cross = self.energy[start], self.energy[end], cross
        self.log_energy = np.log(self.energy + self.EPS)

    def mismatch(self, t: int, weights: np.ndarray) -> np.ndarray:
        """The summed |log| mismatch of frame t's blocks with the mix at each weight."""
        w = np.asarray(weights, dtype=np.float64)[:, None]
        model = w * w * self.a + (1 - w) ** 2 * self.b + 2 * w * (1 - w) * self.cross
        return np.abs(self.log_energy[t] - np.log(np.maximum(model, 0) + self.EPS)).sum(1)


def energy_alpha(view: "ClassicView", start: int, end: int) -> np.ndarray:
    """Each frame's weight from the energy of its gradients per block of pixels
    (BlockEnergies): the weight that minimises the mismatch (a grid search,
    refined once)."""
    blocks = view.blocks(start, end)
    coarse = np.linspace(0.0, 1.0, 1001)
    alpha = np.empty(len(blocks.energy))
    for t in range(len(alpha)):
        best = coarse[np.argmin(blocks.mismatch(t, coarse))]
        fine = np.clip(np.linspace(best - 1e-3, best + 1e-3, 2001), 0.0, 1.0)
        alpha[t] = fine[np.argmin(blocks.mismatch(t, fine))]
    return alpha


def single_shot_ends(alpha: np.ndarray, pure: float, no_a: int | None = None,
                     no_b: int | None = None) -> tuple[int | None, int | None]:
    """The last frame of shot A alone (alpha >= pure) and the first of shot B
    alone (alpha <= 1 - pure); no_a (no_b) where there is none."""
    a, b = np.nonzero(alpha >= pure)[0], np.nonzero(alpha <= 1 - pure)[0]
    return (int(a.max()) if len(a) else no_a), (int(b.min()) if len(b) else no_b)


def with_moving_references(estimate, num_frames: int, pure: float = 0.97, rounds: int = 3) -> np.ndarray:
    """Runs estimate(start, end) (a weight per frame, given reference frames of
    shot A and shot B), made non-increasing, first with the first and the last
    frames as references, then with the last frame that is shot A alone and the
    first that is B alone, next to the transition, where the shots have moved least."""
    last = num_frames - 1
    start, end = 0, last
    for _ in range(rounds):
        alpha = np.array(estimate(start, end), dtype=np.float64)
        alpha[:start + 1], alpha[end:] = 1.0, 0.0
        alpha = decreasing_fit(np.clip(alpha, 0.0, 1.0))
        new_start, new_end = single_shot_ends(alpha, pure, 0, last)
        if (new_start, new_end) == (start, end) or new_start >= new_end:
            break
        start, end = new_start, new_end
    return alpha


@dataclass(frozen=True)
class ClassicView:
    """What the classic analysis looks at: thumbnails and the gradient energy per
    block of every frame, the frames themselves (a tensor or a FrameRange, read
    only for the reference frames' gradients: a long clip's need not be held),
    and the raw estimates made from them so far (whole_clip_alpha and
    locate_transition both start from the first and last frames)."""
    thumbs: np.ndarray
    energy: np.ndarray   # T x blocks: block_energy
    frames: object       # T x 3 x h x w, indexable by slices
    _estimates: dict = field(default_factory=dict, compare=False, repr=False)

    def part(self, start: int, stop: int) -> "ClassicView":
        """The view of frames start..stop-1."""
        frames = self.frames.part(start, stop) if hasattr(self.frames, "part") else self.frames[start:stop]
        return ClassicView(self.thumbs[start:stop], self.energy[start:stop], frames)

    def cross(self, start: int, end: int) -> np.ndarray:
        """Per block, <grad A, grad B> of frames start (shot A) and end (shot B)."""
        (dx_a, dy_a), (dx_b, dy_b) = (gray_gradients(self.frames[t:t + 1]) for t in (start, end))
        return block_means(dx_a * dx_b + dy_a * dy_b)[0]

    def blocks(self, start: int, end: int) -> BlockEnergies:
        return BlockEnergies(self.energy, start, end, self.cross(start, end))

    def projection(self, start: int, end: int) -> np.ndarray:
        """projection_alpha with references start and end (read-only)."""
        return self._estimate("projection", start, end, lambda: projection_alpha(self.thumbs, start, end))

    def energy_estimate(self, start: int, end: int) -> np.ndarray:
        """energy_alpha with references start and end (read-only)."""
        return self._estimate("energy", start, end, lambda: energy_alpha(self, start, end))

    def _estimate(self, kind: str, start: int, end: int, make) -> np.ndarray:
        key = (kind, start, end)
        if key not in self._estimates:
            estimate = np.asarray(make(), dtype=np.float64)
            estimate.setflags(write=False)
            self._estimates[key] = estimate
        return self._estimates[key]


VIEW_CHUNK = 64  # frames shrunk at a time while a view is made


def classic_view(frames) -> ClassicView:
    """The view of frames (a tensor or a FrameRange), made VIEW_CHUNK frames at a
    time: what it keeps is a few kB a frame."""
    thumbs, energy = [], []
    for start in range(0, len(frames), VIEW_CHUNK):
        chunk = frames[start:start + VIEW_CHUNK]
        thumbs.append(thumbnails(chunk))
        energy.append(block_energy(gray_gradients(chunk)))
    return ClassicView(np.concatenate(thumbs), np.concatenate(energy), frames)


def whole_clip_alpha(view: ClassicView) -> np.ndarray:
    """A first estimate of alpha_t over the whole clip `view` shows, without the
    model: the mean of two estimates that fail differently, the thumbnails'
    projection (hurt by moving content) and the blocks' gradient energy (hurt
    by texture that changes), each with moving references, made non-increasing.
    On 16 real 40-frame dissolves (eight DAVIS pairs, two shapes, 160 px) the
    mean error was 0.023 against 0.030 and 0.027 for either alone. Far from the
    references the shots have moved on, and a long single-shot stretch comes
    out as a plateau near, not at, 1 (or 0): classic_alpha looks closer."""
    n = len(view.thumbs)
    projection = with_moving_references(view.projection, n)
    energy = with_moving_references(view.energy_estimate, n)
    return decreasing_fit((projection + energy) / 2)


def classic_alpha(frames: torch.Tensor, view: ClassicView | None = None,
                  whole: np.ndarray | None = None) -> np.ndarray:
    """The estimate of alpha_t the model starts from: locate_transition finds
    where the clip mixes, and whole_clip_alpha runs on that stretch widened by
    half its length (at least 2 frames) either side, so that the faint ends of
    a dissolve the linear fit cut short are still estimated; the frames before
    it are shot A alone, those after it shot B. A clip that is mostly transition gets
    the whole-clip estimate (`whole`, if already made). Measured at 160 px
    (benchmarks/eval_classic_alpha.py) on 20 long dissolves (four DAVIS pairs
    played back and forth; 10-200 frames of A, a dissolve of 1-50 frames,
    60-200 of B) the mean error falls from 0.059 to 0.008 and the single-shot
    frames left mixed from 4010 to 152 (of 4920); on 40 hard cuts (40 frames)
    from 0.030 to 0.0007; on 40 short dissolves (40 frames, whole and middle)
    it stays 0.022. `view`: classic_view(frames), if already made."""
    view = view if view is not None else classic_view(frames)
    n = len(view.thumbs)
    first, last = locate_transition(view)
    margin = max(2, round(0.5 * (last - first + 1)))
    lo, hi = max(first - 1 - margin, 0), min(last + 1 + margin, n - 1)
    if lo == 0 and hi == n - 1:
        return whole if whole is not None else whole_clip_alpha(view)
    alpha = np.ones(n)
    alpha[hi:] = 0.0
    alpha[lo:hi + 1] = whole_clip_alpha(view.part(lo, hi + 1))
    return alpha


def locate_transition(view: ClassicView, rounds: int = 4) -> tuple[int, int]:
    """(first, last): the frames a linear dissolve would mix to fit the clip
    best (last = first - 1: a cut before `first`). The raw estimates (not yet
    made non-increasing) are fitted, then made again with the frames either
    side of the fitted stretch as references, until it stays put."""
    n = len(view.thumbs)
    start, end = 0, n - 1
    for _ in range(rounds):
        raw = (view.projection(start, end) + view.energy_estimate(start, end)) / 2
        first, last = fit_dissolve(raw)
        if (max(first - 1, 0), min(last + 1, n - 1)) == (start, end):
            break
        start, end = max(first - 1, 0), min(last + 1, n - 1)
    return first, last


def fit_dissolve(values: np.ndarray) -> tuple[int, int]:
    """(first, last), 1 <= first <= last + 1 <= T - 1: the curve that is 1 before
    frame `first`, falls linearly over frames first..last ((last + 1 - t) /
    (last - first + 2)) and is 0 after them, nearest `values` in least squares
    (every pair, with running sums). last = first - 1 is a cut."""
    y = np.clip(np.asarray(values, dtype=np.float64), -0.5, 1.5)  # a wild frame should not decide alone
    n = len(y)
    t = np.arange(n, dtype=np.float64)
    sums = lambda x: np.concatenate([[0.0], np.cumsum(x)])
    count, s_y, s_ty, s_yy, s_t, s_tt = sums(np.ones(n)), sums(y), sums(t * y), sums(y * y), sums(t), sums(t * t)
    ones_before = sums((y - 1) ** 2)            # [k]: frames before k held at 1
    zeros_after = s_yy[-1] - s_yy               # [k]: frames from k on held at 0
    best = (math.inf, 1, 0)
    for first in range(1, n):
        last = np.arange(first - 1, n - 1)
        slope = 1.0 / (last - first + 2)        # the ramp is p - slope * t on first..last
        p = (last + 1) * slope
        span = lambda s: s[last + 1] - s[first]
        ramp = (span(s_yy) - 2 * (p * span(s_y) - slope * span(s_ty))
                + p * p * span(count) - 2 * p * slope * span(s_t) + slope * slope * span(s_tt))
        cost = ones_before[first] + ramp + zeros_after[last + 1]
        k = int(np.argmin(cost))
        if cost[k] < best[0]:
            best = (float(cost[k]), first, int(last[k]))
    return best[1], best[2]


# A mix of two shots with weight a has, in every block, about a^2 the energy of
# A's gradients plus (1 - a)^2 B's: the mix model explains a mixed frame's
# blocks far better than either shot alone does, and the frame's whole energy
# dips (to about half at a = 0.5). A single shot whose content moves explains
# neither way. Measured at 160 px on 40 real dissolves (20 ordered DAVIS pairs,
# whole and middle shapes) and 12 single-shot clips (the five DAVIS sequences,
# their first 40 frames and whole, CDnet highway, the shipped sample): the
# median mismatch ratio is 0.40-0.74 for dissolves and 0.93-1.27 for single
# shots, which tells them apart; the energy dip (0.37-0.56 against 0.56-1.08)
# overlaps, and only guards: a clip must also stay above 0.5 to be one shot.
# A cut makes one step stand out (ddip_video.analysis.cuts).
ONE_SHOT_MISMATCH_RATIO = 0.85
ONE_SHOT_ENERGY_DIP = 0.5
# Two frames have one step and no others to measure it against, so it is judged
# alone (thumbnails at 160 px): the largest step within each of the five DAVIS
# sequences is 0.014-0.024, a step from one of them to another 0.135 or more.
TWO_FRAME_CUT_STEP = 0.06


def looks_like_one_shot(view: ClassicView, alpha: np.ndarray) -> bool:
    """Whether a clip seen as `view`, whose whole-clip alpha
    estimate (whole_clip_alpha) is `alpha`, holds no transition: the mix model
    fits its half-mixed frames (0.25 < alpha < 0.75) no better than one shot
    alone and their gradient energy does not dip (or there is no such frame);
    and no cut stands out. Two frames are one shot where their step is small."""
    if len(alpha) < 3:
        return len(alpha) == 2 and frame_steps(view.thumbs)[0] < TWO_FRAME_CUT_STEP
    if largest_step_ratio(view.thumbs) >= CUT_STEP_RATIO:
        return False
    figures = mix_evidence(view, alpha)
    return figures is None or (figures[0] > ONE_SHOT_MISMATCH_RATIO and figures[1] > ONE_SHOT_ENERGY_DIP)


def changes_beside(view: ClassicView, first: int, last: int, black: tuple[bool, bool] = (False, False)) -> list[int]:
    """Frames (about) where the clip `view` changes shot in the stretches of
    one shot alone before and after its transition over frames first..last
    (first = last + 1: a cut before `first`): see holds_a_change. The side of
    a black shot (black: shot A, shot B) is not looked at: a fade's faint
    frames, which the located transition may leave out, are no shot alone
    and the mix tests do not hold there."""
    changes = []
    for lo, hi, skip in ((0, first, black[0]), (last + 1, len(view.thumbs), black[1])):
        if not skip and hi - lo >= 3 and holds_a_change(view.part(lo, hi)):
            changes.append(lo + locate_transition(view.part(lo, hi))[0])
    return changes


def cut_within(thumbs: np.ndarray, first: int, last: int) -> int | None:
    """The frame after a cut that the transition fitted over frames first..last
    took in, or None: a linear dissolve spreads its change evenly over its
    steps, so one step CUT_STEP_RATIO times the median of the others (in a
    transition of 3 steps or more) is a cut."""
    lo = max(first - 1, 0)
    span = thumbs[lo:last + 2]
    if len(span) < 4 or largest_step_ratio(span) < CUT_STEP_RATIO:
        return None
    return lo + int(np.argmax(frame_steps(span))) + 1


def holds_a_change(view: ClassicView) -> bool:
    """Whether a clip (at least 3 frames) surely holds a cut or a dissolve: a
    cut stands out, or both mix tests say mixed (looks_like_one_shot wants
    only one of them to say one shot). Stricter than not looks_like_one_shot,
    which a short stretch of a single moving shot can fail (see
    benchmarks/notes/transition.md, "More than one shot change")."""
    if largest_step_ratio(view.thumbs) >= CUT_STEP_RATIO:
        return True
    figures = mix_evidence(view, whole_clip_alpha(view))
    return figures is not None and figures[0] < ONE_SHOT_MISMATCH_RATIO and figures[1] < ONE_SHOT_ENERGY_DIP


def mix_evidence(view: ClassicView, alpha: np.ndarray) -> tuple[float, float] | None:
    """(median mismatch ratio, energy dip) over the half-mixed frames (see
    above), or None where there is none."""
    start, end = single_shot_ends(alpha, 0.97)
    mixed = [t for t in range(len(alpha)) if 0.25 < alpha[t] < 0.75]
    if not mixed or start is None or end is None:
        return None
    blocks = view.blocks(start, end)
    ratios = []
    for t in mixed:
        at_alpha, shot_a, shot_b = blocks.mismatch(t, [alpha[t], 1.0, 0.0])
        ratios.append(at_alpha / max(min(shot_a, shot_b), 1e-12))
    total = blocks.energy.mean(1)
    dip = min(total[t] / max(alpha[t] * total[start] + (1 - alpha[t]) * total[end], 1e-12) for t in mixed)
    return float(np.median(ratios)), float(dip)


def is_black(frame: torch.Tensor, level: float) -> bool:
    """Whether a 3 x h x w frame in [0, 1] is black (a fade's black shot)."""
    gray = frame.float().mean(0)
    return gray.mean().item() < level and torch.quantile(gray.flatten()[::7], 0.99).item() < 3 * level


def black_gap(black: list[bool]) -> tuple[int, int] | None:
    """(first, last) of the longest run of black frames strictly inside the clip
    (the earliest of equals), or None."""
    best, t, n = None, 1, len(black)
    while t < n - 1:
        if black[t]:
            end = t
            while end + 1 < n - 1 and black[end + 1]:
                end += 1
            if best is None or end - t > best[1] - best[0]:
                best = (t, end)
            t = end
        t += 1
    return best


def matte_of(frames: torch.Tensor, level: float) -> str:
    """The clip's solid shot: "white" where it fades from or to white, or dips to
    white, and not to black; else "black" (whether or not it has one)."""
    black = [is_black(frame, level) for frame in frames]
    if black[0] or black[-1] or black_gap(black) is not None:
        return "black"
    white = [is_black(1.0 - frame, level) for frame in frames]
    return "white" if white[0] or white[-1] or black_gap(white) is not None else "black"

