"""Dense optical flow helpers shared by the motion hints and the depth model: the pixel
grid, reading a flow field where another one leads, the forward-backward check, and
flows chained across several frames."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def pixel_grid(h: int, w: int) -> np.ndarray:
    """h x w x 2 float32: each pixel's (x, y)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


def lands_inside(flow: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """h x w bool: where following the flow from the grid's pixels stays in the frame."""
    h, w = flow.shape[:2]
    target = grid + flow
    return (target[..., 0] >= 0) & (target[..., 0] <= w - 1) & (target[..., 1] >= 0) & (target[..., 1] <= h - 1)


def sample(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """image read at coords (h x w x 2, bilinear); NaN in every channel outside it."""
    return cv2.remap(image, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=(np.nan,) * 4)


def fb_error(flow: np.ndarray, flow_back: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """How far a pixel lands from where it started after following flow and then
    flow_back; NaN where the flow leaves the frame."""
    return np.linalg.norm(flow + sample(flow_back, grid + flow), axis=-1)


def chained_flows(steps: Sequence[np.ndarray], spans: Sequence[int], grid: np.ndarray) -> dict[int, np.ndarray]:
    """The flow across `span` frames for each span, chained from the neighbouring frames'
    flows `steps` (each read where the previous ones led; NaN once a pixel leaves the
    frame); spans longer than the steps are left out."""
    chained, total = {}, None
    for n, step in enumerate(steps[: max(spans)], start=1):
        total = step.copy() if total is None else total + sample(step, grid + total)
        if n in spans:
            chained[n] = total.copy()
    return chained
