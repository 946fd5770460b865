// Argument checks shared by the CPU and CUDA glue: one clear message per
// misuse, never a wrong number.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace ddip_video {

struct CompositeShape {
  int64_t n, c, hw;
  bool mask_per_pixel;  // N x 1 x H x W; otherwise one value per frame
};

inline CompositeShape check_composite_inputs(const at::Tensor& mask, const at::Tensor& y1,
                                             const at::Tensor& y2, const at::Tensor& target,
                                             int64_t p) {
  TORCH_CHECK(p == 1 || p == 2, "composite_recon_loss: p must be 1 or 2, got ", p);
  TORCH_CHECK(y1.dim() == 4, "composite_recon_loss: y1 must be N x C x H x W, got ",
              y1.sizes());
  TORCH_CHECK(y2.sizes() == y1.sizes() && target.sizes() == y1.sizes(),
              "composite_recon_loss: y1, y2 and target must have the same shape, got ",
              y1.sizes(), ", ", y2.sizes(), ", ", target.sizes());
  const int64_t n = y1.size(0), c = y1.size(1), h = y1.size(2), w = y1.size(3);
  const bool per_pixel = mask.dim() == 4 && mask.size(0) == n && mask.size(1) == 1 &&
                         mask.size(2) == h && mask.size(3) == w;
  const bool per_frame = mask.dim() == 4 && mask.size(0) == n && mask.size(1) == 1 &&
                         mask.size(2) == 1 && mask.size(3) == 1;
  TORCH_CHECK(per_pixel || per_frame, "composite_recon_loss: mask must be ", n, " x 1 x ", h,
              " x ", w, " or ", n, " x 1 x 1 x 1, got ", mask.sizes());
  for (const at::Tensor* t : {&y1, &y2, &target}) {
    TORCH_CHECK(t->scalar_type() == mask.scalar_type(),
                "composite_recon_loss: all inputs must have one dtype, got ", mask.scalar_type(),
                " and ", t->scalar_type());
    TORCH_CHECK(t->device() == mask.device(),
                "composite_recon_loss: all inputs must be on one device, got ", mask.device(),
                " and ", t->device());
  }
  TORCH_CHECK(y1.numel() > 0, "composite_recon_loss: empty input ", y1.sizes());
  return {n, c, h * w, per_pixel};
}

// Sizes of the pyramid levels 0 .. levels-1: (H_l, W_l), halved with floor.
struct PyramidShape {
  int64_t n;
  std::vector<int64_t> h, w;
  // Offsets of levels 1 .. levels-1 in a flattened pyramid buffer (per tensor),
  // in elements; offset[levels] is the total.
  std::vector<int64_t> offset;
};

inline PyramidShape check_exclusion_inputs(const at::Tensor& a, const at::Tensor& b,
                                           int64_t levels) {
  TORCH_CHECK(levels >= 1 && levels <= 16, "exclusion_loss: levels must be in 1..16, got ",
              levels);
  TORCH_CHECK(a.dim() == 4 && a.size(1) == 3, "exclusion_loss: inputs must be N x 3 x H x W, got ",
              a.sizes());
  TORCH_CHECK(b.sizes() == a.sizes(), "exclusion_loss: a and b must have the same shape, got ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "exclusion_loss: a and b must have one dtype, got ",
              a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), "exclusion_loss: a and b must be on one device, got ",
              a.device(), " and ", b.device());
  TORCH_CHECK(a.size(0) >= 1, "exclusion_loss: empty batch");
  PyramidShape s;
  s.n = a.size(0);
  int64_t h = a.size(2), w = a.size(3), off = 0;
  for (int64_t l = 0; l < levels; ++l) {
    TORCH_CHECK(h >= 2 && w >= 2, "exclusion_loss: a ", a.size(2), " x ", a.size(3),
                " input is too small for ", levels, " levels (level ", l, " would be ", h, " x ", w,
                "; each level needs at least 2 x 2)");
    s.h.push_back(h);
    s.w.push_back(w);
    s.offset.push_back(off);
    if (l > 0) off += s.n * 3 * h * w;
    h /= 2;
    w /= 2;
  }
  s.offset.push_back(off);
  return s;
}

}  // namespace ddip_video
