"""The losses as the model calls them: the fused operator where a kernel takes
the inputs, the pure-PyTorch reference otherwise (with a one-time warning)."""
from __future__ import annotations

import torch

from ._loader import use_kernel
from .reference import composite_recon_loss_reference, exclusion_loss_reference


def _common_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def composite_recon_loss(mask: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor,
                         target: torch.Tensor, p: int = 1) -> torch.Tensor:
    """mean(|mask * y1 + (1 - mask) * y2 - target| ** p), p in {1, 2}.

    y1, y2, target: N x C x H x W. mask: anything that broadcasts to N x 1 x H x W
    (per pixel, per frame, or shared); a per-channel mask goes to the reference.
    """
    if p not in (1, 2):
        raise ValueError(f"composite_recon_loss: p must be 1 or 2, got {p}")
    if y1.dim() != 4 or y1.shape != y2.shape or y1.shape != target.shape:
        raise ValueError(f"composite_recon_loss: y1, y2 and target must be N x C x H x W of one "
                         f"shape, got {tuple(y1.shape)}, {tuple(y2.shape)}, {tuple(target.shape)}")
    n, _, h, w = y1.shape
    dtype = _common_dtype(mask, y1, y2, target)
    mask, y1, y2, target = (t.to(dtype) for t in (mask, y1, y2, target))
    if mask.dim() == 4 and mask.shape[1] == 1 and use_kernel("composite_recon_loss", y1):
        if tuple(mask.shape) not in ((n, 1, h, w), (n, 1, 1, 1)):
            mask = mask.expand(n, 1, h, w)  # raises if it does not broadcast
        return torch.ops.ddip_video.composite_recon_loss(mask, y1, y2, target, p)
    return composite_recon_loss_reference(mask, y1, y2, target, p)


def exclusion_loss(a: torch.Tensor, b: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Double-DIP's exclusion loss between two N x 3 x H x W layers (docs/design.md)."""
    dtype = _common_dtype(a, b)
    a, b = a.to(dtype), b.to(dtype)
    if use_kernel("exclusion_loss", a):
        return torch.ops.ddip_video.exclusion_loss(a, b, levels)
    return exclusion_loss_reference(a, b, levels)
