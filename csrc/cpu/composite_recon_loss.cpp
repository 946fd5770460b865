// Compositing with reconstruction loss on the CPU: one pass for the loss, one
// pass for all three gradients. Work is split into fixed chunks whose partial
// sums are added in order, so results do not depend on the thread count.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "ddip_video/checks.h"
#include "ddip_video/math.h"

namespace ddip_video {
namespace {

constexpr int64_t kChunk = 4096;  // pixels per work item

struct Chunking {
  int64_t per_frame, total;
  Chunking(int64_t n, int64_t hw) : per_frame((hw + kChunk - 1) / kChunk), total(n * per_frame) {}
};

// Calls f with p and the mask kind as compile-time constants, so the inner
// loops carry no branches and vectorise.
template <typename F>
void with_static_args(int64_t p, bool per_pixel, F&& f) {
  if (p == 1)
    per_pixel ? f(std::integral_constant<int, 1>{}, std::true_type{})
              : f(std::integral_constant<int, 1>{}, std::false_type{});
  else
    per_pixel ? f(std::integral_constant<int, 2>{}, std::true_type{})
              : f(std::integral_constant<int, 2>{}, std::false_type{});
}

template <typename scalar_t, int P, bool PerPixel>
double forward_chunk(const scalar_t* m, const scalar_t* y1, const scalar_t* y2,
                     const scalar_t* t, const CompositeShape& s, int64_t n, int64_t begin,
                     int64_t end) {
  double sum = 0;
  const scalar_t* mn = PerPixel ? m + n * s.hw : m + n;
  for (int64_t c = 0; c < s.c; ++c) {
    const int64_t plane = (n * s.c + c) * s.hw;
    scalar_t acc = 0;  // per plane and chunk
#pragma omp simd reduction(+ : acc)
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t mi = PerPixel ? mn[i] : mn[0];
      const scalar_t a = y1[plane + i], b = y2[plane + i];
      acc += recon_term<scalar_t>(b + mi * (a - b) - t[plane + i], P);
    }
    sum += acc;
  }
  return sum;
}

at::Tensor composite_recon_loss_cpu(const at::Tensor& mask, const at::Tensor& y1,
                                    const at::Tensor& y2, const at::Tensor& target, int64_t p) {
  const CompositeShape s = check_composite_inputs(mask, y1, y2, target, p);
  const at::Tensor mc = mask.contiguous(), ac = y1.contiguous(), bc = y2.contiguous(),
                   tc = target.contiguous();
  const Chunking chunks(s.n, s.hw);
  std::vector<double> partial(chunks.total, 0.0);
  AT_DISPATCH_FLOATING_TYPES(y1.scalar_type(), "composite_recon_loss_cpu", [&] {
    const scalar_t *m = mc.data_ptr<scalar_t>(), *a = ac.data_ptr<scalar_t>(),
                   *b = bc.data_ptr<scalar_t>(), *t = tc.data_ptr<scalar_t>();
    with_static_args(p, s.mask_per_pixel, [&](auto P, auto per_pixel) {
      at::parallel_for(0, chunks.total, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t k = lo; k < hi; ++k) {
          const int64_t n = k / chunks.per_frame, begin = (k % chunks.per_frame) * kChunk;
          partial[k] = forward_chunk<scalar_t, P, per_pixel>(m, a, b, t, s, n, begin,
                                                             std::min(begin + kChunk, s.hw));
        }
      });
    });
  });
  double total = 0;
  for (double v : partial) total += v;
  return at::scalar_tensor(total / double(s.n * s.c * s.hw), y1.options());
}

template <typename scalar_t, int P, bool PerPixel>
double backward_chunk(scalar_t scale, const scalar_t* m, const scalar_t* y1, const scalar_t* y2,
                      const scalar_t* t, scalar_t* gm, scalar_t* g1, scalar_t* g2,
                      const CompositeShape& s, int64_t n, int64_t begin, int64_t end) {
  // Pointers hoisted per plane and the two mask kinds in separate loops: the
  // compiler vectorises these; the combined form ran several times slower.
  const int64_t len = end - begin;
  double frame_sum = 0;  // d loss / d mask summed over the chunk (per-frame masks)
  const scalar_t* mp = PerPixel ? m + n * s.hw + begin : m + n;
  scalar_t* gmp = PerPixel ? gm + n * s.hw + begin : nullptr;
  if constexpr (PerPixel) std::fill(gmp, gmp + len, scalar_t(0));
  for (int64_t c = 0; c < s.c; ++c) {
    const int64_t offset = (n * s.c + c) * s.hw + begin;
    const scalar_t *ap = y1 + offset, *bp = y2 + offset, *tp = t + offset;
    scalar_t *g1p = g1 + offset, *g2p = g2 + offset;
    if constexpr (PerPixel) {
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) {
        const scalar_t mi = mp[i], a = ap[i], b = bp[i];
        const scalar_t d = scale * recon_term_grad<scalar_t>(b + mi * (a - b) - tp[i], P);
        g1p[i] = d * mi;
        g2p[i] = d - d * mi;
        gmp[i] += d * (a - b);
      }
    } else {
      const scalar_t mi = mp[0];
      scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < len; ++i) {
        const scalar_t a = ap[i], b = bp[i];
        const scalar_t d = scale * recon_term_grad<scalar_t>(b + mi * (a - b) - tp[i], P);
        g1p[i] = d * mi;
        g2p[i] = d - d * mi;
        acc += d * (a - b);
      }
      frame_sum += acc;
    }
  }
  return frame_sum;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> composite_recon_loss_backward_cpu(
    const at::Tensor& grad, const at::Tensor& mask, const at::Tensor& y1, const at::Tensor& y2,
    const at::Tensor& target, int64_t p) {
  const CompositeShape s = check_composite_inputs(mask, y1, y2, target, p);
  TORCH_CHECK(grad.numel() == 1, "composite_recon_loss_backward: grad must be a scalar");
  const at::Tensor mc = mask.contiguous(), ac = y1.contiguous(), bc = y2.contiguous(),
                   tc = target.contiguous();
  at::Tensor gm = at::empty(mask.sizes(), mask.options());
  at::Tensor g1 = at::empty(y1.sizes(), y1.options()), g2 = at::empty(y1.sizes(), y1.options());
  const Chunking chunks(s.n, s.hw);
  std::vector<double> partial(chunks.total, 0.0);
  const double scale = grad.item<double>() / double(s.n * s.c * s.hw);
  AT_DISPATCH_FLOATING_TYPES(y1.scalar_type(), "composite_recon_loss_backward_cpu", [&] {
    const scalar_t *m = mc.data_ptr<scalar_t>(), *a = ac.data_ptr<scalar_t>(),
                   *b = bc.data_ptr<scalar_t>(), *t = tc.data_ptr<scalar_t>();
    scalar_t *pm = gm.data_ptr<scalar_t>(), *p1 = g1.data_ptr<scalar_t>(),
             *p2 = g2.data_ptr<scalar_t>();
    with_static_args(p, s.mask_per_pixel, [&](auto P, auto per_pixel) {
      at::parallel_for(0, chunks.total, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t k = lo; k < hi; ++k) {
          const int64_t n = k / chunks.per_frame, begin = (k % chunks.per_frame) * kChunk;
          partial[k] = backward_chunk<scalar_t, P, per_pixel>(
              scalar_t(scale), m, a, b, t, pm, p1, p2, s, n, begin, std::min(begin + kChunk, s.hw));
        }
      });
    });
    if (!s.mask_per_pixel) {
      for (int64_t n = 0; n < s.n; ++n) {
        double sum = 0;
        for (int64_t k = 0; k < chunks.per_frame; ++k) sum += partial[n * chunks.per_frame + k];
        pm[n] = scalar_t(sum);
      }
    }
  });
  return {gm, g1, g2};
}

}  // namespace

TORCH_LIBRARY_IMPL(ddip_video, CPU, m) {
  m.impl("composite_recon_loss", &composite_recon_loss_cpu);
  m.impl("composite_recon_loss_backward", &composite_recon_loss_backward_cpu);
}

}  // namespace ddip_video
