// Torch glue for the CUDA compositing kernels: checks, stream, registration.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ddip_video/checks.h"
#include "glue.h"

namespace ddip_video {
namespace cuda {
namespace {

struct Prepared {
  at::Tensor mask, y1, y2, target;
  CompositeArgs args;
};

Prepared prepare(const at::Tensor& mask, const at::Tensor& y1, const at::Tensor& y2,
                 const at::Tensor& target, int64_t p) {
  const CompositeShape s = check_composite_inputs(mask, y1, y2, target, p);
  check_cuda(y1, "composite_recon_loss");
  Prepared r{mask.contiguous(), y1.contiguous(), y2.contiguous(), target.contiguous(), {}};
  r.args = {r.mask.data_ptr(), r.y1.data_ptr(), r.y2.data_ptr(), r.target.data_ptr(),
            s.n, s.c, s.hw, s.mask_per_pixel, int(p), dtype_of(y1)};
  return r;
}

at::Tensor composite_recon_loss_cuda(const at::Tensor& mask, const at::Tensor& y1,
                                     const at::Tensor& y2, const at::Tensor& target, int64_t p) {
  const c10::cuda::CUDAGuard guard(y1.device());
  const Prepared in = prepare(mask, y1, y2, target, p);
  at::Tensor workspace =
      at::empty({composite_workspace_size(in.args)}, y1.options().dtype(accumulation_dtype(y1)));
  at::Tensor loss = at::empty({}, y1.options());
  C10_CUDA_CHECK(composite_forward(in.args, workspace.data_ptr(), loss.data_ptr(),
                                   at::cuda::getCurrentCUDAStream()));
  return loss;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_recon_loss_backward_cuda(
    const at::Tensor& grad, const at::Tensor& mask, const at::Tensor& y1, const at::Tensor& y2,
    const at::Tensor& target, int64_t p) {
  const c10::cuda::CUDAGuard guard(y1.device());
  const Prepared in = prepare(mask, y1, y2, target, p);
  TORCH_CHECK(grad.numel() == 1, "composite_recon_loss_backward: grad must be a scalar");
  const at::Tensor g = grad.to(y1.options()).contiguous();
  at::Tensor workspace =
      at::empty({composite_workspace_size(in.args)}, y1.options().dtype(accumulation_dtype(y1)));
  at::Tensor gm = at::empty(mask.sizes(), y1.options());
  at::Tensor g1 = at::empty(y1.sizes(), y1.options()), g2 = at::empty(y1.sizes(), y1.options());
  C10_CUDA_CHECK(composite_backward(in.args, g.data_ptr(), gm.data_ptr(), g1.data_ptr(),
                                    g2.data_ptr(), workspace.data_ptr(),
                                    at::cuda::getCurrentCUDAStream()));
  return {gm, g1, g2};
}

}  // namespace

TORCH_LIBRARY_IMPL(ddip_video, CUDA, m) {
  m.impl("composite_recon_loss", &composite_recon_loss_cuda);
  m.impl("composite_recon_loss_backward", &composite_recon_loss_backward_cuda);
}

}  // namespace cuda
}  // namespace ddip_video
