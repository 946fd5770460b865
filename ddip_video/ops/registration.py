"""Fake (meta) kernels and autograd for the operators declared in csrc/ops.cpp.
Imported once, only when ddip_video._C loaded."""
from __future__ import annotations

import torch

from .reference import pyramid_sizes

ops = torch.ops.ddip_video


# ---- composite_recon_loss ---------------------------------------------------

@torch.library.register_fake("ddip_video::composite_recon_loss")
def _composite_fake(mask, y1, y2, target, p):
    return y1.new_empty(())


@torch.library.register_fake("ddip_video::composite_recon_loss_backward")
def _composite_backward_fake(grad, mask, y1, y2, target, p):
    return mask.new_empty(mask.shape), y1.new_empty(y1.shape), y1.new_empty(y1.shape)


def _composite_setup(ctx, inputs, output):
    mask, y1, y2, target, p = inputs
    ctx.save_for_backward(mask, y1, y2, target)
    ctx.p = p


def _composite_backward(ctx, grad):
    mask, y1, y2, target = ctx.saved_tensors
    grad_mask, grad_y1, grad_y2 = ops.composite_recon_loss_backward(grad, mask, y1, y2, target, ctx.p)
    # d loss / d target = -(d loss / d composite) = -(grad_y1 + grad_y2)
    grad_target = -(grad_y1 + grad_y2) if ctx.needs_input_grad[3] else None
    return grad_mask, grad_y1, grad_y2, grad_target, None


torch.library.register_autograd("ddip_video::composite_recon_loss", _composite_backward,
                                setup_context=_composite_setup)


# ---- exclusion_loss -----------------------------------------------------------

def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.register_fake("ddip_video::exclusion_loss_forward")
def _exclusion_forward_fake(a, b, levels):
    n = a.shape[0]
    sizes = pyramid_sizes(a.shape[2], a.shape[3], levels)
    pyramid = sum(n * 3 * h * w for h, w in sizes[1:])
    acc = _accumulation_dtype(a.dtype)
    return (a.new_empty(()), a.new_empty((levels, 2, 3, 3), dtype=acc),
            a.new_empty((pyramid,), dtype=acc), a.new_empty((pyramid,), dtype=acc))


@torch.library.register_fake("ddip_video::exclusion_loss_backward")
def _exclusion_backward_fake(grad, a, b, means, pyramid_a, pyramid_b, levels):
    return a.new_empty(a.shape), b.new_empty(b.shape)


def _exclusion_setup(ctx, inputs, output):
    a, b, levels = inputs
    _, means, pyramid_a, pyramid_b = output
    ctx.save_for_backward(a, b, means, pyramid_a, pyramid_b)
    ctx.levels = levels
    ctx.mark_non_differentiable(means, pyramid_a, pyramid_b)


def _exclusion_backward(ctx, grad, _grad_means, _grad_pyramid_a, _grad_pyramid_b):
    a, b, means, pyramid_a, pyramid_b = ctx.saved_tensors
    grad_a, grad_b = ops.exclusion_loss_backward(grad, a, b, means, pyramid_a, pyramid_b, ctx.levels)
    return grad_a, grad_b, None


torch.library.register_autograd("ddip_video::exclusion_loss_forward", _exclusion_backward,
                                setup_context=_exclusion_setup)
