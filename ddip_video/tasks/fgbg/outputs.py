"""`fgbg`'s outputs at the input's full size (the masks enlarged with the frame as
the guide, the layers composited from the input), and the whole job, from the
input file to OUTDIR."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from ...guided_filter import guided_upsample
from ...outputs import layer_writer, sample_frames, write_contact_sheet
from ...progress import progress_bar
from ...runtime import load_working_clip
from ...video import StagedOutputDir, StreamingWriter, frame_to_tensor, iter_frames, resize_frames
from .options import FgbgOptions
from .separate import HINT_SIDE, Separation, memory_need, resolve_options, separate

MASK_GUIDE_RADIUS = 3  # at twice the working size: within 0.002 J of the fit at full size (radius 8), 1/9 of its time


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
    0.015-0.023 J, its edge moved onto the colour edge (benchmarks/notes/fgbg.md,
    "Enlarging the mask")."""
    h, w = mask.shape[-2:]
    coarse = (min(image.shape[-1], 2 * w), min(image.shape[-2], 2 * h))
    return guided_upsample(mask[None], image[None], coarse, MASK_GUIDE_RADIUS)[0]


def run_fgbg(input_path, outdir, opts: FgbgOptions) -> FgbgResult:
    """The whole `ddip-video fgbg` job: read, separate, write every output."""
    start = time.perf_counter()
    opts, device = resolve_options(opts)
    read_side = max(opts.max_side, HINT_SIDE)
    with StagedOutputDir(outdir, input_path) as out:  # first: a bad OUTDIR fails before the work
        clip = load_working_clip(input_path, opts.max_side, opts.fps, read_side=read_side, memory=memory_need)
        if clip.info.num_frames < 2:
            raise InputError(f"{clip.info.path.name}: fgbg needs at least 2 frames (the foreground is found "
                             f"by its motion), the input has {clip.info.num_frames}")
        separation = separate(clip.frames, opts)
        share = write_layers(input_path, clip.info, separation, out, opts, device)
        outputs = out.commit()
    return FgbgResult(separation, outputs, (clip.info.width, clip.info.height), clip.info.num_frames, share,
                      time.perf_counter() - start)


def write_layers(input_path, info, separation: Separation, out: StagedOutputDir, opts: FgbgOptions,
                 device: torch.device) -> np.ndarray:
    """Writes every output into `out`; returns the share of each frame's mask above one half.
    The masks are enlarged on `device`, where the model ran: from the GPU's working size
    (427 px) it costs 0.13 s a 480p frame on 2 CPU threads, 0.53 s a 4K one
    (benchmarks/notes/fgbg.md, "Enlarging the mask")."""
    size = (info.width, info.height)
    audio = input_path if info.has_audio else None
    preview_at = set(sample_frames(info.num_frames))
    preview_rows = []
    share = np.zeros(info.num_frames)
    with contextlib.ExitStack() as stack:  # every writer closed, or on an error every one aborted
        keep = stack.enter_context  # each writer as soon as it is open: a later one may fail to open
        writers = {"foreground": keep(layer_writer(out.path("foreground.mp4"), info, "rgb", audio)),
                   "background": keep(layer_writer(out.path("background.mp4"), info, "rgb", audio)),
                   "mask": keep(layer_writer(out.path("mask.mp4"), info, "gray")),
                   "alpha": keep(layer_writer(out.path("foreground.mov"), info, "rgba", audio))}
        if opts.mask_png:
            writers["png"] = keep(StreamingWriter(out.path("masks"), info.fps, size, "png"))
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
    write_contact_sheet(out.path("preview.png"), preview_rows, ["input", "foreground", "background", "mask"],
                        pixel_aspect=info.pixel_aspect, colour=info.colour)
    return share
