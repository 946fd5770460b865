"""Edge-aware upsampling of a low-resolution mask with the full-size frame as guide.

The model works at a reduced size; enlarged bilinearly, its mask has soft, blocky
edges that ignore the image. The guided filter (He, Sun and Tang, "Guided Image
Filtering", 2010/2013) fits, in every window, the mask as a linear function of the
guide's colour, so the enlarged mask's edges follow the frame's. Its fast form
(He and Sun, "Fast Guided Filter", 2015) fits the coefficients at a coarse size and
enlarges only them, so the cost at the full size is one multiply-add per pixel.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .video import resize_frames


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of N x C x H x W maps over each (2r+1)^2 window, clipped at the borders."""
    k = 2 * radius + 1
    if x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad:
        return _box_mean_cv2(x, k)
    x = F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)


def _box_mean_cv2(x: torch.Tensor, k: int) -> torch.Tensor:
    """box_mean on the CPU through OpenCV's running sums: the same means to float
    rounding, some 9x faster than avg_pool2d's (22 ms against 2.5 ms for 6 maps of
    320x240 on 2 threads), which made the masks' enlargement most of the writing."""
    n, c, h, w = x.shape
    sums = [cv2.boxFilter(plane, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
            for plane in x.contiguous().numpy().reshape(n * c, h, w)]
    counts = cv2.boxFilter(np.ones((h, w), np.float32), -1, (k, k), normalize=False,
                           borderType=cv2.BORDER_CONSTANT)
    return torch.from_numpy((np.stack(sums) / counts).reshape(n, c, h, w))


def guided_coefficients(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float):
    """The colour guided filter's window-averaged coefficients (A: N x 3 x H x W,
    B: N x 1 x H x W), such that A . guide + B is the filtered source (N x 1 x H x W)."""
    n, _, h, w = guide.shape
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    rows, cols = torch.triu_indices(3, 3)  # the covariance is symmetric: 6 of its 9 entries
    upper = box_mean(guide[:, rows] * guide[:, cols], radius) - mean_i[:, rows] * mean_i[:, cols]
    sigma = guide.new_empty(n, h, w, 3, 3)
    sigma[..., rows, cols] = upper.permute(0, 2, 3, 1)
    sigma[..., cols, rows] = upper.permute(0, 2, 3, 1)
    sigma += eps * torch.eye(3, dtype=guide.dtype, device=guide.device)
    a = torch.linalg.solve(sigma, cov_ip.permute(0, 2, 3, 1)[..., None])[..., 0].permute(0, 3, 1, 2)
    b = mean_p - (a * mean_i).sum(1, keepdim=True)
    return box_mean(a, radius), box_mean(b, radius)


def guided_upsample(mask: torch.Tensor, image: torch.Tensor, coarse_size: tuple[int, int],
                    radius: int, eps: float = 1e-3) -> torch.Tensor:
    """mask (N x 1 x h x w) enlarged to image's size (image: N x 3 x H x W in [0, 1])
    with the image as guide; the filter's coefficients are fitted at coarse_size
    = (width, height) with a window of the given radius there. Result in [0, 1]."""
    size = (image.shape[-1], image.shape[-2])
    guide = resize_frames(image.float(), coarse_size)
    source = resize_frames(mask.float(), coarse_size)
    a, b = guided_coefficients(guide, source, radius, eps)
    a, b = resize_frames(a, size), resize_frames(b, size)
    return ((a * image).sum(1, keepdim=True) + b).clamp_(0, 1)
