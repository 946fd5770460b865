"""`--pick`: one object of several that move. By default every object that moves
against the scene is the foreground; with --pick X,Y only the one under that point
of the first frame that shows a foreground (or with --pick largest, the largest
there), followed from frame to frame: in each frame, the parts of the mask that
overlap the object's place in the frame before, carried by the camera's motion and
grown by how far an object moves in a frame."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ...errors import InputError

REACH = 0.04  # of the frame's longer side: how far the object may move in a frame


def check_pick(pick, size: tuple[int, int]) -> None:
    """Refuses a point outside frames of size = (W, H), before the work."""
    if isinstance(pick, tuple) and not (0 <= pick[0] < size[0] and 0 <= pick[1] < size[1]):
        raise InputError(f"--pick: the point {pick[0]:g},{pick[1]:g} is outside the frame ({size[0]}x{size[1]})")


def pick_object(masks: torch.Tensor, to_first: np.ndarray, pick, size: tuple[int, int],
                cuts: list[int] = ()) -> torch.Tensor:
    """masks (T x 1 x h x w, working size, [0, 1]) keeping only the picked object.
    to_first: T x 3 x 3, each frame's pixels to its shot's first frame (working size);
    pick: "largest" or (x, y) in pixels of frames of `size` = (W, H); cuts: frames
    that start a new shot (the object's place is carried across them as it is)."""
    if pick is None:
        return masks
    check_pick(pick, size)
    t_count, _, h, w = masks.shape
    if isinstance(pick, tuple):
        x, y = pick
        point = ((x + 0.5) * w / size[0] - 0.5, (y + 0.5) * h / size[1] - 0.5)
    binary = (masks[:, 0] > 0.5).numpy()
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _reach(w, h) + 1,) * 2)
    keep = np.zeros_like(binary)
    previous = None  # the object's place in the frame before
    for t in range(t_count):
        count, labels = cv2.connectedComponents(binary[t].astype(np.uint8), connectivity=8)
        if count <= 1:
            continue
        if previous is None:
            chosen = _first_choice(labels, count, pick, point if isinstance(pick, tuple) else None,
                                   to_first[t])
        else:
            between = np.eye(3) if t in cuts else np.linalg.solve(to_first[t], to_first[t - 1])
            carried = cv2.warpPerspective(previous.astype(np.uint8), between, (w, h), flags=cv2.INTER_NEAREST)
            near = cv2.dilate(carried, grow) > 0
            chosen = np.unique(labels[near & (labels > 0)])
        selected = np.isin(labels, chosen) & (labels > 0)
        if selected.any():
            keep[t] = selected
            previous = selected
    near_kept = np.stack([cv2.dilate(k.astype(np.uint8), _disk(2)) > 0 for k in keep])  # the soft edge
    return masks * torch.from_numpy(near_kept)[:, None].to(masks.dtype)


def _first_choice(labels: np.ndarray, count: int, pick, point, to_first: np.ndarray) -> np.ndarray:
    """The component picked in the first frame with a foreground: the largest, or the
    one under (nearest to) the point, the point carried from the first frame to this one."""
    areas = np.bincount(labels.ravel(), minlength=count)[1:]
    if pick == "largest":
        return np.array([1 + int(areas.argmax())])
    px, py, pz = np.linalg.solve(to_first, np.array([point[0], point[1], 1.0]))
    x, y = px / pz, py / pz
    ys, xs = np.nonzero(labels)
    nearest = np.argmin((xs - x) ** 2 + (ys - y) ** 2)
    return np.array([labels[ys[nearest], xs[nearest]]])


def _reach(w: int, h: int) -> int:
    return max(2, round(REACH * max(w, h)))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
