"""`fgbg`'s outputs at the input's full size (the masks enlarged with the frame as
the guide, the layers composited from the input), and the whole job, from the
input file to OUTDIR."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ...analysis.cuts import hard_cuts
from ...errors import InputError
from ...guided_filter import guided_upsample
from ...outputs import layer_writer, sample_frames, write_contact_sheet
from ...progress import progress_bar
from ...runtime import check_clip
from ...segments import (SEGMENT_FRAMES, SEGMENT_OVERLAP, Checkpoints, has_long_shot, plan_segments, run_manifest,
                         read_segments, read_thumbnails)
from ...video import (StagedOutputDir, StreamingWriter, frame_to_tensor, iter_frames, resize_frames, save_png,
                      working_size)
from .options import FgbgOptions
from .options import parse_pick
from .pick import check_pick, pick_object
from .plate import CameraPath, Lookahead, Plate, PlateBuilder, PlateRenderer, PlateSettings, cover_of, hole_of
from .separate import HINT_SIDE, Separation, memory_need, rescale_homographies, resolve_options, separate_segments

MASK_GUIDE_RADIUS = 3  # at twice the working size: within 0.002 J of the fit at full size (radius 8), 1/9 of its time


# background.mp4 is a clean plate, the input itself outside the hole: coded to keep the
# input's detail there. Re-coding the removal benchmark's inputs (4:4:4) as they are,
# with no fill, scores 36.5-39.7 dB against the truth at CRF 18 in 4:2:0, 41.8-44.5 at
# CRF 10 in 4:4:4 (benchmarks/notes/fgbg.md, "The clean plate"); the file is some
# 2-3x larger than at the CRF 18 of the other layers.
PLATE_QUALITY = 10

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
    plate_seconds: float = 0.0    # of which the clean plate: the plates and every frame's fill

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
    0.015-0.023 J, its edge moved onto the colour edge (benchmarks/notes/fgbg.md,
    "Enlarging the mask")."""
    h, w = mask.shape[-2:]
    coarse = (min(image.shape[-1], 2 * w), min(image.shape[-2], 2 * h))
    return guided_upsample(mask[None], image[None], coarse, MASK_GUIDE_RADIUS)[0]


# and plate-2.png, ... for the later shots of a clip with cuts
OUTPUTS = ("foreground.mp4", "background.mp4", "mask.mp4", "foreground.mov", "plate.png", "preview.png")


def run_fgbg(input_path, outdir, opts: FgbgOptions) -> FgbgResult:
    """The whole `ddip-video fgbg` job: read, separate, write every output. The input is
    read as it is needed: a pass for the cuts, then segment by segment (segments.py),
    so that a long clip's memory stays that of a few seconds of it."""
    start = time.perf_counter()
    opts, device = resolve_options(opts)
    read_side = max(opts.max_side, HINT_SIDE)
    manifest = fgbg_manifest(input_path, opts, device)
    resume = (lambda folder: Checkpoints.matches(folder / f".{WORK_FOLDER}", manifest)) if opts.resume else None
    with StagedOutputDir(outdir, input_path, resume) as out:  # first: a bad OUTDIR fails before the work
        out.check_outputs(OUTPUTS + (("masks",) if opts.mask_png else ()))
        info = check_clip(input_path, opts.max_side, opts.fps, memory_need, frames_held=SEGMENT_FRAMES)
        if info.num_frames < 2:
            raise InputError(f"{info.path.name}: fgbg needs at least 2 frames (the foreground is found "
                             f"by its motion), the input has {info.num_frames}")
        try:
            pick = parse_pick(opts.pick)
        except ValueError as error:
            raise InputError(f"--pick: {error}") from None
        check_pick(pick, (info.width, info.height))
        read_size = working_size(info.width, info.height, read_side)
        scan_start = time.perf_counter()
        plan = plan_segments(info.num_frames, hard_cuts(read_thumbnails(input_path, info.num_frames, read_size,
                                                                        opts.fps)))
        scan_seconds = time.perf_counter() - scan_start
        store = checkpoints = None
        if has_long_shot(plan):  # a long shot: its results kept on disk, each segment's end recorded
            store = out.scratch(WORK_FOLDER)
            checkpoints = Checkpoints(store, manifest, on_save=lambda: setattr(out, "keep_for_resume", True))
        separation = separate_segments(read_segments(input_path, plan, read_size, opts.fps), plan, opts,
                                       store=store, checkpoints=checkpoints)
        separation.timings["decode"] += scan_seconds
        if pick is not None:
            masks = separation.masks if isinstance(separation.masks, torch.Tensor) else separation.masks[:]
            separation.masks = pick_object(masks, separation.hints.homographies, pick, (info.width, info.height),
                                           separation.cuts)
        write_start = time.perf_counter()
        share, plate_seconds = write_layers(input_path, info, separation, out, opts, device)
        separation.timings["write"] = time.perf_counter() - write_start
        outputs = out.commit()
    return FgbgResult(separation, outputs, (info.width, info.height), info.num_frames, share,
                      time.perf_counter() - start, plate_seconds)


WORK_FOLDER = "segments"  # in the staging folder: a long clip's per-frame results and checkpoints


def fgbg_manifest(input_path, opts: FgbgOptions, device: torch.device) -> dict:
    """run_manifest, with the segments' length and overlap."""
    return run_manifest(input_path, opts, device, segments=[SEGMENT_FRAMES, SEGMENT_OVERLAP])


def write_layers(input_path, info, separation: Separation, out: StagedOutputDir, opts: FgbgOptions,
                 device: torch.device) -> tuple[np.ndarray, float]:
    """Writes every output into `out`; returns the share of each frame's mask above one
    half, and the seconds the clean plate took.
    The masks are enlarged on `device`, where the model ran: from the GPU's working size
    (427 px) it costs 0.13 s a 480p frame on 2 CPU threads, 0.53 s a 4K one
    (benchmarks/notes/fgbg.md, "Enlarging the mask"). The background is the clean plate
    (plate.py): a first pass over the input makes each shot's plate, the second fills
    each frame's hole from the frames around it."""
    size = (info.width, info.height)
    shots = shot_ranges(separation.cuts, info.num_frames)
    path = CameraPath(rescale_homographies(separation.hints.homographies, tuple(separation.masks.shape[:-3:-1]),
                                           size))
    plate_start = time.perf_counter()
    plates = shot_plates(input_path, separation, path, shots, size, opts, device)
    plate_seconds = time.perf_counter() - plate_start
    for i, (_, plate) in enumerate(plates):
        save_png(out.path(plate_name(i)), cv2.cvtColor(plate.rgba(), cv2.COLOR_RGBA2BGRA), info.colour)
    audio = input_path if info.has_audio else None
    preview_at = set(sample_frames(info.num_frames))
    preview_rows = []
    share = np.zeros(info.num_frames)
    with contextlib.ExitStack() as stack:  # every writer closed, or on an error every one aborted
        keep = stack.enter_context  # each writer as soon as it is open: a later one may fail to open
        writers = {"foreground": keep(layer_writer(out.path("foreground.mp4"), info, "rgb", audio)),
                   "background": keep(layer_writer(out.path("background.mp4"), info, "rgb", audio,
                                                   quality=PLATE_QUALITY)),
                   "mask": keep(layer_writer(out.path("mask.mp4"), info, "gray")),
                   "alpha": keep(layer_writer(out.path("foreground.mov"), info, "rgba", audio))}
        if opts.mask_png:
            writers["png"] = keep(StreamingWriter(out.path("masks"), info.fps, size, "png"))
        frames = progress_bar("fgbg: writing", "frame", opts.progress, iter_frames(input_path, fps=opts.fps),
                              info.num_frames)
        settings = PlateSettings()
        near = Lookahead(masked_frames(frames, separation, device, settings), plate_reach(size, settings))
        # a clip with cuts follows the depth in every shot if any shot has it (the hints of
        # the shots are joined into one)
        renderers = [PlateRenderer(CameraPath(path.to_first[a:b]), plate, background_layer(separation, a, size),
                                   settings, separation.hints.parallax) for (a, b), (plate, _) in zip(shots, plates)]
        for t in near:
            frame, mask, _, _ = near.get(t)
            shot = next(i for i, (a, b) in enumerate(shots) if a <= t < b)
            a, b = shots[shot]
            at_hand = near.available()
            fill_start = time.perf_counter()
            filled = renderers[shot].fill(t - a, lambda k: near.get(k + a)[0], lambda k: near.get(k + a)[2],
                                          range(max(at_hand.start, a) - a, min(at_hand.stop, b) - a),
                                          lambda k: near.get(k + a)[3])
            plate_seconds += time.perf_counter() - fill_start
            # what the fill took in beyond the mask is the object's too: the layers agree
            mask = torch.maximum(mask, torch.from_numpy(renderers[shot].taken_in).float()[None])
            image = frame_to_tensor(frame)
            share[t] = (mask > 0.5).float().mean().item()
            foreground = image * mask
            background = torch.from_numpy(filled).permute(2, 0, 1) / 255  # the scene with the object removed
            writers["foreground"].write(foreground)
            writers["background"].write(background)
            writers["mask"].write(mask)
            writers["alpha"].write(torch.cat([image, mask]))
            if "png" in writers:
                writers["png"].write((mask > 0.5).float())
            if t in preview_at:
                preview_rows.append([image, foreground, background, mask])
    write_contact_sheet(out.path("preview.png"), preview_rows, ["input", "foreground", "background", "mask"],
                        pixel_aspect=info.pixel_aspect, colour=info.colour)
    return share, plate_seconds


def shot_ranges(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    """(first, end) of each shot: frames `cuts` start a new one."""
    bounds = [0, *cuts, num_frames]
    return list(zip(bounds, bounds[1:]))


def plate_name(shot: int) -> str:
    """plate.png, and for a clip with cuts plate-2.png, ... for the later shots."""
    return "plate.png" if shot == 0 else f"plate-{shot + 1}.png"


def masked_frames(frames, separation: Separation, device: torch.device, settings: PlateSettings):
    """(frame, full-size mask, hole, cover) of each frame: uint8 H x W x 3, float32 1 x H x W,
    bool H x W twice (plate.py: what is filled, what a source does not show)."""
    for t, frame in enumerate(frames):
        image = frame_to_tensor(frame)
        mask = full_size_mask(separation.masks[t].to(device), image.to(device)).cpu()
        yield frame, mask, hole_of(mask[0].numpy(), settings), cover_of(mask[0].numpy(), settings)


def plate_reach(size: tuple[int, int], settings: PlateSettings, memory: int = 1 << 30) -> int:
    """How far ahead and behind frames are held for the fill: settings.reach, fewer for
    frames so large that 2 reach + 1 of them would pass `memory`."""
    per_frame = size[0] * size[1] * (3 + 4 + 1 + 1)  # frame, mask, hole, cover
    return max(2, min(settings.reach, (memory // per_frame - 1) // 2))


def background_layer(separation: Separation, first: int, size: tuple[int, int]):
    """The model's background for frame t of the shot starting at `first`, enlarged:
    the fill of last resort, where no frame sees the scene."""
    def at(t: int) -> np.ndarray:
        layer = resize_frames(separation.background[first + t:first + t + 1], size)[0].clamp(0, 1)
        return layer.permute(1, 2, 0).numpy() * 255
    return at


def shot_plates(input_path, separation: Separation, path: CameraPath, shots, size, opts: FgbgOptions,
                device: torch.device) -> list[tuple[Plate, Plate]]:
    """Each shot's plates (plate.py: the fill's and plate.png's), from a pass over the
    input's frames at full size."""
    settings = PlateSettings()
    builders = [PlateBuilder(path.to_first[a:b], size, settings, parallax=separation.hints.parallax)
                for a, b in shots]
    wanted = {a + t for (a, _), builder in zip(shots, builders) for t in builder.wanted}
    frames = iter_frames(input_path, fps=opts.fps)
    for t, frame in enumerate(progress_bar("fgbg: clean plate", "frame", opts.progress, frames, len(path.to_first))):
        if t not in wanted:
            continue
        shot = next(i for i, (a, b) in enumerate(shots) if a <= t < b)
        mask = full_size_mask(separation.masks[t].to(device), frame_to_tensor(frame).to(device)).cpu()
        builders[shot].add(t - shots[shot][0], frame, cover_of(mask[0].numpy(), settings))
    return [builder.plates() for builder in builders]
