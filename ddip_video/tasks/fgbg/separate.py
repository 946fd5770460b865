"""`fgbg`'s separation: from the frames to the masks and the background layer.

The motion hints (ddip_video.analysis.motion) are made at HINT_SIDE, the model
(model.py) is fitted at the working size by the engine (ddip_video.fit): the
layers first learn from the hints alone (the warm-up), then the Double-DIP
objective decides with the hints' pull faded to a floor. A clip with hard cuts
is separated shot by shot.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ...analysis.cuts import hard_cuts, thumbnails
from ...analysis.motion import MotionHints, hint_steps, motion_hints
from ...fit import FitReport, ParamGroup, Schedule, fit, total_loss, windowed_mean
from ...ops import composite_recon_loss, exclusion_loss
from ...progress import progress_bar
from ...runtime import (LOADED_BYTES, MemoryNeed, device_label, release_free_memory, seed_everything,
                        with_device_defaults)
from ... import segments
from ...segments import Checkpoints, FrameStore, SeamBlender, Segment, has_long_shot, plan_segments
from ...video import VideoInfo, frames_to_uint8, resize_frames, working_size
from .model import FgbgModel, hint_loss, objective_terms
from .options import DEFAULTS, FgbgOptions

HINT_SIDE = 427  # the motion hints' working size (longer side): classic vision needs detail


def resolve_options(opts: FgbgOptions) -> tuple[FgbgOptions, torch.device]:
    """The options with the device's defaults filled in, and the device."""
    return with_device_defaults(opts, DEFAULTS)


# A long clip's memory goes to the motion hints (the frames at HINT_SIDE, both flows,
# the evidence maps), on the host whatever the device: their peak (CPU, 854x480, 100,
# 200 and 400 frames, benchmarks/notes/memory.md) grows by 4.9-5.3 MB a frame, 48-52
# bytes a pixel at 427x240. The check counts the high end: a lower figure let a clip of
# 5000 frames through on a 24 GiB machine, to be killed for want of memory.
HINT_BYTES_PER_PIXEL = 52


def memory_need(info: VideoInfo) -> MemoryNeed:
    """About the memory fgbg takes for the clip `info` describes."""
    w, h = working_size(info.width, info.height, HINT_SIDE)
    return MemoryNeed(LOADED_BYTES, HINT_BYTES_PER_PIXEL * w * h)


def scale_hints(hints: MotionHints, size: tuple[int, int]) -> MotionHints:
    """The hints of frames resized to size = (w, h): the maps resized, the
    homographies conjugated by the change of pixel coordinates."""
    t, h0, w0 = hints.fg_prob.shape
    w, h = size
    if (w, h) == (w0, h0):
        return hints
    prob = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_AREA) for m in hints.fg_prob]).astype(np.float32)
    homographies = rescale_homographies(hints.homographies, (w0, h0), (w, h))
    return MotionHints(prob, prob > 0.5, homographies, hints.camera_static, hints.parallax)


def rescale_homographies(homographies: np.ndarray, found_at: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Homographies between frames of size found_at = (w, h), for the same frames
    resized to `size`: conjugated by the change of pixel coordinates, pixel centres
    kept (x' + 0.5 = s (x + 0.5))."""
    sx, sy = size[0] / found_at[0], size[1] / found_at[1]
    scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return scale @ np.asarray(homographies, np.float64) @ np.linalg.inv(scale)


@dataclass
class Separation:
    masks: torch.Tensor        # T x 1 x h x w in [0, 1], working size
    background: torch.Tensor   # T x 3 x h x w
    hints: MotionHints
    iterations: int
    best_iteration: int
    seconds: float
    device: str
    options: FgbgOptions       # as run: the device's defaults filled in
    timings: dict = field(default_factory=dict)
    cuts: list[int] = field(default_factory=list)  # frames that start a new shot; each shot is separated alone
    segments: int = 1          # the segments the shots were separated in (segments.py)


def clip_hints(frames: torch.Tensor, label: str = "fgbg", progress: bool = False) -> MotionHints:
    """The motion hints of frames (T x 3 x h x w in [0, 1]), made at HINT_SIDE; with a
    progress bar (some 0.12 s a frame on 2 CPU threads, before the optimisation's)."""
    hint_size = working_size(frames.shape[-1], frames.shape[-2], HINT_SIDE)
    with progress_bar(f"{label}: motion hints", "step", progress, total=hint_steps(len(frames))) as bar:
        return motion_hints(frames_to_uint8(resize_frames(frames, hint_size)), tick=bar.update)


class FgbgFit:
    """`fgbg` as the engine (ddip_video.fit) runs it. During the warm-up the layers
    learn from the hints (the composite uses them as its mask) and the mask net
    copies them; then the Double-DIP objective, with the hints' pull fading from
    hint_weight to hint_floor over half the remaining steps."""

    def __init__(self, model: FgbgModel, frames: torch.Tensor, hint: torch.Tensor, opts: FgbgOptions,
                 warmup: int):
        self.model, self.frames, self.hint, self.opts, self.warmup = model, frames, hint, opts, warmup

    def param_groups(self) -> list[ParamGroup]:
        return [ParamGroup(list(self.model.parameters()), self.opts.lr)]

    def loss_terms(self, idx: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        opts = self.opts
        mask, foreground, background = self.model(idx, self.frames, self.hint)
        target, hint = self.frames[idx], self.hint[idx]
        if step < self.warmup:
            return {"recon": composite_recon_loss(hint, foreground, background, target, 1),
                    "exclusion": opts.exclusion_weight * exclusion_loss(foreground, background),
                    "hint": opts.hint_weight * hint_loss(mask, hint)}
        fade = min(1.0, (step - self.warmup) / max(1, (opts.iters - self.warmup) / 2))
        hint_weight = opts.hint_weight * (1 - fade) + opts.hint_floor * fade
        return {**objective_terms(opts, mask, foreground, background, target),
                "hint": hint_weight * hint_loss(mask, hint)}

    def score(self, idx: torch.Tensor) -> torch.Tensor:
        mask, foreground, background = self.model(idx, self.frames, self.hint, perturb=False)
        return total_loss(objective_terms(self.opts, mask, foreground, background, self.frames[idx]))


def separate(frames: torch.Tensor, opts: FgbgOptions, hints: MotionHints | None = None,
             label: str = "fgbg") -> Separation:
    """Runs the optimisation on frames (T x 3 x h x w in [0, 1]); the model
    works at opts.max_side, the hints at HINT_SIDE (or the frames' size if smaller).
    A clip with hard cuts is separated shot by shot, a long shot in segments
    (separate_segments); given `hints`, the clip is one segment with those hints."""
    if hints is not None:
        start = time.perf_counter()
        opts, device = resolve_options(opts)
        fitted = fit_segment(frames, opts, hints, seed_everything(opts.seed), device, label)
        return fitted.separation(time.perf_counter() - start, device, opts)
    plan = plan_segments(len(frames), hard_cuts(thumbnails(frames)))
    return separate_segments(((s, frames[s.first:s.end]) for s in plan), plan, opts, label)


@dataclass
class SegmentFit:
    """One segment's separation at the working size, and the model's state it ended in."""
    masks: torch.Tensor
    background: torch.Tensor
    hints: MotionHints          # at the working size
    report: FitReport
    state: dict
    timings: dict

    def separation(self, seconds: float, device: torch.device, opts: FgbgOptions) -> Separation:
        return Separation(self.masks, self.background, self.hints, self.report.steps, self.report.best_step,
                          seconds, device_label(device), opts, dict(self.timings))


def fit_segment(frames: torch.Tensor, opts: FgbgOptions, hints: MotionHints | None, generator: torch.Generator,
                device: torch.device, label: str, warm_state: dict | None = None) -> SegmentFit:
    """The model fitted to one segment (frames at any size; hints None: made here),
    starting from warm_state (the segment before's weights) where given, its scene's
    code then drawn as the shot's first segment drew it, from a fresh generator seeded
    with opts.seed (segment_seed's seed for a shot's first): a still camera's scene keeps
    its code, which the warm background net already draws."""
    start = time.perf_counter()
    size = working_size(frames.shape[-1], frames.shape[-2], opts.max_side)
    hints = scale_hints(clip_hints(frames, label, opts.progress) if hints is None else hints, size)
    frames = resize_frames(frames, size)
    release_free_memory()  # what the hints freed, before the fit takes its own
    hint_seconds = time.perf_counter() - start
    if warm_state is None:
        model = FgbgModel(frames, hints, generator).to(device)
    else:
        model = FgbgModel(frames, hints, generator, torch.Generator().manual_seed(opts.seed)).to(device)
        model.load_state_dict(warm_state)
    frames = frames.to(device)
    hint = torch.from_numpy(hints.fg_prob).unsqueeze(1).to(device)
    warmup = int(opts.warmup * opts.iters)
    schedule = Schedule(opts.iters, opts.window, opts.eval_every, opts.patience, eval_from=warmup)
    report = fit(FgbgFit(model, frames, hint, opts, warmup), len(frames), schedule, device, generator, label,
                 opts.progress)
    masks, background = predict(model, frames, hint, min(opts.window, len(frames)))
    masks = with_hint_objects(masks.cpu(), hints)
    # optimise: the model's making, its fit and the inference of every frame's mask
    return SegmentFit(masks, background.cpu(), hints, report, model.state_dict(),
                      dict(hints=hint_seconds, optimize=time.perf_counter() - start - hint_seconds))


def with_hint_objects(masks: torch.Tensor, hints: MotionHints, held: float = 0.5) -> torch.Tensor:
    """The masks (T x 1 x h x w), each connected part of a frame's hint mask that its mask
    holds less than `held` of (over 0.5) given back as the hints' probability there
    (the larger of the two): the model may let go of a second object that the hints found
    (the removal clips: dog+car-shadow's hole +0.18 dB, the others within 0.01;
    benchmarks/notes/fgbg.md)."""
    out = masks.clone()
    for t in range(len(out)):
        count, parts = cv2.connectedComponents(hints.fg_mask[t].astype(np.uint8))
        mask, prob = out[t, 0].numpy(), hints.fg_prob[t]
        for k in range(1, count):
            part = parts == k
            if (mask[part] > 0.5).mean() < held:
                mask[part] = np.maximum(mask[part], prob[part])
    return out


def segment_iters(opts: FgbgOptions, plan: list[Segment], segment: Segment) -> int:
    """The steps a segment runs: the full schedule for a shot that is one segment; in
    a longer shot, each segment (the first, cold, as the later ones, warm) runs
    opts.segment_iters of the full schedule for SEGMENT_FRAMES frames, in proportion
    to its length, so that the time grows in proportion to the frames. On CDnet
    highway (300 frames; segments of 150, 95 and 95 frames) 60, 38 and 38 steps gave
    F 0.980 in 203 s; the full 300 for the first and 45 for the others had given 0.965
    in 452 s (benchmarks/notes/fgbg.md, "Long clips")."""
    if sum(s.shot == segment.shot for s in plan) == 1:
        return opts.iters
    return max(1, round(opts.segment_iters * opts.iters * segment.length / segments.SEGMENT_FRAMES))


def segment_seed(opts: FgbgOptions, plan: list[Segment], segment: Segment) -> int:
    """Each segment's own seed, so that a resumed run draws what an uninterrupted one
    does: a shot's first segment the run's seed (a shot is separated as if it came
    alone), the later ones the seed plus their place in the shot."""
    return opts.seed + segment.index - shot_start(plan, segment).index


def shot_start(plan: list[Segment], segment: Segment) -> Segment:
    return next(s for s in plan if s.shot == segment.shot)


def segment_label(label: str, plan: list[Segment], segment: Segment) -> str:
    shots = plan[-1].shot + 1
    if len(plan) == 1:
        return label
    if not has_long_shot(plan):
        return f"{label} shot {segment.shot + 1}/{shots}"
    return f"{label} segment {segment.index + 1}/{len(plan)}"


def separate_segments(source: Iterable[tuple[Segment, torch.Tensor]], plan: list[Segment], opts: FgbgOptions,
                      label: str = "fgbg", store: Path | None = None, checkpoints: Checkpoints | None = None
                      ) -> Separation:
    """Each segment of the plan (source: each with its frames, in order) separated
    with its own hints, scene and camera path: one static scene seen across a cut
    cannot explain both shots, and the motion hints break at the cut
    (benchmarks/notes/fgbg.md, "fgbg on clips with cuts"); a long shot's scene drifts
    and its hints would not fit in memory. A segment that continues a shot starts from
    the weights the segment before ended with and runs fewer steps; the results are
    blended across the overlaps (segments.SeamBlender). With `store` (a folder), the
    per-frame results are kept there (FrameStore), not in memory; with `checkpoints`
    as well, each finished segment is recorded there, and the segments the last run
    finished are not run again."""
    start = time.perf_counter()
    opts, device = resolve_options(opts)
    names = ("masks", "background", "hint", "hint_mask")
    progress = SegmentProgress(plan)
    resumed = checkpoints.last() if checkpoints is not None else None
    if resumed is not None:
        progress = resumed[1]["progress"]
    kept = {name: FrameStore(store, name, progress.done_segments) if store is not None else [] for name in names}
    blender = SeamBlender(plan, lambda name, value: kept[name].append(value))
    if resumed is not None:
        blender.restore(resumed[1]["blender"])
    state = resumed[1]["state"] if resumed is not None else None
    shown = opts.progress and has_long_shot(plan)
    with progress_bar(f"{label}: segments", "frame", shown, total=plan[-1].end) as bar:
        bar.update(progress.frames_done)
        decode_start = time.perf_counter()
        for segment, frames in source:
            if segment.index < progress.done_segments:
                continue
            progress.timings["decode"] += time.perf_counter() - decode_start
            generator = seed_everything(segment_seed(opts, plan, segment))
            fitted = fit_segment(frames, replace(opts, iters=segment_iters(opts, plan, segment)), None, generator,
                                 device, segment_label(label, plan, segment), state if segment.warm else None)
            state = fitted.state
            progress.add(segment, fitted)
            prob = torch.from_numpy(fitted.hints.fg_prob)[:, None]
            blender.add(segment, dict(masks=fitted.masks, background=fitted.background, hint=prob,
                                      hint_mask=torch.from_numpy(fitted.hints.fg_mask)[:, None].float()),
                        fitted.hints.homographies)
            if checkpoints is not None:
                checkpoints.save(segment.index, dict(progress=progress, blender=blender.saved(), state=state))
            del fitted, prob
            release_free_memory()  # else each segment's freed hints stay partly resident
            bar.update(segment.end - bar.n)
            decode_start = time.perf_counter()
    joined = {name: kept[name] if store is not None else torch.cat(kept[name]) for name in names}
    hints = MotionHints(PerFrame(joined["hint"], lambda x: x[0].numpy()),
                        PerFrame(joined["hint_mask"], lambda x: x[0].numpy() > 0.5),
                        blender.camera_path(), progress.static, progress.parallax)
    if store is None:  # in memory: the arrays themselves, as the benchmarks take them
        hints.fg_prob, hints.fg_mask = hints.fg_prob.array(np.float32), hints.fg_mask.array(bool)
    cuts = [s.first for s in plan if s.shot > 0 and not s.overlap]
    return Separation(joined["masks"], joined["background"], hints, progress.iterations, progress.best_step,
                      time.perf_counter() - start, device_label(device), opts, dict(progress.timings), cuts,
                      len(plan))


@dataclass
class SegmentProgress:
    """What the segments done so far add up to (kept with each checkpoint)."""
    plan: list[Segment]
    done_segments: int = 0
    iterations: int = 0
    best_step: int = -1
    static: bool = True
    parallax: bool = False
    timings: dict = field(default_factory=lambda: dict(decode=0.0, hints=0.0, optimize=0.0))

    @property
    def frames_done(self) -> int:
        return self.plan[self.done_segments - 1].end if self.done_segments else 0

    def add(self, segment: Segment, fitted: SegmentFit) -> None:
        self.done_segments = segment.index + 1
        self.iterations += fitted.report.steps
        self.best_step = fitted.report.best_step
        self.static = self.static and fitted.hints.camera_static
        self.parallax = self.parallax or fitted.hints.parallax
        for key in ("hints", "optimize"):
            self.timings[key] += fitted.timings[key]


class PerFrame:
    """A clip's per-frame values read through `convert` (frame tensor -> array)."""

    def __init__(self, frames, convert: Callable):
        self.frames, self.convert = frames, convert

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, t: int):
        return self.convert(self.frames[t])

    def __iter__(self):
        return (self[t] for t in range(len(self)))

    def array(self, dtype) -> np.ndarray:
        return np.stack(list(self)).astype(dtype)


@torch.no_grad()
def predict(model: FgbgModel, frames: torch.Tensor, hint: torch.Tensor, window: int):
    """Masks of every frame (overlapping windows averaged) and the background layer."""
    device = frames.device
    masks, = windowed_mean(len(frames), window, device, lambda idx: [model.mask(idx, frames, hint, perturb=False)])
    canvas = model.background.canvas(perturb=False)
    background = torch.cat([
        model.background(torch.arange(s, min(s + window, len(frames)), device=device), canvas=canvas)
        for s in range(0, len(frames), window)])
    return masks, background
