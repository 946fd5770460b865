// Exclusion loss on the CPU. Per level: one pass over rows that squashes the
// x and y differences of both layers and adds the nine channel-pair products
// (row partials summed in order: deterministic), and writes the next 2x2
// pooled level. The backward runs coarse to fine, so each level's gradient
// takes the coarser level's (spread back through the pooling) in the same pass.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <cmath>
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
      for (int64_t x = 0; x < len; ++x) sa[x] = squash(a1[c][x] - a0[c][x]);
      for (int64_t x = 0; x < len; ++x) sb[x] = squash(b1[c][x] - b0[c][x]);
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
  for (int64_t x = 0; x < len; ++x) {
    const T sa[3] = {s.a[0][x], s.a[1][x], s.a[2][x]}, sb[3] = {s.b[0][x], s.b[1][x], s.b[2][x]};
    T ga[3], gb[3];
    pair_grads(sa, sb, k, ga, gb);
    for (int c = 0; c < 3; ++c) g.a[c][x] = ga[c], g.b[c][x] = gb[c];
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
  explicit RowGrads(int64_t w) : s(w), gx(w), gy(w) {}
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
template <typename T, typename O>
void write_grad_row(const Level<T>& lv, const RowGrads<T>& cur, const RowPair<T>& gy_prev,
                    const Coarse<T>& coarse, int64_t n, int64_t y, int c, O* out_a, O* out_b) {
  const int64_t w = lv.w, row = ((n * 3 + c) * lv.h + y) * w;
  const bool has_coarse = coarse.a != nullptr && y / 2 < coarse.h;
  const int64_t crow = ((n * 3 + c) * coarse.h + y / 2) * coarse.w;
  for (int64_t x = 0; x < w; ++x) {
    T va = 0, vb = 0;
    if (x > 0) va += cur.gx.a[c][x - 1], vb += cur.gx.b[c][x - 1];
    if (x + 1 < w) va -= cur.gx.a[c][x], vb -= cur.gx.b[c][x];
    if (y > 0) va += gy_prev.a[c][x], vb += gy_prev.b[c][x];
    if (y + 1 < lv.h) va -= cur.gy.a[c][x], vb -= cur.gy.b[c][x];
    if (has_coarse && x / 2 < coarse.w) {
      va += T(0.25) * coarse.a[crow + x / 2];
      vb += T(0.25) * coarse.b[crow + x / 2];
    }
    out_a[row + x] = O(va);
    out_b[row + x] = O(vb);
  }
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
