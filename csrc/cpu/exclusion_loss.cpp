// Exclusion loss on the CPU. Per level: one pass over rows that squashes the
// x and y differences of both layers and adds the nine channel-pair products
// (row partials summed in order: deterministic), and writes the next 2x2
// pooled level. The backward runs coarse to fine, so each level's gradient
// takes the coarser level's (spread back through the pooling) in the same pass.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>
#include <vector>

#include "ddip_video/checks.h"
#include "ddip_video/math.h"

namespace ddip_video {
namespace {

// One pyramid level of both layers: planes (n, c) of h x w, contiguous.
template <typename T>
struct Level {
  const T* a;
  const T* b;
  int64_t n, h, w;
  const T* plane(const T* base, int64_t n_, int64_t c) const { return base + (n_ * 3 + c) * h * w; }
};

// out[x] = s(x1[x] - x0[x]). For float, a vectorised pass evaluates the
// polynomial of |g| <= 1 everywhere (images in [0, 1] never leave it) and
// notes the largest |g|; a scalar pass then redoes whatever lay outside.
// (A clamp or a branch inside the first loop stops it vectorising.)
template <typename T>
void squash_row(const T* x1, const T* x0, T* out, int64_t len) {
  if constexpr (std::is_same_v<T, float>) {
    float largest = 0.f;  // NaN never wins; the polynomial passes it on
#pragma omp simd reduction(max : largest)
    for (int64_t x = 0; x < len; ++x) {
      const float g = x1[x] - x0[x];
      largest = std::max(largest, std::fabs(g));
      out[x] = squash_near_zero(g);
    }
    if (largest <= 1.f) return;
    for (int64_t x = 0; x < len; ++x) {
      const float g = x1[x] - x0[x];
      if (!(g <= 1.f && g >= -1.f)) out[x] = squash(g);
    }
  } else {
    for (int64_t x = 0; x < len; ++x) out[x] = squash(x1[x] - x0[x]);
  }
}

// Per-channel row buffers for both layers: the squashed differences s(x1 - x0)
// along one row segment (x differences: x1 = x0 + 1; y differences: the next
// row), or their gradients.
template <typename T>
struct RowPair {
  std::array<std::vector<T>, 3> a, b;
  explicit RowPair(int64_t len) {
    for (int c = 0; c < 3; ++c) a[c].resize(len), b[c].resize(len);
  }
  void compute(const std::array<const T*, 3>& a0, const std::array<const T*, 3>& a1,
               const std::array<const T*, 3>& b0, const std::array<const T*, 3>& b1, int64_t len) {
    for (int c = 0; c < 3; ++c) {
      T* sa = a[c].data();
      T* sb = b[c].data();
      squash_row(a1[c], a0[c], sa, len);
      squash_row(b1[c], b0[c], sb, len);
    }
  }
};

// Pointers to row y of each channel, shifted by `dx` columns.
template <typename T>
std::array<const T*, 3> row_ptrs(const Level<T>& lv, const T* base, int64_t n, int64_t y,
                                  int64_t dx) {
  return {lv.plane(base, n, 0) + y * lv.w + dx, lv.plane(base, n, 1) + y * lv.w + dx,
          lv.plane(base, n, 2) + y * lv.w + dx};
}

// acc[i * 3 + j] += sum_x s_a_j^2 * s_b_i^2
template <typename T>
void add_pair_products(const RowPair<T>& s, int64_t len, double* acc) {
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      const T* sa = s.a[j].data();
      const T* sb = s.b[i].data();
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t x = 0; x < len; ++x) sum += sa[x] * sa[x] * sb[x] * sb[x];
      acc[i * 3 + j] += sum;
    }
  }
}

// Sums over every x and y difference of one level: out[d * 9 + i * 3 + j].
template <typename T>
std::array<double, 18> level_sums(const Level<T>& lv) {
  const int64_t rows = lv.n * lv.h;
  std::vector<double> partial(rows * 18, 0.0);
  at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    RowPair<T> s(lv.w);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t n = r / lv.h, y = r % lv.h;
      double* acc = &partial[r * 18];
      s.compute(row_ptrs(lv, lv.a, n, y, 0), row_ptrs(lv, lv.a, n, y, 1), row_ptrs(lv, lv.b, n, y, 0),
                row_ptrs(lv, lv.b, n, y, 1), lv.w - 1);
      add_pair_products(s, lv.w - 1, acc);
      if (y + 1 < lv.h) {
        s.compute(row_ptrs(lv, lv.a, n, y, 0), row_ptrs(lv, lv.a, n, y + 1, 0),
                  row_ptrs(lv, lv.b, n, y, 0), row_ptrs(lv, lv.b, n, y + 1, 0), lv.w);
        add_pair_products(s, lv.w, acc + 9);
      }
    }
  });
  std::array<double, 18> total{};
  for (int64_t r = 0; r < rows; ++r)
    for (int k = 0; k < 18; ++k) total[k] += partial[r * 18 + k];
  return total;
}

// dst (n, 3, h/2, w/2) = 2x2 average of src (n, 3, h, w), floor sizes.
template <typename S, typename T>
void pool2x2(const S* src, T* dst, int64_t planes, int64_t h, int64_t w) {
  const int64_t ph = h / 2, pw = w / 2;
  at::parallel_for(0, planes * ph, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t p = r / ph, y = r % ph;
      const S* s0 = src + (p * h + 2 * y) * w;
      const S* s1 = s0 + w;
      T* d = dst + (p * ph + y) * pw;
      for (int64_t x = 0; x < pw; ++x)
        d[x] = T(0.25) * (T(s0[2 * x]) + T(s0[2 * x + 1]) + T(s1[2 * x]) + T(s1[2 * x + 1]));
    }
  });
}

template <typename T>
Level<T> level_view(const T* a, const T* b, const at::Tensor& pa, const at::Tensor& pb,
                    const PyramidShape& s, int64_t l) {
  if (l == 0) return {a, b, s.n, s.h[0], s.w[0]};
  return {pa.data_ptr<T>() + s.offset[l], pb.data_ptr<T>() + s.offset[l], s.n, s.h[l], s.w[l]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> exclusion_loss_forward_cpu(
    const at::Tensor& a_in, const at::Tensor& b_in, int64_t levels) {
  const PyramidShape s = check_exclusion_inputs(a_in, b_in, levels);
  const at::Tensor a = a_in.contiguous(), b = b_in.contiguous();
  at::Tensor pa = at::empty({s.offset[levels]}, a.options());
  at::Tensor pb = at::empty({s.offset[levels]}, a.options());
  at::Tensor means = at::empty({levels, 2, 3, 3}, a.options().dtype(at::kDouble));
  double loss = 0;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "exclusion_loss_forward_cpu", [&] {
    double* m = means.data_ptr<double>();
    for (int64_t l = 0; l < levels; ++l) {
      const Level<scalar_t> lv = level_view(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), pa, pb, s, l);
      if (l + 1 < levels) {
        pool2x2(lv.a, pa.data_ptr<scalar_t>() + s.offset[l + 1], s.n * 3, lv.h, lv.w);
        pool2x2(lv.b, pb.data_ptr<scalar_t>() + s.offset[l + 1], s.n * 3, lv.h, lv.w);
      }
      const std::array<double, 18> sums = level_sums(lv);
      const double count[2] = {double(lv.n * lv.h * (lv.w - 1)), double(lv.n * (lv.h - 1) * lv.w)};
      for (int k = 0; k < 18; ++k) {
        m[l * 18 + k] = sums[k] / count[k / 9];
        loss += std::pow(m[l * 18 + k], 0.25);
      }
    }
  });
  loss /= 18.0 * double(levels);
  const at::ScalarType acc = a.scalar_type();
  return {at::scalar_tensor(loss, a.options()), means.to(acc), pa, pb};
}

template <typename T>
void row_pair_grads(const RowPair<T>& s, const double* k, int64_t len, RowPair<T>& g) {
  T kt[9];  // in T, so the loop has one element type and vectorises
  for (int q = 0; q < 9; ++q) kt[q] = T(k[q]);
  const T *sa0 = s.a[0].data(), *sa1 = s.a[1].data(), *sa2 = s.a[2].data();
  const T *sb0 = s.b[0].data(), *sb1 = s.b[1].data(), *sb2 = s.b[2].data();
  T *ga0 = g.a[0].data(), *ga1 = g.a[1].data(), *ga2 = g.a[2].data();
  T *gb0 = g.b[0].data(), *gb1 = g.b[1].data(), *gb2 = g.b[2].data();
#pragma omp simd
  for (int64_t x = 0; x < len; ++x) {
    const T sa[3] = {sa0[x], sa1[x], sa2[x]}, sb[3] = {sb0[x], sb1[x], sb2[x]};
    T ga[3], gb[3];
    pair_grads(sa, sb, kt, ga, gb);
    ga0[x] = ga[0], ga1[x] = ga[1], ga2[x] = ga[2];
    gb0[x] = gb[0], gb1[x] = gb[1], gb2[x] = gb[2];
  }
}

// The next level's gradient, spread back through the 2x2 average pooling.
template <typename T>
struct Coarse {
  const T* a = nullptr;
  const T* b = nullptr;
  int64_t h = 0, w = 0;
};

// Gradient rows of the x differences of row y (gx) and the y differences
// between rows y and y + 1 (gy; zero-length past the last row).
template <typename T>
struct RowGrads {
  RowPair<T> s, gx, gy;
  mutable std::vector<T> scratch;  // one output row being summed
  explicit RowGrads(int64_t w) : s(w), gx(w), gy(w), scratch(w) {}
  void compute(const Level<T>& lv, int64_t n, int64_t y, const double* kx, const double* ky) {
    s.compute(row_ptrs(lv, lv.a, n, y, 0), row_ptrs(lv, lv.a, n, y, 1), row_ptrs(lv, lv.b, n, y, 0),
              row_ptrs(lv, lv.b, n, y, 1), lv.w - 1);
    row_pair_grads(s, kx, lv.w - 1, gx);
    if (y + 1 < lv.h) {
      s.compute(row_ptrs(lv, lv.a, n, y, 0), row_ptrs(lv, lv.a, n, y + 1, 0),
                row_ptrs(lv, lv.b, n, y, 0), row_ptrs(lv, lv.b, n, y + 1, 0), lv.w);
      row_pair_grads(s, ky, lv.w, gy);
    }
  }
};

// Writes row y of one channel of the level's gradient: each difference
// x1 - x0 sends +g to x1 and -g to x0.
// One layer's row: the x differences' gradients gx (w - 1 of them), the y
// differences' above (gy_up, or null on the first row) and below (gy_down, or
// null on the last), and the coarser level's gradient (or null). Branch-free
// loops over the interior, the ends apart, so that they vectorise; acc: w
// elements of scratch.
template <typename T, typename O>
void write_grad_row_one(const T* gx, const T* gy_up, const T* gy_down, const Coarse<T>& coarse,
                        const T* coarse_layer, int64_t n, int64_t y, int c, int64_t w, T* acc,
                        O* out) {
  if (w == 1) {
    acc[0] = 0;
  } else {
    acc[0] = -gx[0];
    acc[w - 1] = gx[w - 2];
#pragma omp simd
    for (int64_t x = 1; x < w - 1; ++x) acc[x] = gx[x - 1] - gx[x];
  }
  if (gy_up != nullptr) {
#pragma omp simd
    for (int64_t x = 0; x < w; ++x) acc[x] += gy_up[x];
  }
  if (gy_down != nullptr) {
#pragma omp simd
    for (int64_t x = 0; x < w; ++x) acc[x] -= gy_down[x];
  }
  if (coarse_layer != nullptr && y / 2 < coarse.h) {
    const T* up = coarse_layer + ((n * 3 + c) * coarse.h + y / 2) * coarse.w;
    const int64_t covered = std::min(w, 2 * coarse.w);  // an odd last column has no coarse pixel
    for (int64_t x = 0; x < covered; ++x) acc[x] += T(0.25) * up[x / 2];
  }
#pragma omp simd
  for (int64_t x = 0; x < w; ++x) out[x] = O(acc[x]);
}

template <typename T, typename O>
void write_grad_row(const Level<T>& lv, const RowGrads<T>& cur, const RowPair<T>& gy_prev,
                    const Coarse<T>& coarse, int64_t n, int64_t y, int c, O* out_a, O* out_b) {
  const int64_t w = lv.w, row = ((n * 3 + c) * lv.h + y) * w;
  write_grad_row_one(cur.gx.a[c].data(), y > 0 ? gy_prev.a[c].data() : nullptr,
                     y + 1 < lv.h ? cur.gy.a[c].data() : nullptr, coarse, coarse.a, n, y, c, w,
                     cur.scratch.data(), out_a + row);
  write_grad_row_one(cur.gx.b[c].data(), y > 0 ? gy_prev.b[c].data() : nullptr,
                     y + 1 < lv.h ? cur.gy.b[c].data() : nullptr, coarse, coarse.b, n, y, c, w,
                     cur.scratch.data(), out_b + row);
}

constexpr int64_t kRowsPerTask = 16;

// Backward of one level into out_a/out_b (n, 3, h, w), in chunks of rows; a
// chunk recomputes the y-difference gradients of the row above it.
template <typename T, typename O>
void level_backward(const Level<T>& lv, const double* kx, const double* ky, const Coarse<T>& coarse,
                    O* out_a, O* out_b) {
  const int64_t chunks_per_frame = (lv.h + kRowsPerTask - 1) / kRowsPerTask;
  at::parallel_for(0, lv.n * chunks_per_frame, 1, [&](int64_t lo, int64_t hi) {
    RowGrads<T> prev(lv.w), cur(lv.w);
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t n = task / chunks_per_frame, y0 = (task % chunks_per_frame) * kRowsPerTask;
      if (y0 > 0) prev.compute(lv, n, y0 - 1, kx, ky);
      for (int64_t y = y0; y < std::min(y0 + kRowsPerTask, lv.h); ++y) {
        cur.compute(lv, n, y, kx, ky);
        for (int c = 0; c < 3; ++c) write_grad_row(lv, cur, prev.gy, coarse, n, y, c, out_a, out_b);
        std::swap(prev, cur);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> exclusion_loss_backward_cpu(
    const at::Tensor& grad, const at::Tensor& a_in, const at::Tensor& b_in, const at::Tensor& means,
    const at::Tensor& pa, const at::Tensor& pb, int64_t levels) {
  const PyramidShape s = check_exclusion_inputs(a_in, b_in, levels);
  TORCH_CHECK(grad.numel() == 1, "exclusion_loss_backward: grad must be a scalar");
  TORCH_CHECK(means.numel() == levels * 18 && pa.numel() == s.offset[levels] &&
                  pb.numel() == s.offset[levels],
              "exclusion_loss_backward: means/pyramids do not match the inputs");
  const at::Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const at::Tensor pac = pa.contiguous().to(a.scalar_type()), pbc = pb.contiguous().to(a.scalar_type());
  const at::Tensor m = means.to(at::kDouble).contiguous();
  at::Tensor ga = at::empty(a.sizes(), a.options()), gb = at::empty(a.sizes(), a.options());
  // Coefficients d loss / d (sum of products) per level, direction and pair.
  std::vector<double> k(levels * 18);
  const double g = grad.item<double>();
  for (int64_t l = 0; l < levels; ++l) {
    const double count[2] = {double(s.n * s.h[l] * (s.w[l] - 1)), double(s.n * (s.h[l] - 1) * s.w[l])};
    for (int q = 0; q < 18; ++q) {
      const double mean = m.data_ptr<double>()[l * 18 + q];
      k[l * 18 + q] = g * 0.25 * std::pow(mean, -0.75) / (18.0 * double(levels)) / count[q / 9];
    }
  }
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "exclusion_loss_backward_cpu", [&] {
    using T = scalar_t;
    // Gradients of levels 1 .. L-1, laid out like the pyramid.
    std::vector<T> scratch_a(s.offset[levels]), scratch_b(s.offset[levels]);
    for (int64_t l = levels - 1; l >= 0; --l) {
      const Level<T> lv = level_view(a.data_ptr<T>(), b.data_ptr<T>(), pac, pbc, s, l);
      Coarse<T> coarse;
      if (l + 1 < levels)
        coarse = {scratch_a.data() + s.offset[l + 1], scratch_b.data() + s.offset[l + 1], s.h[l + 1],
                  s.w[l + 1]};
      T* oa = l == 0 ? ga.data_ptr<T>() : scratch_a.data() + s.offset[l];
      T* ob = l == 0 ? gb.data_ptr<T>() : scratch_b.data() + s.offset[l];
      level_backward<T, T>(lv, &k[l * 18], &k[l * 18 + 9], coarse, oa, ob);
    }
  });
  return {ga, gb};
}

}  // namespace

TORCH_LIBRARY_IMPL(ddip_video, CPU, m) {
  m.impl("exclusion_loss_forward", &exclusion_loss_forward_cpu);
  m.impl("exclusion_loss_backward", &exclusion_loss_backward_cpu);
}

}  // namespace ddip_video
