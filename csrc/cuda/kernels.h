// Host launchers of the CUDA kernels: CUDA toolkit types only (raw pointers,
// sizes, a stream), so this header and the .cu files compile with nvcc alone;
// the torch glue in *_cuda.cpp calls them.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ddip_video {
namespace cuda {

enum class DType { Float32, Float64, Float16, BFloat16 };

// Float64 accumulates in double, every other dtype in float.
inline bool accumulates_in_double(DType t) { return t == DType::Float64; }

// ---- composite_recon_loss -------------------------------------------------

struct CompositeArgs {
  const void* mask;  // n x 1 x H x W (per pixel) or n x 1 x 1 x 1, contiguous
  const void* y1;    // n x c x H x W, contiguous
  const void* y2;
  const void* target;
  int64_t n, c, hw;
  bool mask_per_pixel;
  int p;  // 1 or 2
  DType dtype;
};

// Elements (of the accumulation dtype) the workspace must hold.
int64_t composite_workspace_size(const CompositeArgs& args);

// loss (one element of args.dtype) = mean(|mask*y1 + (1-mask)*y2 - target|^p).
cudaError_t composite_forward(const CompositeArgs& args, void* workspace, void* loss,
                              cudaStream_t stream);

// grad: one element of args.dtype on the device (d total / d loss).
cudaError_t composite_backward(const CompositeArgs& args, const void* grad, void* grad_mask,
                               void* grad_y1, void* grad_y2, void* workspace,
                               cudaStream_t stream);

// ---- exclusion_loss -------------------------------------------------------

struct ExclusionArgs {
  const void* a;  // n x 3 x H x W, contiguous
  const void* b;
  int64_t n, h, w;
  int levels;
  DType dtype;
};

// Elements (of the accumulation dtype) of each pooled pyramid (levels 1..L-1)
// and of the workspaces of the forward and the backward.
int64_t exclusion_pyramid_size(const ExclusionArgs& args);
int64_t exclusion_forward_workspace_size(const ExclusionArgs& args);
int64_t exclusion_backward_workspace_size(const ExclusionArgs& args);

// Writes loss (one element of args.dtype), means (levels x 2 x 3 x 3, accumulation
// dtype) and the pooled pyramids of a and b (accumulation dtype).
cudaError_t exclusion_forward(const ExclusionArgs& args, void* loss, void* means,
                              void* pyramid_a, void* pyramid_b, void* workspace,
                              cudaStream_t stream);

// grad: one element of args.dtype on the device. grad_a, grad_b: args.dtype,
// n x 3 x H x W. The workspace holds the gradients of the coarser levels.
cudaError_t exclusion_backward(const ExclusionArgs& args, const void* grad, const void* means,
                               const void* pyramid_a, const void* pyramid_b, void* grad_a,
                               void* grad_b, void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace ddip_video
