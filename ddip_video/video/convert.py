"""Frames between the decoder's uint8 arrays and the model's float tensors."""
from __future__ import annotations

import numpy as np
import torch


def frames_to_uint8(frames: torch.Tensor, chunk: int = 32) -> np.ndarray:
    """T x C x H x W float in [0, 1] -> T x H x W x C uint8, rounded; a chunk of
    frames at a time, so that the float temporaries stay small for a long clip."""
    t, c, h, w = frames.shape
    out = np.empty((t, h, w, c), np.uint8)
    for s in range(0, t, chunk):
        part = (frames[s:s + chunk].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        out[s:s + chunk] = part.permute(0, 2, 3, 1).cpu().numpy()
    return out


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """C x H x W float in [0, 1] -> H x W x C uint8 (C = 1 becomes 3 gray channels)."""
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return frames_to_uint8(image[None])[0]


def frame_to_tensor(frame: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8, as iter_frames yields it -> 3 x H x W float in [0, 1]."""
    return torch.from_numpy(frame).permute(2, 0, 1).float() / 255
