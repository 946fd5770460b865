// Every operator schema of the ddip_video library, declared once.
// Kernels register per backend (cpu/, cuda/); fake kernels and autograd are
// registered from Python (ddip_video/ops/registration.py).
#include <torch/library.h>

#include <ATen/ATen.h>

namespace ddip_video {

// The public exclusion loss is a thin composite over its forward operator,
// which also returns what the fused backward needs (the per-level means and
// the pooled pyramid), so the backward reads each input once.
static at::Tensor exclusion_loss(const at::Tensor& a, const at::Tensor& b,
                                 int64_t levels) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("ddip_video::exclusion_loss_forward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, int64_t)>();
  return std::get<0>(op.call(a, b, levels));
}

}  // namespace ddip_video

TORCH_LIBRARY(ddip_video, m) {
  // out = mask * y1 + (1 - mask) * y2; returns mean(|out - target|^p), p in {1, 2}.
  // mask: N x 1 x H x W or N x 1 x 1 x 1; y1, y2, target: N x C x H x W.
  m.def("composite_recon_loss(Tensor mask, Tensor y1, Tensor y2, Tensor target, int p) -> Tensor");
  // Gradients of mask, y1 and y2 in one pass; grad is the loss' 0-dim gradient.
  m.def("composite_recon_loss_backward(Tensor grad, Tensor mask, Tensor y1, Tensor y2, "
        "Tensor target, int p) -> (Tensor, Tensor, Tensor)");

  // Exclusion loss between the gradients of two N x 3 x H x W layers over
  // `levels` 2x2-pooled scales (definition in docs/design.md).
  m.def("exclusion_loss(Tensor a, Tensor b, int levels=3) -> Tensor");
  // Returns (loss, means [levels, 2, 3, 3], pyramid_a, pyramid_b): means[l, d, i, j]
  // is mean(s(grad_d a_j)^2 * s(grad_d b_i)^2) at level l (d = 0: x, 1: y);
  // the pyramids hold the pooled levels 1 .. levels-1, flattened, in the
  // accumulation dtype.
  m.def("exclusion_loss_forward(Tensor a, Tensor b, int levels) -> "
        "(Tensor, Tensor, Tensor, Tensor)");
  m.def("exclusion_loss_backward(Tensor grad, Tensor a, Tensor b, Tensor means, "
        "Tensor pyramid_a, Tensor pyramid_b, int levels) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(ddip_video, CompositeImplicitAutograd, m) {
  m.impl("exclusion_loss", &ddip_video::exclusion_loss);
}
