"""Hard cuts: where a clip jumps from one shot to another between two frames.

Both tasks need them: `transition` tells a cut from a dissolve and from one
shot, `fgbg` separates each shot of an edited clip on its own (one static
scene and one camera path per shot).

A real cut changes the thumbnails between two frames far more than the clip's
other steps do: 14-38x their median on 40 DAVIS cuts (after 3 or 20 frames, at
160 px), 1.3-5.0x for the largest step of 12 single-shot clips (the five DAVIS
sequences, their first 40 frames and whole, CDnet highway, the shipped
sample). A still camera's median step is mostly noise, and video coding
removes it: CDnet highway's median fell from 0.0011 to 0.0004 through H.264
(CRF 28), and a passing truck (a step of 0.005) became a "cut" 11.6x the
median. The median counts as at least STEP_NOISE_FLOOR (under one grey level
of 255 a thumbnail pixel); real steps are above it (medians 0.006-0.012 on the
DAVIS clips, 0.137-0.272 the cuts themselves).
"""
from __future__ import annotations

import numpy as np
import torch

from ..video import resize_frames, working_size

CUT_STEP_RATIO = 8.0
STEP_NOISE_FLOOR = 0.003


def thumbnails(frames: torch.Tensor, side: int = 16) -> np.ndarray:
    """T x D: the frames shrunk (antialiased) to `side` pixels on the longer side, flattened."""
    t, _, h, w = frames.shape
    size = working_size(w, h, side)
    return resize_frames(frames.float(), size).reshape(t, -1).double().cpu().numpy()


def frame_steps(thumbs: np.ndarray) -> np.ndarray:
    """T - 1: the mean change of the thumbnails from each frame to the next."""
    return np.abs(np.diff(thumbs, axis=0)).mean(1)


def largest_step_ratio(thumbs: np.ndarray) -> float:
    """The largest change of the thumbnails between neighbouring frames over the
    median of the other changes (at least STEP_NOISE_FLOOR)."""
    steps = frame_steps(thumbs)
    k = int(np.argmax(steps))
    return float(steps[k] / max(float(np.median(np.delete(steps, k))), STEP_NOISE_FLOOR))


def hard_cuts(thumbs: np.ndarray) -> list[int]:
    """The frames that start a new shot after a hard cut: a step CUT_STEP_RATIO
    times the clip's median step (at least STEP_NOISE_FLOOR). Neighbouring
    large steps are one cut, and none where the frames either side of them
    match (a flash, a frame dropped and restored)."""
    if len(thumbs) < 3:
        return []
    steps = frame_steps(thumbs)
    limit = CUT_STEP_RATIO * max(float(np.median(steps)), STEP_NOISE_FLOOR)
    cuts, k = [], 0
    while k < len(steps):
        if steps[k] < limit:
            k += 1
            continue
        end = k
        while end + 1 < len(steps) and steps[end + 1] >= limit:
            end += 1
        if np.abs(thumbs[end + 1] - thumbs[k]).mean() >= limit:
            cuts.append(k + 1)
        k = end + 1
    return cuts
