"""The fused operators' Python face: the losses the model calls, their
pure-PyTorch references, and what was built."""
from ._loader import CUDA_KERNELS_BUILT, KERNELS_BUILT, LOAD_ERROR, kernel_unavailable_reason
from .functional import composite_recon_loss, exclusion_loss
from .reference import (composite_recon_loss_reference, exclusion_loss_reference,
                        exclusion_means_reference, pyramid_sizes)

if KERNELS_BUILT:
    from . import registration  # noqa: F401  (fake kernels and autograd)

__all__ = [
    "CUDA_KERNELS_BUILT", "KERNELS_BUILT", "LOAD_ERROR", "kernel_unavailable_reason",
    "composite_recon_loss", "exclusion_loss", "composite_recon_loss_reference",
    "exclusion_loss_reference", "exclusion_means_reference", "pyramid_sizes",
]
