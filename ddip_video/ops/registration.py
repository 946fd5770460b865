"""Fake (meta) kernels and autograd for the operators declared in csrc/ops.cpp.
Imported once, only when ddip_video._C loaded. The fake kernels check their
inputs as the C++ does (csrc/include/ddip_video/checks.h), so that
torch.compile and opcheck fail where the kernel would, with its message."""
from __future__ import annotations

import torch

from .reference import pyramid_sizes

ops = torch.ops.ddip_video


# ---- composite_recon_loss ---------------------------------------------------

def _check_composite(mask, y1, y2, target, p) -> None:
    torch._check(p in (1, 2), lambda: f"composite_recon_loss: p must be 1 or 2, got {p}")
    torch._check(y1.dim() == 4, lambda: f"composite_recon_loss: y1 must be N x C x H x W, got {list(y1.shape)}")
    torch._check(y2.shape == y1.shape and target.shape == y1.shape, lambda: (
        "composite_recon_loss: y1, y2 and target must have the same shape, got "
        f"{list(y1.shape)}, {list(y2.shape)}, {list(target.shape)}"))
    n, _, h, w = y1.shape
    torch._check(mask.dim() == 4 and mask.shape[0] == n and mask.shape[1] == 1
                 and tuple(mask.shape[2:]) in ((h, w), (1, 1)),
                 lambda: f"composite_recon_loss: mask must be {n} x 1 x {h} x {w} or {n} x 1 x 1 x 1, "
                         f"got {list(mask.shape)}")
    for t in (y1, y2, target):
        torch._check(t.dtype == mask.dtype, lambda: "composite_recon_loss: all inputs must have one dtype, "
                                                    f"got {mask.dtype} and {t.dtype}")
        torch._check(t.device == mask.device, lambda: "composite_recon_loss: all inputs must be on one device, "
                                                      f"got {mask.device} and {t.device}")
    torch._check(y1.numel() > 0, lambda: f"composite_recon_loss: empty input {list(y1.shape)}")


@torch.library.register_fake("ddip_video::composite_recon_loss")
def _composite_fake(mask, y1, y2, target, p):
    _check_composite(mask, y1, y2, target, p)
    return y1.new_empty(())


@torch.library.register_fake("ddip_video::composite_recon_loss_backward")
def _composite_backward_fake(grad, mask, y1, y2, target, p):
    _check_composite(mask, y1, y2, target, p)
    torch._check(grad.numel() == 1, lambda: "composite_recon_loss_backward: grad must be a scalar")
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


def _check_exclusion(a, b, levels) -> list[tuple[int, int]]:
    """The pyramid's level sizes, once the inputs pass the C++'s checks."""
    torch._check(1 <= levels <= 16, lambda: f"exclusion_loss: levels must be in 1..16, got {levels}")
    torch._check(a.dim() == 4 and a.shape[1] == 3,
                 lambda: f"exclusion_loss: inputs must be N x 3 x H x W, got {list(a.shape)}")
    torch._check(b.shape == a.shape,
                 lambda: f"exclusion_loss: a and b must have the same shape, got {list(a.shape)} and {list(b.shape)}")
    torch._check(a.dtype == b.dtype, lambda: f"exclusion_loss: a and b must have one dtype, got {a.dtype} and {b.dtype}")
    torch._check(a.device == b.device,
                 lambda: f"exclusion_loss: a and b must be on one device, got {a.device} and {b.device}")
    torch._check(a.shape[0] >= 1, lambda: "exclusion_loss: empty batch")
    try:
        return pyramid_sizes(a.shape[2], a.shape[3], levels)
    except ValueError as error:  # the same words as the kernel's RuntimeError
        raise RuntimeError(str(error)) from None


@torch.library.register_fake("ddip_video::exclusion_loss_forward")
def _exclusion_forward_fake(a, b, levels):
    n = a.shape[0]
    sizes = _check_exclusion(a, b, levels)
    pyramid = sum(n * 3 * h * w for h, w in sizes[1:])
    acc = _accumulation_dtype(a.dtype)
    return (a.new_empty(()), a.new_empty((levels, 2, 3, 3), dtype=acc),
            a.new_empty((pyramid,), dtype=acc), a.new_empty((pyramid,), dtype=acc))


@torch.library.register_fake("ddip_video::exclusion_loss_backward")
def _exclusion_backward_fake(grad, a, b, means, pyramid_a, pyramid_b, levels):
    sizes = _check_exclusion(a, b, levels)
    torch._check(grad.numel() == 1, lambda: "exclusion_loss_backward: grad must be a scalar")
    pyramid = sum(a.shape[0] * 3 * h * w for h, w in sizes[1:])
    torch._check(means.numel() == levels * 18 and pyramid_a.numel() == pyramid and pyramid_b.numel() == pyramid,
                 lambda: "exclusion_loss_backward: means/pyramids do not match the inputs")
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
