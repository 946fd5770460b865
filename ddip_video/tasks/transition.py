"""`ddip-video transition`: unmix a dissolve or a fade into its two shots.

A dissolve mixes two shots, I_t = alpha_t * A_t + (1 - alpha_t) * B_t, with
A the shot visible at the start and alpha_t falling from 1 to 0. This is
Double-DIP with a per-frame mask: each shot is drawn by its own skip net,
shared by every frame, from time-correlated frame codes; alpha_t is one value
per frame, non-increasing by construction (1 minus the cumulative sum of a
softmax over the T + 1 gaps around the frames), its logits drawn by a small
convolutional net over time on top of a classic estimate. Reconstruction
(the fused composite loss with an N x 1 x 1 x 1 mask) and the exclusion loss
between the shots decide the split; frames where alpha is 1 (or 0) supervise
shot A (or B) directly. The model runs only on the stretch a classic analysis
locates (classic_alpha) and some frames of each shot alone either side: a
long clip's single-shot stretches pass through untouched. Afterwards,
whatever the nets did not reproduce is shared between the shots so that
every output frame mixes back into the input exactly; where only one shot
is visible (before and after the transition, either side of a hard cut)
that shot is the input unchanged.
A fade is a dissolve with a black shot: a black first (last) frame makes
shot A (B) exactly black, and the other shot is all the model fits. A dip to
black (shot A fades out, black, shot B fades in) is two fades, split at the
black frames and unmixed one after the other; there the weight of shot B is
not 1 - alpha_t and is reported beside it. A white matte (a fade from or to
white, a dip to white: editors' other common dip) is the same with the
frames inverted: 1 - I_t is then a fade of black. A clip
that holds no transition at all (one shot, no cut, no mix: see
looks_like_one_shot) is reported as such and passes through as shot A; one
that changes shot more than once is refused (refuse_more_changes).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..model import BestState, FrameCodes, frame_windows
from ..nets import SkipNet, smallest_side
from ..ops import composite_recon_loss, exclusion_loss
from ..video import StagedOutputDir, VideoInfo, iter_frames, resize_frames, save_png, working_size
from .common import (LOADED_BYTES, MemoryNeed, Progress, TaskOptions, check_working_size, device_label,
                     frame_to_tensor, layer_writer, load_working_clip, progress_bar, sample_frames, seed_everything,
                     with_device_defaults, write_contact_sheet)
from .cuts import CUT_STEP_RATIO, frame_steps, largest_step_ratio, thumbnails


@dataclass
class TransitionOptions(TaskOptions):
    window: int = 8                  # frames per optimisation step
    lr: float = 0.01
    alpha_lr: float = 0.003
    alpha_warmup: float = 0.3        # fraction of the steps with alpha held at the classic estimate,
    alpha_warmup_min: int = 200      # and at least this many: while the shot nets are crude, a moving
                                     # alpha soaks up their errors (with fewer steps it never moves)
    exclusion_weight: float = 0.05
    pure_tolerance: float = 0.01     # alpha within this of 1 (0) counts as shot A (B) alone
    anchor_frames: int = 16          # frames of each shot alone the model sees either side of the
                                     # transition the classic estimate locates; further ones pass through
    black_level: float = 0.03        # a frame whose mean and 99th percentile stay below 3x this is black
    eval_every: int = 100
    patience: int = 5


# The defaults where none is given. A CPU is some 40x slower per pixel-step than a GPU,
# so it works coarser and shorter.
DEFAULTS = {"cuda": dict(max_side=427, iters=3000), "cpu": dict(max_side=160, iters=600)}


def resolve_options(opts: TransitionOptions) -> tuple[TransitionOptions, torch.device]:
    """The options with the device's defaults filled in, and the device."""
    return with_device_defaults(opts, DEFAULTS)


# A long clip's memory, per pixel of a frame at the working size: measured peaks (CPU,
# 854x480 dissolves of 100, 200 and 400 frames at --max-side 160 and 320,
# benchmarks/README "Memory") grow by 124-156 bytes (the frames, both shots' codes and
# outputs). On a GPU the host keeps the frames and both shots as they come back, 36
# bytes (counted from those tensors; not measured: no GPU was lent). The check counts
# the high end, as fgbg's does.
BYTES_PER_PIXEL = {"cpu": 156, "cuda": 36}


def memory_need(info: VideoInfo, opts: TransitionOptions, device: torch.device) -> MemoryNeed:
    """About the host memory transition takes for the clip `info` describes."""
    w, h = working_size(info.width, info.height, opts.max_side)
    return MemoryNeed(LOADED_BYTES, BYTES_PER_PIXEL[device.type] * w * h)


# ---------------------------------------------------------------- classic analysis

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


class BlockEnergies:
    """The gradient energy of every frame per block of pixels, and how far a mix
    of frames start (shot A) and end (shot B) is from it. A mix has, per block,
    the energy a^2 |grad A|^2 + (1 - a)^2 |grad B|^2 + 2 a (1 - a) <grad A, grad B>:
    exact for still shots, and for moving ones a block's energy changes much
    less than its pixels, and does not care about brightness."""

    EPS = 1e-5  # gradient energies of flat blocks (8-bit steps are 1.5e-5)

    def __init__(self, gradients: tuple[torch.Tensor, torch.Tensor], start: int, end: int, block: int = 8):
        dx, dy = gradients
        pooled = lambda x: F.avg_pool2d(x, block).flatten(1).numpy()
        self.energy = pooled(dx * dx + dy * dy)  # T x blocks
        self.a, self.b = self.energy[start], self.energy[end]
        self.cross = pooled(dx[start:start + 1] * dx[end:end + 1] + dy[start:start + 1] * dy[end:end + 1])[0]
        self.log_energy = np.log(self.energy + self.EPS)

    def mismatch(self, t: int, weights: np.ndarray) -> np.ndarray:
        """The summed |log| mismatch of frame t's blocks with the mix at each weight."""
        w = np.asarray(weights, dtype=np.float64)[:, None]
        model = w * w * self.a + (1 - w) ** 2 * self.b + 2 * w * (1 - w) * self.cross
        return np.abs(self.log_energy[t] - np.log(np.maximum(model, 0) + self.EPS)).sum(1)


def energy_alpha(gradients: tuple[torch.Tensor, torch.Tensor], start: int, end: int,
                 block: int = 8) -> np.ndarray:
    """Each frame's weight from the energy of its gradients per block of pixels
    (BlockEnergies): the weight that minimises the mismatch (a grid search,
    refined once)."""
    blocks = BlockEnergies(gradients, start, end, block)
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
    """What the classic analysis looks at: thumbnails and gray gradients, and
    the raw estimates made from them so far (whole_clip_alpha and
    locate_transition both start from the first and last frames)."""
    thumbs: np.ndarray
    gradients: tuple[torch.Tensor, torch.Tensor]
    _estimates: dict = field(default_factory=dict, compare=False, repr=False)

    def part(self, start: int, stop: int) -> "ClassicView":
        """The view of frames start..stop-1."""
        return ClassicView(self.thumbs[start:stop], tuple(g[start:stop] for g in self.gradients))

    def projection(self, start: int, end: int) -> np.ndarray:
        """projection_alpha with references start and end (read-only)."""
        return self._estimate("projection", start, end, lambda: projection_alpha(self.thumbs, start, end))

    def energy(self, start: int, end: int) -> np.ndarray:
        """energy_alpha with references start and end (read-only)."""
        return self._estimate("energy", start, end, lambda: energy_alpha(self.gradients, start, end))

    def _estimate(self, kind: str, start: int, end: int, make) -> np.ndarray:
        key = (kind, start, end)
        if key not in self._estimates:
            estimate = np.asarray(make(), dtype=np.float64)
            estimate.setflags(write=False)
            self._estimates[key] = estimate
        return self._estimates[key]


def classic_view(frames: torch.Tensor) -> ClassicView:
    return ClassicView(thumbnails(frames), gray_gradients(frames))


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
    energy = with_moving_references(view.energy, n)
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
        raw = (view.projection(start, end) + view.energy(start, end)) / 2
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
# A cut makes one step stand out (ddip_video.tasks.cuts).
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
    figures = mix_evidence(view.gradients, alpha)
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
    benchmarks/README, "More than one shot change")."""
    if largest_step_ratio(view.thumbs) >= CUT_STEP_RATIO:
        return True
    figures = mix_evidence(view.gradients, whole_clip_alpha(view))
    return figures is not None and figures[0] < ONE_SHOT_MISMATCH_RATIO and figures[1] < ONE_SHOT_ENERGY_DIP


def mix_evidence(gradients: tuple[torch.Tensor, torch.Tensor], alpha: np.ndarray) -> tuple[float, float] | None:
    """(median mismatch ratio, energy dip) over the half-mixed frames (see
    above), or None where there is none."""
    start, end = single_shot_ends(alpha, 0.97)
    mixed = [t for t in range(len(alpha)) if 0.25 < alpha[t] < 0.75]
    if not mixed or start is None or end is None:
        return None
    blocks = BlockEnergies(gradients, start, end)
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


# ---------------------------------------------------------------- the model

class AlphaCurve(nn.Module):
    """alpha_t for t = 0 .. T-1, non-increasing from alpha_0 = 1 to alpha_{T-1} = 0.

    A softmax over the T - 1 gaps between frames gives how much alpha drops in
    each (bin k: between frames k-1 and k), so alpha_t is the mass of the bins
    after t: shot A alone in the first frame, shot B alone in the last, by
    definition. The logits are a prior (the log of the classic estimate's
    drops) plus a small 1-D convolutional net over time applied to fixed,
    time-correlated codes; its last layer starts at zero, so the curve starts
    as the classic estimate. Every gap gets `floor` on top of its share, so
    that the net can move mass there; on a clip longer than 40 frames the 39
    gaps' worth is shared by all of them, else the little drops add up along
    a long single-shot stretch (0.04 over 200 frames at 2e-4 a gap) and its
    frames no longer count as one shot alone."""

    def __init__(self, prior: np.ndarray, code_channels: int = 8, hidden: int = 32, floor: float = 2e-4,
                 generator: torch.Generator | None = None):
        super().__init__()
        prior = np.clip(np.asarray(prior, dtype=np.float64), 0.0, 1.0)
        if len(prior) < 2:
            raise ValueError("an alpha curve needs at least 2 frames")
        drops = np.maximum(-np.diff(np.concatenate([[1.0], prior[1:-1], [0.0]])), 0.0)
        floor *= min(1.0, 39 / len(drops))
        prior_logits = torch.from_numpy(np.log(drops / max(drops.sum(), 1e-12) + floor)).float()
        self.register_buffer("prior", prior_logits, persistent=False)  # fixed, like FrameCodes.codes
        codes = FrameCodes(len(drops), code_channels, 1, 1, correlation=0.9, scale=1.0,
                           generator=generator).codes
        self.register_buffer("codes", codes[:, :, 0, 0].t().unsqueeze(0), persistent=False)  # 1 x C x (T - 1)
        self.net = nn.Sequential(nn.Conv1d(code_channels, hidden, 5, padding=2), nn.LeakyReLU(0.2),
                                 nn.Conv1d(hidden, hidden, 5, padding=2), nn.LeakyReLU(0.2),
                                 nn.Conv1d(hidden, 1, 5, padding=2))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self) -> torch.Tensor:
        logits = self.prior + self.net(self.codes)[0, 0]
        mass = torch.softmax(logits, dim=0)
        after = torch.flip(torch.cumsum(torch.flip(mass, [0]), 0), [0])  # after[k] = mass of bins k.. (gaps k+1..)
        return torch.cat([after.new_ones(1), after[1:], after.new_zeros(1)]).clamp(0, 1)


class Shot(nn.Module):
    """One shot: a skip net shared by every frame, fed time-correlated codes."""

    def __init__(self, num_frames: int, height: int, width: int, generator: torch.Generator,
                 correlation: float = 0.95):
        super().__init__()
        self.codes = FrameCodes(num_frames, 8, height, width, correlation=correlation, generator=generator)
        self.net = SkipNet(8, 3)

    def forward(self, idx: torch.Tensor, perturb: bool = True) -> torch.Tensor:
        return self.net(self.codes(idx, perturb))


class BlackShot(nn.Module):
    """A fade's black shot: exactly zero."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.shape = (3, height, width)

    def forward(self, idx: torch.Tensor, perturb: bool = True) -> torch.Tensor:
        return torch.zeros(len(idx), *self.shape, device=idx.device)


class TransitionModel(nn.Module):
    def __init__(self, num_frames: int, height: int, width: int, prior_alpha: np.ndarray,
                 black_a: bool, black_b: bool, generator: torch.Generator):
        super().__init__()
        self.alpha = AlphaCurve(prior_alpha, generator=generator)
        self.shot_a = BlackShot(height, width) if black_a else Shot(num_frames, height, width, generator)
        self.shot_b = BlackShot(height, width) if black_b else Shot(num_frames, height, width, generator)
        self.black = (black_a, black_b)

    def forward(self, idx: torch.Tensor, perturb: bool = True):
        """(alpha N x 1 x 1 x 1, shot A, shot B) of frames idx."""
        return self.alpha()[idx].view(-1, 1, 1, 1), self.shot_a(idx, perturb), self.shot_b(idx, perturb)


def objective(opts: TransitionOptions, model: TransitionModel, alpha, shot_a, shot_b, frames) -> torch.Tensor:
    loss = composite_recon_loss(alpha, shot_a, shot_b, frames, 1)
    if not any(model.black) and opts.exclusion_weight > 0:
        loss = loss + opts.exclusion_weight * exclusion_loss(shot_a, shot_b)
    return loss


# ---------------------------------------------------------------- the optimisation

@dataclass
class Unmixing:
    alpha: np.ndarray          # T: the weight of shot A per frame (1 and 0 exact where one shot is alone)
    shot_a: torch.Tensor       # T x 3 x h x w at the working size, not yet split: the nets' shots where
                               # modelled, elsewhere the input (its shot alone) or 0 (not seen)
    shot_b: torch.Tensor
    kind: str                  # "dissolve", "fade from black", "fade to black", "dip to black" (or white),
                               # "hard cut", "no transition"
    first: int                 # the first frame that mixes both shots (for a cut: the first frame of B;
                               # for a dip: the first frame of A's fade-out)
    last: int                  # the last frame that mixes both shots (for a cut: the last frame of A;
                               # for a dip: the last frame of B's fade-in)
    seconds: float
    device: str
    options: TransitionOptions  # as run: the device's defaults filled in
    classic_alpha: np.ndarray = field(default_factory=lambda: np.zeros(0))
    timings: dict = field(default_factory=dict)
    dip: tuple[int, int] | None = None       # a dip to black (white): its first and last black (white) frame
    dip_weight_b: np.ndarray | None = None   # a dip: the weight of shot B per frame
    fits: list = field(default_factory=list)  # (what, iterations, best iteration) per optimisation:
                                              # none, one, or a dip's two
    matte: str = "black"  # a fade's solid shot. "white": the shots and the solid one are held inverted
                          # (1 - x), as the frames were unmixed (see unmix)

    @property
    def iterations(self) -> int:
        """Over all optimisations."""
        return sum(count for _, count, _ in self.fits)

    @property
    def best_iteration(self) -> int:
        """Of the last optimisation (-1: none ran)."""
        return self.fits[-1][2] if self.fits else -1

    @property
    def black(self) -> tuple[bool, bool]:
        """Whether shot A, shot B is the solid shot (black in the frames as unmixed)."""
        return self.kind.startswith("fade from "), self.kind.startswith("fade to ")

    @property
    def weight_b(self) -> np.ndarray:
        """The weight of shot B per frame: 1 - alpha but in a dip."""
        return self.dip_weight_b if self.dip is not None else 1.0 - self.alpha

    def mix_at(self, t: int) -> tuple[float, tuple[bool, bool]]:
        """Frame t as split_residual takes it: the weight of shot A and which shot is black."""
        if self.dip is None:
            return float(self.alpha[t]), self.black
        if t < self.dip[1]:  # shot A fading out (or black)
            return float(self.alpha[t]), (False, True)
        return 1.0 - float(self.dip_weight_b[t]), (True, False)

    def work_text(self) -> str:
        """What the optimisation did, for the summary line."""
        if not self.fits:
            return "no optimisation needed"
        whats, counts, bests = zip(*self.fits)
        text = " + ".join(map(str, counts)) + " iterations"
        if len(self.fits) > 1:
            text += f" ({', '.join(whats)})"
        return f"{text} at --max-side {self.options.max_side}, best at {' and '.join(str(b + 1) for b in bests)}"


def unmix(frames: torch.Tensor, opts: TransitionOptions) -> Unmixing:
    """Runs the model on frames (T x 3 x h x w in [0, 1], any size: the model
    works at opts.max_side)."""
    start = time.perf_counter()
    if len(frames) < 2:
        raise InputError(f"a transition needs at least 2 frames, the input has {len(frames)}")
    opts, device = resolve_options(opts)
    generator = seed_everything(opts.seed)
    size = working_size(frames.shape[-1], frames.shape[-2], opts.max_side)
    check_working_size((frames.shape[-1], frames.shape[-2]), size, smallest_side())
    frames = resize_frames(frames.float(), size)
    if matte_of(frames, opts.black_level) == "white":
        unmixing = unmix_matte_black(1.0 - frames, opts, device, generator, start, "white")
        return replace(unmixing, kind=unmixing.kind.replace("black", "white"), matte="white")
    return unmix_matte_black(frames, opts, device, generator, start)


def matte_of(frames: torch.Tensor, level: float) -> str:
    """The clip's solid shot: "white" where it fades from or to white, or dips to
    white, and not to black; else "black" (whether or not it has one)."""
    black = [is_black(frame, level) for frame in frames]
    if black[0] or black[-1] or black_gap(black) is not None:
        return "black"
    white = [is_black(1.0 - frame, level) for frame in frames]
    return "white" if white[0] or white[-1] or black_gap(white) is not None else "black"


def unmix_matte_black(frames: torch.Tensor, opts: TransitionOptions, device: torch.device,
                      generator: torch.Generator, start: float, matte: str = "black") -> Unmixing:
    """unmix of frames (at the working size) whose solid shot, if any, is black
    (matte: what it is in the input, for the error message)."""
    black = [is_black(frame, opts.black_level) for frame in frames]
    if black[0] and black[-1]:
        raise InputError(f"the first and the last frames are both {matte}: no shot to recover")
    gap = None if black[0] or black[-1] else black_gap(black)
    if gap is not None:
        return unmix_dip(frames, gap, opts, device, generator, start)
    view = classic_view(frames)
    whole = whole_clip_alpha(view)  # what the one-shot test's thresholds were measured on
    if not (black[0] or black[-1]) and looks_like_one_shot(view, whole):
        return one_shot(frames, opts, device, whole, time.perf_counter() - start)
    refuse_more_changes(view, (black[0], black[-1]))
    part = unmix_transition(frames, (black[0], black[-1]), opts, device, generator, view, whole)
    kind, first, last = describe(part.alpha, black[0], black[-1])
    return Unmixing(part.alpha, part.shot_a, part.shot_b, kind, first, last, time.perf_counter() - start,
                    device_label(device), opts, part.prior, dict(optimize=part.seconds), fits=part.records)


def refuse_more_changes(view: ClassicView, black: tuple[bool, bool] = (False, False), offset: int = 0) -> None:
    """Stops with an InputError where the clip `view` (its first frame being
    frame `offset` of the input; black: whether shot A, shot B is black)
    changes shot besides its one transition: the model has two shots, and a
    third would be smeared into them."""
    first, last = locate_transition(view)
    beside, within = changes_beside(view, first, last, black), cut_within(view.thumbs, first, last)
    if not beside and within is None:
        return
    frames = lambda ts: ("frame " if len(ts) == 1 else "frames ") + ", ".join(str(t + offset) for t in ts)
    span = f"frames {first + offset}-{last + offset}"
    found = [f"a cut at frame {within + offset} inside what fits as a transition over {span}"] if within is not None \
        else [f"a cut at frame {first + offset}" if first > last else f"a transition over {span}"]
    if beside:
        found.append(f"and another change near {frames(beside)}")
    raise InputError(f"the clip changes shot more than once ({' '.join(found)}): trim it to one transition")


@dataclass
class Part:
    """One transition unmixed: see unmix_transition."""
    alpha: np.ndarray
    shot_a: torch.Tensor
    shot_b: torch.Tensor
    prior: np.ndarray     # the classic estimate
    fit: "Fit | None"     # None: a cut, nothing to optimise
    label: str            # what the optimisation was called

    @property
    def records(self) -> list[tuple[str, int, int]]:
        """[(what, iterations, best iteration)], Unmixing.fits' entry, or [] for a cut."""
        return [] if self.fit is None else [(self.label, self.fit.iterations, self.fit.best_step)]

    @property
    def seconds(self) -> float:
        """Spent optimising."""
        return 0.0 if self.fit is None else self.fit.seconds


def unmix_transition(frames: torch.Tensor, black: tuple[bool, bool], opts: TransitionOptions,
                     device: torch.device, generator: torch.Generator, view: ClassicView | None = None,
                     whole: np.ndarray | None = None, label: str = "transition") -> Part:
    """One dissolve or fade in frames (at the working size), from shot A alone in
    the first frame to shot B alone in the last: the classic estimate locates
    it, the model runs there, and each shot alone is the input elsewhere (the
    other one 0: not seen). Where the classic estimate mixes no frame (a hard
    cut), there is nothing to unmix and the model does not run: on 40 cuts
    between DAVIS shots it was exactly right for 24 and mixed a few frames of
    the other 16 a little (those the model gets), and it made none of 60
    dissolves a cut (benchmarks/README)."""
    prior = classic_alpha(frames, view, whole)
    if not np.any((prior > 0) & (prior < 1)):
        shot_a, shot_b = frames.clone(), frames.clone()
        shot_a[prior == 0], shot_b[prior == 1] = 0.0, 0.0
        return Part(prior, shot_a, shot_b, prior, None, label)
    lo, hi = modelled_span(prior, opts.anchor_frames)
    fit = optimise(frames[lo:hi + 1], prior[lo:hi + 1], black, opts, device, generator, label)
    alpha = np.r_[np.ones(lo), fit.alpha, np.zeros(len(frames) - hi - 1)]
    shot_a, shot_b = frames.clone(), frames.clone()
    shot_a[hi + 1:], shot_b[:lo] = 0.0, 0.0
    shot_a[lo:hi + 1], shot_b[lo:hi + 1] = fit.shot_a, fit.shot_b
    return Part(alpha, shot_a, shot_b, prior, fit, label)


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


def unmix_dip(frames: torch.Tensor, gap: tuple[int, int], opts: TransitionOptions, device: torch.device,
              generator: torch.Generator, start: float) -> Unmixing:
    """A dip to black: shot A fades to black by the gap's first frame, shot B
    fades in from its last; two fades, unmixed one after the other."""
    first_black, last_black = gap
    n = len(frames)
    views = classic_view(frames[:first_black + 1]), classic_view(frames[last_black:])
    refuse_more_changes(views[0], (False, True))
    refuse_more_changes(views[1], (True, False), offset=last_black)
    fade_out = unmix_transition(frames[:first_black + 1], (False, True), opts, device, generator, views[0],
                                label="fade out")
    fade_in = unmix_transition(frames[last_black:], (True, False), opts, device, generator, views[1],
                               label="fade in")
    alpha = np.r_[fade_out.alpha, np.zeros(n - first_black - 1)]
    weight_b = np.r_[np.zeros(last_black), 1.0 - fade_in.alpha]
    shot_a, shot_b = torch.zeros_like(frames), torch.zeros_like(frames)
    shot_a[:first_black + 1], shot_b[last_black:] = fade_out.shot_a, fade_in.shot_b
    first = int(np.argmax(alpha < 1))
    last = int(n - 1 - np.argmax(weight_b[::-1] < 1))
    return Unmixing(alpha, shot_a, shot_b, "dip to black", first, last, time.perf_counter() - start,
                    device_label(device), opts, np.r_[fade_out.prior, np.zeros(n - first_black - 1)],
                    dict(optimize=fade_out.seconds + fade_in.seconds), gap, weight_b,
                    fade_out.records + fade_in.records)


def modelled_span(prior: np.ndarray, anchor: int) -> tuple[int, int]:
    """(lo, hi): the frames the model runs on: those the classic estimate
    `prior` mixes, with `anchor` frames of each shot alone either side (or
    as many as there are)."""
    last_a, first_b = single_shot_ends(prior, 1.0, 0, len(prior) - 1)
    return max(0, last_a - anchor), min(len(prior) - 1, first_b + anchor)


@dataclass
class Fit:
    alpha: np.ndarray     # snapped
    shot_a: torch.Tensor  # on the CPU
    shot_b: torch.Tensor
    iterations: int
    best_step: int
    seconds: float


def optimise(frames: torch.Tensor, prior: np.ndarray, black: tuple[bool, bool], opts: TransitionOptions,
             device: torch.device, generator: torch.Generator, label: str = "transition") -> Fit:
    """The Double-DIP optimisation on frames (at the working size) that start
    with shot A alone and end with shot B alone, from the classic estimate `prior`."""
    num_frames, _, h, w = frames.shape
    model = TransitionModel(num_frames, h, w, prior, *black, generator).to(device)
    frames = frames.to(device)
    window = min(opts.window, num_frames)
    alpha_params = list(model.alpha.parameters())
    shot_params = [p for n, p in model.named_parameters() if not n.startswith("alpha.")]
    optimizer = torch.optim.Adam(shot_params, lr=opts.lr)
    alpha_optimizer = torch.optim.Adam(alpha_params, lr=opts.alpha_lr)
    alpha_start = max(int(opts.alpha_warmup * opts.iters), opts.alpha_warmup_min)
    best = BestState(model, opts.patience)
    progress = Progress(opts.iters, label, opts.progress)
    iteration = 0
    for iteration in range(opts.iters):
        first = int(torch.randint(0, num_frames - window + 1, (1,), generator=generator))
        idx = torch.arange(first, first + window, device=device)
        fit_alpha = iteration >= alpha_start
        for p in alpha_params:
            p.requires_grad_(fit_alpha)
        alpha, shot_a, shot_b = model(idx)
        loss = objective(opts, model, alpha, shot_a, shot_b, frames[idx])
        optimizer.zero_grad(set_to_none=True)
        alpha_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if fit_alpha:
            alpha_optimizer.step()
        progress.step(loss.detach())
        last = iteration == opts.iters - 1
        if (iteration + 1) % opts.eval_every == 0 or last:
            stale = best.update(evaluate(model, frames, opts, window), iteration)
            if stale and fit_alpha and not last:  # not before alpha has had its turn
                break
    seconds = progress.close()
    best.restore()
    alpha, shot_a, shot_b = predict(model, frames, window)
    return Fit(snap_alpha(alpha, opts.pure_tolerance), shot_a.cpu(), shot_b.cpu(), iteration + 1, best.best_step,
               seconds)


def one_shot(frames: torch.Tensor, opts: TransitionOptions, device: torch.device, prior: np.ndarray,
             seconds: float) -> Unmixing:
    """The answer for a clip that holds no transition: shot A is the input
    throughout, shot B is never seen; no optimisation runs."""
    alpha = np.ones(len(frames))
    return Unmixing(alpha, frames.cpu(), torch.zeros_like(frames).cpu(), "no transition", len(frames),
                    len(frames) - 1, seconds, device_label(device), opts, prior, dict(optimize=0.0))


@torch.no_grad()
def evaluate(model: TransitionModel, frames, opts: TransitionOptions, window: int) -> float:
    total, count = 0.0, 0
    for idx in frame_windows(len(frames), window):
        idx = idx.to(frames.device)
        total += objective(opts, model, *model(idx, perturb=False), frames[idx]).item()
        count += 1
    return total / count


@torch.no_grad()
def predict(model: TransitionModel, frames, window: int):
    """alpha (numpy) and both shots of every frame (overlapping windows averaged)."""
    shot_a = torch.zeros_like(frames)
    shot_b = torch.zeros_like(frames)
    counts = torch.zeros(len(frames), 1, 1, 1, device=frames.device)
    for idx in frame_windows(len(frames), window, overlap=window // 2):
        idx = idx.to(frames.device)
        _, a, b = model(idx, perturb=False)
        shot_a[idx] += a
        shot_b[idx] += b
        counts[idx] += 1
    alpha = model.alpha().double().cpu().numpy()
    return alpha, shot_a / counts, shot_b / counts


def snap_alpha(alpha: np.ndarray, tolerance: float) -> np.ndarray:
    """Values within `tolerance` of 1 (0) become exactly 1 (0): one shot alone."""
    alpha = np.clip(np.asarray(alpha, dtype=np.float64), 0.0, 1.0)
    alpha[alpha >= 1 - tolerance] = 1.0
    alpha[alpha <= tolerance] = 0.0
    return alpha


def describe(alpha: np.ndarray, black_a: bool, black_b: bool) -> tuple[str, int, int]:
    """(kind, first, last) of a snapped alpha curve; see Unmixing."""
    mixed = np.nonzero((alpha > 0) & (alpha < 1))[0]
    if len(mixed):
        kind = "fade from black" if black_a else "fade to black" if black_b else "dissolve"
        return kind, int(mixed[0]), int(mixed[-1])
    a_frames = np.nonzero(alpha == 1)[0]
    if len(a_frames) and len(a_frames) < len(alpha):
        cut = int(a_frames[-1]) + 1
        kind = "fade from black" if black_a else "fade to black" if black_b else "hard cut"
        return kind, cut, cut - 1
    return "no transition", len(alpha), len(alpha) - 1


# ---------------------------------------------------------------- the outputs

def split_residual(image: torch.Tensor, alpha: float, shot_a: torch.Tensor, shot_b: torch.Tensor,
                   black: tuple[bool, bool] = (False, False), fade_damping: float = 0.002):
    """Both shots of one frame, adjusted so that alpha * A + (1 - alpha) * B is
    the image: the residual r = image - (alpha * A + (1 - alpha) * B) is shared
    by the least-norm correction (A += alpha r / n, B += (1 - alpha) r / n,
    n = alpha^2 + (1 - alpha)^2). A black shot stays black, and the other one
    takes r / weight, damped where its weight is small (quantisation noise)."""
    a, b = float(alpha), 1.0 - float(alpha)
    residual = image - (a * shot_a + b * shot_b)
    if black[0]:
        return torch.zeros_like(image), (shot_b + b / (b * b + fade_damping * (b < 1)) * residual).clamp(0, 1)
    if black[1]:
        return (shot_a + a / (a * a + fade_damping * (a < 1)) * residual).clamp(0, 1), torch.zeros_like(image)
    norm = a * a + b * b
    return (shot_a + a / norm * residual).clamp(0, 1), (shot_b + b / norm * residual).clamp(0, 1)


@dataclass
class TransitionResult:
    unmixing: Unmixing
    outputs: list[Path]
    size: tuple[int, int]
    num_frames: int
    fps: Fraction
    seconds: float  # the whole job: reading, unmixing, writing every output

    def span_text(self) -> str:
        u, fps = self.unmixing, float(self.fps)
        if u.kind == "no transition":
            return "no transition found (shot A throughout)" if u.alpha[0] == 1 else \
                "no transition found (shot B throughout)"
        if u.last < u.first:  # a cut
            what = "hard cut" if u.kind == "hard cut" else f"{u.kind} (a cut)"
            return f"{what} at frame {u.first} ({u.first / fps:.2f} s)"
        return (f"{u.kind} over frames {u.first}-{u.last} "
                f"({u.first / fps:.2f}-{(u.last + 1) / fps:.2f} s)")


def run_transition(input_path, outdir, opts: TransitionOptions) -> TransitionResult:
    """The whole `ddip-video transition` job: read, unmix, write every output."""
    start = time.perf_counter()
    opts, device = resolve_options(opts)
    with StagedOutputDir(outdir, input_path) as out:  # first: a bad OUTDIR fails before the work
        clip = load_working_clip(input_path, opts.max_side, opts.fps,
                                 memory=lambda info: memory_need(info, opts, device))
        if clip.info.num_frames < 2:
            raise InputError(f"{clip.info.path.name}: a transition needs at least 2 frames, "
                             f"the input has {clip.info.num_frames}")
        unmixing = unmix(clip.frames, opts)
        write_shots(input_path, clip.info, unmixing, out, opts)
        write_alpha_csv(out.path("alpha.csv"), unmixing.alpha, clip.info.fps,
                        unmixing.weight_b if unmixing.dip is not None else None)
        write_alpha_plot(out.path("alpha.png"), unmixing, clip.info.fps)
        outputs = out.commit()
    return TransitionResult(unmixing, outputs, (clip.info.width, clip.info.height), clip.info.num_frames,
                            clip.info.fps, time.perf_counter() - start)


def write_shots(input_path, info, unmixing: Unmixing, out: StagedOutputDir, opts: TransitionOptions) -> None:
    """shot_a.mp4, shot_b.mp4 and preview.png. Where a shot is not visible
    (A after the transition, B before it) it holds its nearest visible frame;
    a shot never visible is black, the solid shot of a fade its colour."""
    size = (info.width, info.height)
    alpha, weight_b = unmixing.alpha, unmixing.weight_b
    inverted = unmixing.matte == "white"  # the shots are held inverted: split the inverted frame

    def shots_at(t: int, image: torch.Tensor):
        up = [resize_frames(s[t:t + 1], size)[0] for s in (unmixing.shot_a, unmixing.shot_b)]
        weight_a, black = unmixing.mix_at(t)
        shots = split_residual(1.0 - image if inverted else image, weight_a, up[0], up[1], black)
        return tuple(1.0 - shot for shot in shots) if inverted else shots

    first_b = int(np.argmax(weight_b > 0)) if (weight_b > 0).any() else None
    held_b = None  # shot B's first visible frame, held before it
    if first_b is not None and first_b > 0:
        for t, frame in enumerate(iter_frames(input_path, fps=opts.fps)):
            if t == first_b:
                held_b = shots_at(t, frame_to_tensor(frame))[1]
                break
    held_a = None  # shot A's latest visible frame, held after it
    preview_at = set(preview_frames(unmixing, info.num_frames))
    preview_rows = []
    audio = input_path if info.has_audio else None
    writers = [layer_writer(out.path(name), info, "rgb", audio) for name in ("shot_a.mp4", "shot_b.mp4")]
    try:
        frames = progress_bar("transition: writing", "frame", opts.progress, iter_frames(input_path, fps=opts.fps),
                              len(alpha))
        for t, frame in enumerate(frames):
            if t >= len(alpha):
                break
            image = frame_to_tensor(frame)
            shot_a, shot_b = shots_at(t, image)
            if alpha[t] > 0:
                held_a = shot_a
            else:
                shot_a = held_a if held_a is not None else torch.zeros_like(image)
            if weight_b[t] == 0:
                shot_b = held_b if held_b is not None else torch.zeros_like(image)
            writers[0].write(shot_a)
            writers[1].write(shot_b)
            if t in preview_at:
                preview_rows.append([image, shot_a, shot_b])
        for writer in writers:
            writer.close()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    write_contact_sheet(out.path("preview.png"), preview_rows, ["input", "shot A", "shot B"],
                        pixel_aspect=info.pixel_aspect, colour=info.colour)


def preview_frames(unmixing: Unmixing, num_frames: int, count: int = 4) -> list[int]:
    """Frames for the contact sheet: spread over the transition (one frame
    either side of it included), or over the clip when there is none."""
    if unmixing.last < unmixing.first:
        return sample_frames(num_frames, count)
    lo, hi = max(0, unmixing.first - 1), min(num_frames - 1, unmixing.last + 1)
    return [lo + i for i in sample_frames(hi - lo + 1, count)]


def write_alpha_csv(path: Path, alpha: np.ndarray, fps: Fraction, weight_b: np.ndarray | None = None) -> None:
    """frame,time_s,alpha; and weight_b, the weight of shot B, where it is not
    1 - alpha (a dip to black or white)."""
    columns = {"alpha": alpha} if weight_b is None else {"alpha": alpha, "weight_b": weight_b}
    lines = [",".join(["frame", "time_s", *columns])]
    lines += [",".join([str(t), f"{float(t / fps):.6f}", *(f"{c[t]:.6f}" for c in columns.values())])
              for t in range(len(alpha))]
    path.write_text("\n".join(lines) + "\n")


def write_alpha_plot(path: Path, unmixing: Unmixing, fps: Fraction, width: int = 800, height: int = 400) -> None:
    """The alpha curve drawn with OpenCV: weight of shot A against time (and of
    shot B in a dip), the transition shaded."""
    alpha = unmixing.alpha
    n = len(alpha)
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 60, 20, 36, 50
    pw, ph = width - left - right, height - top - bottom

    def xy(t: float, a: float) -> tuple[int, int]:
        x = left + (t / max(1, n - 1)) * pw
        return int(round(x)), int(round(top + (1 - a) * ph))

    if unmixing.last >= unmixing.first:
        x0, _ = xy(unmixing.first, 0)
        x1, _ = xy(unmixing.last, 0)
        cv2.rectangle(img, (x0, top), (max(x1, x0 + 1), top + ph), (235, 225, 205), -1)
    gray, black = (200, 200, 200), (0, 0, 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for a in (0.0, 0.25, 0.5, 0.75, 1.0):
        _, y = xy(0, a)
        cv2.line(img, (left, y), (left + pw, y), gray, 1)
        cv2.putText(img, f"{a:.2f}", (8, y + 5), font, 0.45, black, 1, cv2.LINE_AA)
    step = max(1, nice_step(n / 8))
    for t in range(0, n, step):
        x, _ = xy(t, 0)
        cv2.line(img, (x, top + ph), (x, top + ph + 5), black, 1)
        label = f"{t}"
        cv2.putText(img, label, (x - 4 * len(label), top + ph + 20), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), black, 1)
    curves = [(alpha, (200, 80, 0))]  # BGR: blue
    if unmixing.dip is not None:
        curves.append((unmixing.weight_b, (0, 120, 230)))  # orange
    for curve, colour in curves:
        points = np.array([xy(t, a) for t, a in enumerate(curve)], np.int32)
        cv2.polylines(img, [points], False, colour, 2, cv2.LINE_AA)
        for p in points if n <= 120 else []:
            cv2.circle(img, tuple(int(v) for v in p), 3, colour, -1, cv2.LINE_AA)
    duration = n / float(fps)
    title = ("weight of shot A (blue) and of shot B (orange)" if unmixing.dip is not None
             else "alpha (weight of shot A)")
    cv2.putText(img, f"{title}: {unmixing.kind}", (left, 24), font, 0.55, black, 1, cv2.LINE_AA)
    cv2.putText(img, f"frame ({float(fps):g} fps, {duration:.2f} s)", (left + pw // 2 - 80, height - 12), font,
                0.45, black, 1, cv2.LINE_AA)
    save_png(path, img)  # drawn in BGR


def nice_step(raw: float) -> int:
    """1, 2, 5, 10, 20, 50, ... at least raw."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return int(m * power)
    return int(10 * power)
