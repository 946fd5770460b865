"""Pure-PyTorch references of the fused operators: the ground truth for tests
and the fallback wherever no kernel is built. Written for clarity, not speed."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def composite_recon_loss_reference(mask: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor,
                                   target: torch.Tensor, p: int = 1) -> torch.Tensor:
    """mean(|mask * y1 + (1 - mask) * y2 - target| ** p) for p in {1, 2}."""
    if p not in (1, 2):
        raise ValueError(f"composite_recon_loss: p must be 1 or 2, got {p}")
    residual = mask * y1 + (1 - mask) * y2 - target
    return residual.abs().mean() if p == 1 else residual.square().mean()


def pyramid_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """(H_l, W_l) of each level, halved with floor as avg_pool2d does; raises
    ValueError when a level would be smaller than 2 x 2 (no differences left)."""
    if not 1 <= levels <= 16:
        raise ValueError(f"exclusion_loss: levels must be in 1..16, got {levels}")
    sizes, h, w = [], height, width
    for level in range(levels):
        if h < 2 or w < 2:
            raise ValueError(
                f"exclusion_loss: a {height} x {width} input is too small for {levels} levels "
                f"(level {level} would be {h} x {w}; each level needs at least 2 x 2)")
        sizes.append((h, w))
        h, w = h // 2, w // 2
    return sizes


def _squash(g: torch.Tensor) -> torch.Tensor:
    return 2 * torch.sigmoid(g) - 1


def exclusion_means_reference(a: torch.Tensor, b: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """means[l, d, i, j] = mean(s(grad_d a_j)^2 * s(grad_d b_i)^2) at pyramid level l,
    d = 0 for differences along the width, 1 along the height."""
    if a.dim() != 4 or a.shape[1] != 3 or a.shape != b.shape:
        raise ValueError(f"exclusion_loss: inputs must be two N x 3 x H x W tensors, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    pyramid_sizes(a.shape[2], a.shape[3], levels)
    per_level = []
    for level in range(levels):
        if level:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        directions = []
        for grad in (lambda x: x[..., :, 1:] - x[..., :, :-1], lambda x: x[..., 1:, :] - x[..., :-1, :]):
            sa, sb = _squash(grad(a)).square(), _squash(grad(b)).square()
            pairs = [[(sa[:, j] * sb[:, i]).mean() for j in range(3)] for i in range(3)]
            directions.append(torch.stack([torch.stack(row) for row in pairs]))
        per_level.append(torch.stack(directions))
    return torch.stack(per_level)


def exclusion_loss_reference(a: torch.Tensor, b: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Double-DIP's exclusion loss: the mean over levels, channel pairs and both
    directions of means ** 0.25 (definition in docs/design.md)."""
    return exclusion_means_reference(a, b, levels).pow(0.25).sum() / (9 * levels) / 2
