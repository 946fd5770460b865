"""`fgbg`'s model and its loss terms.

The background is one static scene drawn by a skip net and seen through the
camera's motion (PanoramaBackground); the foreground is a skip net shared by
all frames with time-correlated codes; a space-time mask net chooses, per
pixel, which layer explains the frame. The objective: the frame rebuilt from
the composite, the exclusion loss between the layers (docs/design.md), a term
that pushes the mask to 0 or 1, and a small cost per unit of mask, so that the
mask covers what the static scene cannot explain: what moves in it. Motion
hints say which layer is the foreground early on (hint_loss).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...analysis.motion import MotionHints
from ...codes import FrameCodes
from ...nets import LAYER_CHANNELS, SkipNet
from ...ops import composite_recon_loss, exclusion_loss
from .options import FgbgOptions


@dataclass(frozen=True)
class PanoramaGeometry:
    width: int
    height: int
    grids: torch.Tensor  # T x h x w x 2: where each frame's pixels lie in the panorama (grid_sample units)


def scene_box(homographies: np.ndarray, width: int, height: int, max_extent: float = 3.0
              ) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), inclusive: the box in frame 0's pixel coordinates that every
    frame's corners fall in (homographies: T x 3 x 3, frame t -> frame 0), capped at
    `max_extent` times the frame size around frame 0 (a long pan would otherwise ask
    for an unbounded scene)."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]],
                       dtype=np.float64).T
    mapped = np.einsum("tij,jk->tik", homographies, corners)
    xy = mapped[:, :2] / mapped[:, 2:3]
    cap_x, cap_y = (max_extent - 1) / 2 * width, (max_extent - 1) / 2 * height
    return (math.floor(max(xy[:, 0].min(), -cap_x)), math.floor(max(xy[:, 1].min(), -cap_y)),
            math.ceil(min(xy[:, 0].max(), width - 1 + cap_x)), math.ceil(min(xy[:, 1].max(), height - 1 + cap_y)))


def panorama_geometry(homographies: np.ndarray, height: int, width: int,
                      max_extent: float = 3.0) -> PanoramaGeometry:
    """The scene canvas that all frames see, in frame 0's coordinates (scene_box);
    pixels beyond it sample the canvas' border."""
    x0, y0, x1, y1 = scene_box(homographies, width, height, max_extent)
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


class FgbgModel(nn.Module):
    def __init__(self, frames: torch.Tensor, hints: MotionHints, generator: torch.Generator,
                 canvas_generator: torch.Generator | None = None):
        """canvas_generator: draws the scene's fixed code (default: generator). A segment
        that continues a shot draws it as the shot's first did, so that a still camera's
        scene keeps its code and the background net, warm-started, draws it at once."""
        super().__init__()
        t, _, h, w = frames.shape
        self.background = PanoramaBackground(panorama_geometry(hints.homographies, h, w),
                                             generator=canvas_generator or generator)
        self.fg_codes = FrameCodes(t, 8, h, w, generator=generator)
        self.foreground = SkipNet(8, 3)
        self.mask_codes = FrameCodes(t, 2, h, w, generator=generator)
        self.mask_net = SkipNet(3 + 1 + 2, 1, channels=(16, 32, 64, 64), temporal=True)

    def forward(self, idx: torch.Tensor, frames: torch.Tensor, hint: torch.Tensor, perturb: bool = True):
        """(mask, foreground, background) of frames idx; frames/hint: the clip's."""
        background = self.background(idx, perturb)
        foreground = self.foreground(self.fg_codes(idx, perturb))
        return self.mask(idx, frames, hint, perturb), foreground, background

    def mask(self, idx: torch.Tensor, frames: torch.Tensor, hint: torch.Tensor, perturb: bool = True):
        """The mask of frames idx alone (the mask net does not see the layers)."""
        mask_in = torch.cat([frames[idx], hint[idx], self.mask_codes(idx, perturb)], dim=1)
        return self.mask_net(mask_in)


def hint_loss(mask: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Cross-entropy towards the hints, weighted by how sure each hint is."""
    target = (prob > 0.5).to(mask.dtype)
    weight = (2 * prob - 1).abs()
    bce = F.binary_cross_entropy(mask.clamp(1e-4, 1 - 1e-4), target, reduction="none")
    return (weight * bce).mean()


def objective_terms(opts: FgbgOptions, mask, foreground, background, frames) -> dict[str, torch.Tensor]:
    """The Double-DIP objective without the hints, by term: what 'best' is judged by."""
    return {"recon": composite_recon_loss(mask, foreground, background, frames, 1),
            "exclusion": opts.exclusion_weight * exclusion_loss(foreground, background),
            "binary": opts.binary_weight * (mask * (1 - mask)).mean(),
            "area": opts.area_weight * mask.mean()}
