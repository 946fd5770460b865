"""`ddip-video fgbg`: separate a clip's moving foreground from its background.

Double-DIP with the video's own motion as the only guide. The background is
one static scene drawn by a skip net and seen through the camera's motion
(found by classic vision, ddip_video.motion); the foreground is a skip net
shared by all frames with time-correlated codes; a space-time mask net
chooses, per pixel, which layer explains the frame. Motion hints say which
layer is the foreground early on; then reconstruction, the exclusion loss
and the mask terms decide. The mask costs a little per pixel it claims, so
it covers what the static scene cannot explain: what moves in it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..guided_filter import guided_upsample
from ..model import BestState, FrameCodes, PanoramaBackground, frame_windows, panorama_geometry
from ..motion import MotionHints, hint_steps, motion_hints
from ..nets import SkipNet
from ..ops import composite_recon_loss, exclusion_loss
from ..video import StagedOutputDir, StreamingWriter, VideoInfo, iter_frames, resize_frames, working_size
from .common import (LOADED_BYTES, MemoryNeed, Progress, TaskOptions, device_label, frame_to_tensor, frames_to_uint8,
                     layer_writer, load_working_clip, progress_bar, sample_frames, seed_everything,
                     with_device_defaults, write_contact_sheet)
from .cuts import hard_cuts, thumbnails


HINT_SIDE = 427  # the motion hints' working size (longer side): classic vision needs detail
MASK_GUIDE_RADIUS = 3  # at twice the working size: within 0.002 J of the fit at full size (radius 8), 1/9 of its time


def scale_hints(hints: MotionHints, size: tuple[int, int]) -> MotionHints:
    """The hints of frames resized to size = (w, h): the maps resized, the
    homographies conjugated by the change of pixel coordinates."""
    t, h0, w0 = hints.fg_prob.shape
    w, h = size
    if (w, h) == (w0, h0):
        return hints
    prob = cv2_resize_stack(hints.fg_prob, size)
    sx, sy = w / w0, h / h0
    # pixel centres: x' + 0.5 = s (x + 0.5)
    scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    homographies = scale @ hints.homographies @ np.linalg.inv(scale)
    return MotionHints(prob, prob > 0.5, homographies, hints.camera_static)


def cv2_resize_stack(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.resize(m, size, interpolation=cv2.INTER_AREA) for m in maps]).astype(np.float32)


@dataclass
class FgbgOptions(TaskOptions):
    mask_png: bool = False
    window: int = 8                  # frames per optimisation step
    lr: float = 0.005
    warmup: float = 0.25             # fraction of the steps spent on the hints alone
    area_weight: float = 0.03        # cost of one unit of mask, in units of L1 reconstruction error
    exclusion_weight: float = 0.05
    binary_weight: float = 0.05
    hint_weight: float = 1.0
    hint_floor: float = 0.5          # the hints' weight once they have faded
    eval_every: int = 50
    patience: int = 4


# The defaults where none is given: a GPU runs the full schedule at 427 px in about a
# minute per 50 frames; a CPU is some 40x slower per pixel-step, so it works coarser.
DEFAULTS = {"cuda": dict(max_side=427, iters=800), "cpu": dict(max_side=160, iters=300)}


def resolve_options(opts: FgbgOptions) -> tuple[FgbgOptions, torch.device]:
    """The options with the device's defaults filled in, and the device."""
    return with_device_defaults(opts, DEFAULTS)


# A long clip's memory goes to the motion hints (the frames at HINT_SIDE, both flows,
# the evidence maps), on the host whatever the device: their peak (CPU, 854x480, 100,
# 200 and 400 frames, benchmarks/README "Memory") grows by 4.9-5.3 MB a frame, 48-52
# bytes a pixel at 427x240. The check counts the high end: a lower figure let a clip of
# 5000 frames through on a 24 GiB machine, to be killed for want of memory.
HINT_BYTES_PER_PIXEL = 52


def memory_need(info: VideoInfo) -> MemoryNeed:
    """About the memory fgbg takes for the clip `info` describes."""
    w, h = working_size(info.width, info.height, HINT_SIDE)
    return MemoryNeed(LOADED_BYTES, HINT_BYTES_PER_PIXEL * w * h)


class FgbgModel(nn.Module):
    def __init__(self, frames: torch.Tensor, hints: MotionHints, generator: torch.Generator):
        super().__init__()
        t, _, h, w = frames.shape
        self.background = PanoramaBackground(panorama_geometry(hints.homographies, h, w),
                                             generator=generator)
        self.fg_codes = FrameCodes(t, 8, h, w, generator=generator)
        self.foreground = SkipNet(8, 3)
        self.mask_codes = FrameCodes(t, 2, h, w, generator=generator)
        self.mask_net = SkipNet(3 + 1 + 2, 1, channels=(16, 32, 64, 64), temporal=True)

    def forward(self, idx: torch.Tensor, frames: torch.Tensor, hint: torch.Tensor, perturb: bool = True):
        """(mask, foreground, background) of frames idx; frames/hint: the clip's."""
        background = self.background(idx, perturb)
        foreground = self.foreground(self.fg_codes(idx, perturb))
        mask_in = torch.cat([frames[idx], hint[idx], self.mask_codes(idx, perturb)], dim=1)
        return self.mask_net(mask_in), foreground, background


def hint_loss(mask: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Cross-entropy towards the hints, weighted by how sure each hint is."""
    target = (prob > 0.5).to(mask.dtype)
    weight = (2 * prob - 1).abs()
    bce = F.binary_cross_entropy(mask.clamp(1e-4, 1 - 1e-4), target, reduction="none")
    return (weight * bce).mean()


def objective(opts: FgbgOptions, mask, foreground, background, frames) -> torch.Tensor:
    """The Double-DIP objective without the hints: what 'best' is judged by."""
    return (composite_recon_loss(mask, foreground, background, frames, 1)
            + opts.exclusion_weight * exclusion_loss(foreground, background)
            + opts.binary_weight * (mask * (1 - mask)).mean()
            + opts.area_weight * mask.mean())


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
    window = min(opts.window, len(frames))
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    warmup = int(opts.warmup * opts.iters)
    best = BestState(model, opts.patience)
    progress = Progress(opts.iters, label, opts.progress)
    iteration = 0
    for iteration in range(opts.iters):
        start_frame = int(torch.randint(0, len(frames) - window + 1, (1,), generator=generator))
        idx = torch.arange(start_frame, start_frame + window, device=device)
        loss = step_loss(model, frames, hint, idx, opts, iteration, warmup)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.step(loss.detach())
        last = iteration == opts.iters - 1
        if iteration >= warmup and ((iteration - warmup + 1) % opts.eval_every == 0 or last):
            if best.update(evaluate(model, frames, hint, opts, window), iteration) and not last:
                break
    optimize_seconds = progress.close()
    best.restore()
    masks, background = predict(model, frames, hint, window)
    return Separation(masks.cpu(), background.cpu(), hints, iteration + 1, best.best_step,
                      time.perf_counter() - start, device_label(device), opts,
                      dict(hints=hint_seconds, optimize=optimize_seconds))


def separate_shots(frames: torch.Tensor, opts: FgbgOptions, cuts: list[int]) -> Separation:
    """Each shot of a clip with hard cuts (frames `cuts` start a new shot)
    separated on its own, with its own hints, scene and camera path, and the
    full schedule: one static scene seen across a cut cannot explain both
    shots, and the motion hints break at the cut. (benchmarks/README, "Clips
    with cuts": DAVIS J of three sequences joined by two cuts.)"""
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
                        all(p.hints.camera_static for p in parts))
    timings = {key: sum(p.timings[key] for p in parts) for key in parts[0].timings}
    return Separation(torch.cat([p.masks for p in parts]), torch.cat([p.background for p in parts]), hints,
                      sum(p.iterations for p in parts), parts[-1].best_iteration, time.perf_counter() - start,
                      parts[0].device, parts[0].options, timings, list(cuts))


def step_loss(model: FgbgModel, frames, hint, idx, opts: FgbgOptions, iteration: int, warmup: int):
    """The loss of one optimisation step on frames idx."""
    mask, foreground, background = model(idx, frames, hint)
    target = frames[idx]
    if iteration < warmup:  # the layers learn from the hints; the mask net copies them
        return (composite_recon_loss(hint[idx], foreground, background, target, 1)
                + opts.exclusion_weight * exclusion_loss(foreground, background)
                + opts.hint_weight * hint_loss(mask, hint[idx]))
    fade = min(1.0, (iteration - warmup) / max(1, (opts.iters - warmup) / 2))
    hint_weight = opts.hint_weight * (1 - fade) + opts.hint_floor * fade
    return objective(opts, mask, foreground, background, target) + hint_weight * hint_loss(mask, hint[idx])


@torch.no_grad()
def evaluate(model: FgbgModel, frames, hint, opts: FgbgOptions, window: int) -> float:
    total, count = 0.0, 0
    for idx in frame_windows(len(frames), window):
        idx = idx.to(frames.device)
        mask, foreground, background = model(idx, frames, hint, perturb=False)
        total += objective(opts, mask, foreground, background, frames[idx]).item()
        count += 1
    return total / count


@torch.no_grad()
def predict(model: FgbgModel, frames, hint, window: int):
    """Masks of every frame (overlapping windows averaged) and the background."""
    masks = torch.zeros(len(frames), 1, *frames.shape[-2:], device=frames.device)
    counts = torch.zeros(len(frames), 1, 1, 1, device=frames.device)
    for idx in frame_windows(len(frames), window, overlap=window // 2):
        idx = idx.to(frames.device)
        masks[idx] += model(idx, frames, hint, perturb=False)[0]
        counts[idx] += 1
    canvas = model.background.canvas(perturb=False)
    background = torch.cat([
        model.background(torch.arange(s, min(s + window, len(frames)), device=frames.device), canvas=canvas)
        for s in range(0, len(frames), window)])
    return masks / counts, background


# A frame holds foreground where more of its mask than this is above one half:
# a few stray pixels are no object.
FOREGROUND_MIN_SHARE = 0.001


@dataclass
class FgbgResult:
    separation: Separation
    outputs: list[Path]
    size: tuple[int, int]
    num_frames: int
    foreground_share: np.ndarray  # per frame: the share of the written mask above one half
    seconds: float                # the whole job: reading, separating, writing every output

    def foreground_text(self) -> str:
        """How much of the clip the mask covers, for the summary line; says so
        plainly where it is empty (nothing moved apart from the camera)."""
        held = self.foreground_share > FOREGROUND_MIN_SHARE
        if not held.any():
            return "no moving foreground found: the mask is empty"
        return (f"foreground in {int(held.sum())} of {len(held)} frames, "
                f"covering {100 * self.foreground_share[held].mean():.0f}% of each on average")


def full_size_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """One frame's mask (1 x h x w, at the working size) enlarged to its image's
    size (image: 3 x H x W), its edges drawn to the image's by a guided filter
    fitted at twice the working size. Measured against plain bilinear
    enlargement: +0.004 to +0.009 DAVIS J per sequence of fgbg's masks, some 25 ms
    a 480p frame on the CPU; a coarse mask already right (the truth shrunk) loses
    0.015-0.023 J, its edge moved onto the colour edge (benchmarks/README,
    "Enlarging the mask")."""
    h, w = mask.shape[-2:]
    coarse = (min(image.shape[-1], 2 * w), min(image.shape[-2], 2 * h))
    return guided_upsample(mask[None], image[None], coarse, MASK_GUIDE_RADIUS)[0]


def run_fgbg(input_path, outdir, opts: FgbgOptions) -> FgbgResult:
    """The whole `ddip-video fgbg` job: read, separate, write every output."""
    start = time.perf_counter()
    opts, _ = resolve_options(opts)
    read_side = max(opts.max_side, HINT_SIDE)
    with StagedOutputDir(outdir, input_path) as out:  # first: a bad OUTDIR fails before the work
        clip = load_working_clip(input_path, opts.max_side, opts.fps, read_side=read_side, memory=memory_need)
        if clip.info.num_frames < 2:
            raise InputError(f"{clip.info.path.name}: fgbg needs at least 2 frames (the foreground is found "
                             f"by its motion), the input has {clip.info.num_frames}")
        separation = separate(clip.frames, opts)
        share = write_layers(input_path, clip.info, separation, out, opts)
        outputs = out.commit()
    return FgbgResult(separation, outputs, (clip.info.width, clip.info.height), clip.info.num_frames, share,
                      time.perf_counter() - start)


def write_layers(input_path, info, separation: Separation, out: StagedOutputDir, opts: FgbgOptions) -> np.ndarray:
    """Writes every output into `out`; returns the share of each frame's mask above one half."""
    size = (info.width, info.height)
    audio = input_path if info.has_audio else None
    writers = {
        "foreground": layer_writer(out.path("foreground.mp4"), info, "rgb", audio),
        "background": layer_writer(out.path("background.mp4"), info, "rgb", audio),
        "mask": layer_writer(out.path("mask.mp4"), info, "gray"),
        "alpha": layer_writer(out.path("foreground.mov"), info, "rgba", audio),
    }
    if opts.mask_png:
        writers["png"] = StreamingWriter(out.path("masks"), info.fps, size, "png")
    preview_at = set(sample_frames(info.num_frames))
    preview_rows = []
    # The enlargement runs where the model ran: from the GPU's working size (427 px)
    # it costs 0.13 s a 480p frame on 2 CPU threads, 0.53 s a 4K one (benchmarks/README).
    device = resolve_options(opts)[1]
    share = np.zeros(info.num_frames)
    try:
        frames = progress_bar("fgbg: writing", "frame", opts.progress, iter_frames(input_path, fps=opts.fps),
                              info.num_frames)
        for t, frame in enumerate(frames):
            image = frame_to_tensor(frame)
            mask = full_size_mask(separation.masks[t].to(device), image.to(device)).cpu()
            share[t] = (mask > 0.5).float().mean().item()
            clean = resize_frames(separation.background[t:t + 1], size)[0].clamp(0, 1)
            foreground = image * mask
            background = image * (1 - mask) + clean * mask  # the scene with the object removed
            writers["foreground"].write(foreground)
            writers["background"].write(background)
            writers["mask"].write(mask)
            writers["alpha"].write(torch.cat([image, mask]))
            if "png" in writers:
                writers["png"].write((mask > 0.5).float())
            if t in preview_at:
                preview_rows.append([image, foreground, background, mask])
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    write_contact_sheet(out.path("preview.png"), preview_rows, ["input", "foreground", "background", "mask"],
                        pixel_aspect=info.pixel_aspect, colour=info.colour)
    return share
