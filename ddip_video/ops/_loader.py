"""Loads ddip_video._C (the C++/CUDA operators) if it was built, and decides per
call whether a kernel can take the inputs or the reference must."""
from __future__ import annotations

import importlib
import os
import warnings

import torch

try:  # importing it registers torch.ops.ddip_video
    _C = importlib.import_module("ddip_video._C")
except ImportError as error:  # the package still works, on the reference
    KERNELS_BUILT = False
    CUDA_KERNELS_BUILT = False
    LOAD_ERROR: str | None = f"{type(error).__name__}: {error}"
else:
    KERNELS_BUILT = True
    CUDA_KERNELS_BUILT = bool(_C.cuda_built)
    LOAD_ERROR = None

# DDIP_VIDEO_REFERENCE=1 sends every call to the pure-PyTorch reference.
FORCE_REFERENCE = os.environ.get("DDIP_VIDEO_REFERENCE", "0") not in ("", "0")

_CPU_DTYPES = (torch.float32, torch.float64)
_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"ddip_video: {reason}; using the pure-PyTorch reference", stacklevel=3)


def kernel_unavailable_reason(op: str, tensor: torch.Tensor) -> str | None:
    """None if `op` has a kernel for tensors like `tensor`, else why not."""
    if FORCE_REFERENCE:
        return "DDIP_VIDEO_REFERENCE is set"
    if not KERNELS_BUILT:
        return f"the C++ kernels are not built ({LOAD_ERROR})"
    if tensor.device.type == "cpu":
        supported = _CPU_DTYPES
    elif tensor.device.type == "cuda":
        if not CUDA_KERNELS_BUILT:
            return "the CUDA kernels are not built (this install has the CPU kernels only)"
        supported = _CUDA_DTYPES
    else:
        return f"{op} has no kernel for {tensor.device.type} tensors"
    if tensor.dtype not in supported:
        return f"{op} has no {tensor.device.type} kernel for {tensor.dtype}"
    return None


def use_kernel(op: str, tensor: torch.Tensor) -> bool:
    reason = kernel_unavailable_reason(op, tensor)
    if reason is None:
        return True
    if not FORCE_REFERENCE:
        _warn_once(reason)
    return False
