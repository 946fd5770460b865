// Shared torch glue for the CUDA launchers (compiled only where torch has CUDA).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>

#include "kernels.h"

namespace ddip_video {
namespace cuda {

inline DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::Float32;
    case at::kDouble: return DType::Float64;
    case at::kHalf: return DType::Float16;
    case at::kBFloat16: return DType::BFloat16;
    default: TORCH_CHECK(false, "ddip_video CUDA kernels take float32, float64, float16 or bfloat16, got ",
                         t.scalar_type());
  }
}

inline at::ScalarType accumulation_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_cuda(const at::Tensor& t, const char* op) {
  TORCH_CHECK(t.is_cuda(), op, ": expected a CUDA tensor, got one on ", t.device());
}

}  // namespace cuda
}  // namespace ddip_video
