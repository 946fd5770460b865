"""Pieces of the temporally coupled Double-DIP shared by every task: per-frame
input codes correlated in time, a background that is one scene seen through
the camera's motion, frame windows, and the bookkeeping of the optimisation
(best state, early stop)."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .nets import LAYER_CHANNELS, SkipNet


class FrameCodes(nn.Module):
    """Fixed noise inputs, one per frame, correlated in time: a stationary
    Gaussian AR(1) sequence, so neighbouring frames get near codes and the shared
    net can vary per frame without flicker. `perturb` adds the small per-step
    noise (reg_noise_std) that keeps the nets from fitting noise."""

    def __init__(self, num_frames: int, channels: int, height: int, width: int,
                 correlation: float = 0.95, scale: float = 0.1, reg_noise_std: float = 1.0 / 30,
                 generator: torch.Generator | None = None):
        super().__init__()
        codes = torch.empty(num_frames, channels, height, width)
        codes[0] = torch.randn(channels, height, width, generator=generator)
        innovation = math.sqrt(1.0 - correlation ** 2)
        for t in range(1, num_frames):
            codes[t] = correlation * codes[t - 1] + innovation * torch.randn(
                channels, height, width, generator=generator)
        # Fixed inputs, drawn from the seed, are buffers outside the state dict
        # (persistent=False): BestState keeps no copy of them, which would double
        # the largest thing a long clip holds.
        self.register_buffer("codes", codes * scale, persistent=False)
        self.reg_noise_std = reg_noise_std

    def forward(self, frames: torch.Tensor, perturb: bool = True) -> torch.Tensor:
        z = self.codes[frames]
        if perturb and self.reg_noise_std > 0:
            z = z + self.reg_noise_std * torch.randn_like(z)
        return z


@dataclass(frozen=True)
class PanoramaGeometry:
    width: int
    height: int
    grids: torch.Tensor  # T x h x w x 2: where each frame's pixels lie in the panorama (grid_sample units)


def panorama_geometry(homographies: np.ndarray, height: int, width: int,
                      max_extent: float = 3.0) -> PanoramaGeometry:
    """The scene canvas that all frames see, in frame 0's coordinates.

    homographies: T x 3 x 3, pixel coordinates of frame t -> frame 0. The canvas
    is the bounding box of every frame's corners, capped at `max_extent` times
    the frame size around frame 0 (pixels beyond sample the canvas' border)."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]],
                       dtype=np.float64).T
    mapped = np.einsum("tij,jk->tik", homographies, corners)
    xy = mapped[:, :2] / mapped[:, 2:3]
    cap_x, cap_y = (max_extent - 1) / 2 * width, (max_extent - 1) / 2 * height
    x0 = math.floor(max(xy[:, 0].min(), -cap_x))
    y0 = math.floor(max(xy[:, 1].min(), -cap_y))
    x1 = math.ceil(min(xy[:, 0].max(), width - 1 + cap_x))
    y1 = math.ceil(min(xy[:, 1].max(), height - 1 + cap_y))
    pw, ph = x1 - x0 + 1, y1 - y0 + 1
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    grids = np.empty((len(homographies), height, width, 2), dtype=np.float32)
    for t, hom in enumerate(homographies):
        p = hom @ pixels
        u, v = p[0] / p[2] - x0, p[1] / p[2] - y0
        # pixel centres -> grid_sample's [-1, 1] with align_corners=False
        grids[t, ..., 0] = ((2 * u + 1) / pw - 1).reshape(height, width)
        grids[t, ..., 1] = ((2 * v + 1) / ph - 1).reshape(height, width)
    return PanoramaGeometry(pw, ph, torch.from_numpy(grids))


class PanoramaBackground(nn.Module):
    """A background that is one static scene: a skip net draws the whole
    canvas from one fixed code, and each frame sees it through the camera's
    motion. Every frame's code is thus the same scene-aligned noise, and the
    layer cannot follow objects that move against the scene."""

    def __init__(self, geometry: PanoramaGeometry, code_channels: int = 8,
                 channels=LAYER_CHANNELS, reg_noise_std: float = 1.0 / 30,
                 generator: torch.Generator | None = None):
        super().__init__()
        code = 0.1 * torch.randn(1, code_channels, geometry.height, geometry.width, generator=generator)
        self.register_buffer("code", code, persistent=False)  # fixed, like FrameCodes.codes
        self.register_buffer("grids", geometry.grids, persistent=False)
        self.net = SkipNet(code_channels, 3, channels)
        self.reg_noise_std = reg_noise_std

    def canvas(self, perturb: bool = True) -> torch.Tensor:
        z = self.code
        if perturb and self.reg_noise_std > 0:
            z = z + self.reg_noise_std * torch.randn_like(z)
        return self.net(z)

    def forward(self, frames: torch.Tensor, perturb: bool = True, canvas: torch.Tensor | None = None
                ) -> torch.Tensor:
        canvas = self.canvas(perturb) if canvas is None else canvas
        grids = self.grids[frames]
        return F.grid_sample(canvas.expand(len(frames), -1, -1, -1), grids, mode="bilinear",
                             padding_mode="border", align_corners=False)


def frame_windows(num_frames: int, window: int, overlap: int = 0) -> list[torch.Tensor]:
    """Consecutive frame windows covering the clip (the last one ends at the
    last frame), each of length min(window, num_frames)."""
    window = min(window, num_frames)
    step = max(1, window - overlap)
    starts = list(range(0, num_frames - window + 1, step))
    if starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return [torch.arange(s, s + window) for s in starts]


class BestState:
    """Keeps a copy of the modules' state at the lowest score seen, and says
    when the score has not improved for `patience` checks. The state is the
    state dict: the weights, not the fixed inputs (non-persistent buffers)."""

    def __init__(self, module: nn.Module, patience: int, min_delta: float = 1e-4):
        self.module, self.patience, self.min_delta = module, patience, min_delta
        self.best_score = math.inf
        self.best_step = -1
        self.state = None
        self.stale = 0

    def update(self, score: float, step: int) -> bool:
        """Records a check; returns True when the optimisation should stop."""
        improved = math.isfinite(score) and (
            self.state is None or score < self.best_score - self.min_delta * abs(self.best_score))
        if improved:
            self.best_score, self.best_step, self.stale = score, step, 0
            self.state = copy.deepcopy(self.module.state_dict())
        else:
            self.stale += 1
        return self.stale >= self.patience

    def restore(self) -> None:
        if self.state is not None:
            self.module.load_state_dict(self.state)
