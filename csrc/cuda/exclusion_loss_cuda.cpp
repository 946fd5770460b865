// Torch glue for the CUDA exclusion-loss kernels: checks, stream, registration.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ddip_video/checks.h"
#include "glue.h"

namespace ddip_video {
namespace cuda {
namespace {

ExclusionArgs make_args(const at::Tensor& a, const at::Tensor& b, int64_t levels) {
  return {a.data_ptr(), b.data_ptr(), a.size(0), a.size(2), a.size(3), int(levels), dtype_of(a)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> exclusion_loss_forward_cuda(
    const at::Tensor& a_in, const at::Tensor& b_in, int64_t levels) {
  check_exclusion_inputs(a_in, b_in, levels);
  check_cuda(a_in, "exclusion_loss");
  const c10::cuda::CUDAGuard guard(a_in.device());
  const at::Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const ExclusionArgs args = make_args(a, b, levels);
  const auto acc = a.options().dtype(accumulation_dtype(a));
  at::Tensor loss = at::empty({}, a.options());
  at::Tensor means = at::empty({levels, 2, 3, 3}, acc);
  at::Tensor pa = at::empty({exclusion_pyramid_size(args)}, acc);
  at::Tensor pb = at::empty({exclusion_pyramid_size(args)}, acc);
  at::Tensor workspace = at::empty({exclusion_forward_workspace_size(args)}, acc);
  C10_CUDA_CHECK(exclusion_forward(args, loss.data_ptr(), means.data_ptr(), pa.data_ptr(),
                                   pb.data_ptr(), workspace.data_ptr(),
                                   at::cuda::getCurrentCUDAStream()));
  return {loss, means, pa, pb};
}

std::tuple<at::Tensor, at::Tensor> exclusion_loss_backward_cuda(
    const at::Tensor& grad, const at::Tensor& a_in, const at::Tensor& b_in, const at::Tensor& means,
    const at::Tensor& pyramid_a, const at::Tensor& pyramid_b, int64_t levels) {
  check_exclusion_inputs(a_in, b_in, levels);
  check_cuda(a_in, "exclusion_loss_backward");
  TORCH_CHECK(grad.numel() == 1, "exclusion_loss_backward: grad must be a scalar");
  const c10::cuda::CUDAGuard guard(a_in.device());
  const at::Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const ExclusionArgs args = make_args(a, b, levels);
  const auto acc = a.options().dtype(accumulation_dtype(a));
  TORCH_CHECK(means.numel() == 18 * levels && pyramid_a.numel() == exclusion_pyramid_size(args) &&
                  pyramid_b.numel() == pyramid_a.numel(),
              "exclusion_loss_backward: means/pyramids do not match the inputs");
  const at::Tensor m = means.to(acc).contiguous();
  const at::Tensor pa = pyramid_a.to(acc).contiguous(), pb = pyramid_b.to(acc).contiguous();
  const at::Tensor g = grad.to(a.options()).contiguous();
  at::Tensor ga = at::empty(a.sizes(), a.options()), gb = at::empty(a.sizes(), a.options());
  at::Tensor workspace = at::empty({exclusion_backward_workspace_size(args)}, acc);
  C10_CUDA_CHECK(exclusion_backward(args, g.data_ptr(), m.data_ptr(), pa.data_ptr(), pb.data_ptr(),
                                    ga.data_ptr(), gb.data_ptr(), workspace.data_ptr(),
                                    at::cuda::getCurrentCUDAStream()));
  return {ga, gb};
}

}  // namespace

TORCH_LIBRARY_IMPL(ddip_video, CUDA, m) {
  m.impl("exclusion_loss_forward", &exclusion_loss_forward_cuda);
  m.impl("exclusion_loss_backward", &exclusion_loss_backward_cuda);
}

}  // namespace cuda
}  // namespace ddip_video
