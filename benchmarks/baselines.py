"""The reference methods the tasks are measured against: a plain motion
segmentation (residual flow cut at Otsu's threshold), what a sharp background
plate's difference alone separates, OpenCV's MOG2 and KNN background
subtractors; and the motion hints themselves, as one of them."""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ddip_video.analysis.motion import (MotionHints, change_to_background, clean_mask, gray_frames, keep_components,
                                        motion_hints, motion_ratios, soft_mask, track_camera)

Method = Callable[[np.ndarray], np.ndarray]  # T x h x w x 3 uint8 RGB -> T x h x w bool


def plain_motion_hints(frames: np.ndarray) -> MotionHints:
    """A plain motion segmentation, a baseline for scale: the camera's motion removed
    (the same flow and homographies as motion_hints), each frame's residual flow cut at its
    Otsu threshold (on the residual over its median, the same cut: Otsu does not mind a
    frame's scale), the largest components kept. No change, colour or graph cut.

    benchmarks/eval_davis.py --plain-hints runs fgbg on it, to see what the Double-DIP
    refinement adds to weak hints."""
    count, h, w = frames.shape[:3]
    if count == 1:
        return motion_hints(frames)
    pairs, homographies, static = track_camera(gray_frames(frames))
    ratio = motion_ratios(pairs, (h, w))
    del pairs
    log_odds = np.empty_like(ratio)
    mask = np.empty(ratio.shape, bool)
    for t, frame_ratio in enumerate(ratio):
        threshold = otsu(frame_ratio)
        mask[t] = keep_components(frame_ratio >= threshold, static)
        # even odds at the threshold: the logistic of this is 1 / (1 + (threshold / ratio)^2)
        log_odds[t] = 2 * (np.log(np.maximum(frame_ratio, 1e-6)) - np.log(threshold))
    return MotionHints(soft_mask(log_odds, mask), mask, homographies, static)


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold of a map of non-negative values (on a 256-level scale up to its 99.9th percentile)."""
    top = float(np.percentile(values, 99.9))
    if top <= 0:
        return np.inf
    levels = np.clip(values / top * 255, 0, 255).astype(np.uint8)
    level, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return (level + 1) / 255 * top  # cv2 keeps levels above `level`


def hints_method(frames: np.ndarray) -> np.ndarray:
    return motion_hints(frames).fg_mask


def plain_method(frames: np.ndarray) -> np.ndarray:
    return plain_motion_hints(frames).fg_mask


def scene_method(frames: np.ndarray) -> np.ndarray:
    """What a sharp background plate alone says: each frame's colour distance to the
    median of its neighbours warped by the camera's motion (a still camera: of frames
    spread over the clip; the hints' change cue, at full working resolution), blurred by
    2 px, cut at the frame's Otsu threshold, the largest components kept. The
    reconstruction error a perfect background layer would give the Double-DIP objective:
    how far that evidence goes without the hints."""
    _, homographies, static = track_camera(gray_frames(frames))
    distances = np.nan_to_num(change_to_background(frames, homographies, static))
    masks = []
    for distance in distances:
        distance = cv2.GaussianBlur(distance, (0, 0), 2)
        masks.append(keep_components(clean_mask(distance >= otsu(distance)), static))
    return np.stack(masks)


def _subtractor_method(make: Callable[[], cv2.BackgroundSubtractor]) -> Method:
    def run(frames: np.ndarray) -> np.ndarray:
        subtractor = make()
        bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        # A first pass learns the background from the whole clip, as the hints see the
        # whole clip too (CDnet gives subtractors a training stretch for the same reason).
        for frame in bgr:
            subtractor.apply(frame)
        # 255 is foreground; 127 marks shadows, which are not foreground.
        return np.stack([subtractor.apply(frame) == 255 for frame in bgr])

    return run


METHODS: dict[str, Method] = {
    "hints": hints_method,
    "plain": plain_method,
    "scene": scene_method,
    "MOG2": _subtractor_method(cv2.createBackgroundSubtractorMOG2),
    "KNN": _subtractor_method(cv2.createBackgroundSubtractorKNN),
}
