"""`fgbg`'s separation: from the frames to the masks and the background layer.

The motion hints (ddip_video.analysis.motion) are made at HINT_SIDE, the model
(model.py) is fitted at the working size by the engine (ddip_video.fit): the
layers first learn from the hints alone (the warm-up), then the Double-DIP
objective decides with the hints' pull faded to a floor. A clip with hard cuts
is separated shot by shot.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ...analysis.cuts import hard_cuts, thumbnails
from ...analysis.motion import MotionHints, hint_steps, motion_hints
from ...fit import ParamGroup, Schedule, fit, total_loss, windowed_mean
from ...ops import composite_recon_loss, exclusion_loss
from ...progress import progress_bar
from ...runtime import LOADED_BYTES, MemoryNeed, device_label, seed_everything, with_device_defaults
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
    A clip with hard cuts (and no hints given) is separated shot by shot."""
    if hints is None:
        cuts = hard_cuts(thumbnails(frames))
        if cuts:
            return separate_shots(frames, opts, cuts)
    start = time.perf_counter()
    opts, device = resolve_options(opts)
    generator = seed_everything(opts.seed)
    size = working_size(frames.shape[-1], frames.shape[-2], opts.max_side)
    hints = scale_hints(clip_hints(frames, label, opts.progress) if hints is None else hints, size)
    frames = resize_frames(frames, size)
    hint_seconds = time.perf_counter() - start
    model = FgbgModel(frames, hints, generator).to(device)
    frames = frames.to(device)
    hint = torch.from_numpy(hints.fg_prob).unsqueeze(1).to(device)
    warmup = int(opts.warmup * opts.iters)
    schedule = Schedule(opts.iters, opts.window, opts.eval_every, opts.patience, eval_from=warmup)
    report = fit(FgbgFit(model, frames, hint, opts, warmup), len(frames), schedule, device, generator, label,
                 opts.progress)
    masks, background = predict(model, frames, hint, min(opts.window, len(frames)))
    return Separation(masks.cpu(), background.cpu(), hints, report.steps, report.best_step,
                      time.perf_counter() - start, device_label(device), opts,
                      dict(hints=hint_seconds, optimize=report.seconds))


def separate_shots(frames: torch.Tensor, opts: FgbgOptions, cuts: list[int]) -> Separation:
    """Each shot of a clip with hard cuts (frames `cuts` start a new shot)
    separated on its own, with its own hints, scene and camera path, and the
    full schedule: one static scene seen across a cut cannot explain both
    shots, and the motion hints break at the cut. (benchmarks/notes/fgbg.md, "fgbg on
    clips with cuts": DAVIS J of three sequences joined by two cuts.)"""
    start = time.perf_counter()
    bounds = [0, *cuts, len(frames)]
    parts = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        hint_start = time.perf_counter()
        label = f"fgbg shot {i + 1}/{len(bounds) - 1}"
        hints = clip_hints(frames[a:b], label, opts.progress)
        hint_seconds = time.perf_counter() - hint_start
        parts.append(separate(frames[a:b], opts, hints, label))
        parts[-1].timings["hints"] += hint_seconds
    hints = MotionHints(np.concatenate([p.hints.fg_prob for p in parts]),
                        np.concatenate([p.hints.fg_mask for p in parts]),
                        np.concatenate([p.hints.homographies for p in parts]),  # each to its shot's first frame
                        all(p.hints.camera_static for p in parts), any(p.hints.parallax for p in parts))
    timings = {key: sum(p.timings[key] for p in parts) for key in parts[0].timings}
    return Separation(torch.cat([p.masks for p in parts]), torch.cat([p.background for p in parts]), hints,
                      sum(p.iterations for p in parts), parts[-1].best_iteration, time.perf_counter() - start,
                      parts[0].device, parts[0].options, timings, list(cuts))


@torch.no_grad()
def predict(model: FgbgModel, frames: torch.Tensor, hint: torch.Tensor, window: int):
    """Masks of every frame (overlapping windows averaged) and the background layer."""
    device = frames.device
    masks, = windowed_mean(len(frames), window, device, lambda idx: model(idx, frames, hint, perturb=False)[:1])
    canvas = model.background.canvas(perturb=False)
    background = torch.cat([
        model.background(torch.arange(s, min(s + window, len(frames)), device=device), canvas=canvas)
        for s in range(0, len(frames), window)])
    return masks, background
