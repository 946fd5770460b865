// Checks the CPU operators, called through the dispatcher, against naive
// loops written straight from the definitions in docs/design.md (double precision).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

namespace {

int failures = 0;

void expect_close(double got, double want, double rtol, const std::string& what) {
  const double err = std::fabs(got - want), bound = rtol * std::fabs(want) + 1e-12;
  if (!(err <= bound)) {
    std::printf("FAIL %s: got %.12g, want %.12g\n", what.c_str(), got, want);
    ++failures;
  }
}

// ---- naive compositing loss -------------------------------------------------

double naive_composite(const std::vector<double>& m, const std::vector<double>& a,
                       const std::vector<double>& b, const std::vector<double>& t, int n, int c,
                       int hw, bool per_pixel, int p) {
  double sum = 0;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < c; ++k)
      for (int q = 0; q < hw; ++q) {
        const double mi = per_pixel ? m[i * hw + q] : m[i];
        const int e = (i * c + k) * hw + q;
        const double r = mi * a[e] + (1 - mi) * b[e] - t[e];
        sum += p == 1 ? std::fabs(r) : r * r;
      }
  return sum / (double(n) * c * hw);
}

std::vector<double> values(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

void test_composite() {
  auto fwd = c10::Dispatcher::singleton()
                 .findSchemaOrThrow("ddip_video::composite_recon_loss", "")
                 .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   const at::Tensor&, int64_t)>();
  auto bwd = c10::Dispatcher::singleton()
                 .findSchemaOrThrow("ddip_video::composite_recon_loss_backward", "")
                 .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                     const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                     const at::Tensor&, int64_t)>();
  const int n = 2, c = 3, h = 9, w = 13, hw = h * w;
  for (bool per_pixel : {true, false}) {
    for (int p : {1, 2}) {
      at::manual_seed(7);
      const at::Tensor m = per_pixel ? at::rand({n, 1, h, w}, at::kDouble) : at::rand({n, 1, 1, 1}, at::kDouble);
      const at::Tensor a = at::rand({n, c, h, w}, at::kDouble), b = at::rand({n, c, h, w}, at::kDouble),
                       t = at::rand({n, c, h, w}, at::kDouble);
      const std::string tag = std::string(per_pixel ? "per-pixel" : "per-frame") + " p=" + std::to_string(p);
      auto vm = values(m), va = values(a), vb = values(b), vt = values(t);
      const double want = naive_composite(vm, va, vb, vt, n, c, hw, per_pixel, p);
      expect_close(fwd.call(m, a, b, t, p).item<double>(), want, 1e-12, "composite forward " + tag);
      // gradients against central differences of the naive loss
      at::Tensor gm, ga, gb;
      std::tie(gm, ga, gb) = bwd.call(at::ones({}, at::kDouble), m, a, b, t, p);
      const double eps = 1e-6;
      for (int e : {0, 5, 17, 40}) {
        auto probe = [&](std::vector<double>& v, const at::Tensor& g, const char* name) {
          if (e >= int(v.size())) return;
          const double keep = v[e];
          v[e] = keep + eps;
          const double up = naive_composite(vm, va, vb, vt, n, c, hw, per_pixel, p);
          v[e] = keep - eps;
          const double down = naive_composite(vm, va, vb, vt, n, c, hw, per_pixel, p);
          v[e] = keep;
          expect_close(values(g)[e], (up - down) / (2 * eps), 1e-5, std::string("composite d/d") + name + " " + tag);
        };
        probe(vm, gm, "mask");
        probe(va, ga, "y1");
        probe(vb, gb, "y2");
      }
    }
  }
}

// ---- naive exclusion loss -----------------------------------------------------

struct Image {  // n x 3 x h x w, doubles
  int n, h, w;
  std::vector<double> v;
  double at(int i, int c, int y, int x) const { return v[((i * 3 + c) * h + y) * w + x]; }
};

Image pool(const Image& im) {
  Image out{im.n, im.h / 2, im.w / 2, {}};
  out.v.resize(size_t(out.n) * 3 * out.h * out.w);
  for (int i = 0; i < im.n; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < out.h; ++y)
        for (int x = 0; x < out.w; ++x)
          out.v[((i * 3 + c) * out.h + y) * out.w + x] =
              0.25 * (im.at(i, c, 2 * y, 2 * x) + im.at(i, c, 2 * y, 2 * x + 1) +
                      im.at(i, c, 2 * y + 1, 2 * x) + im.at(i, c, 2 * y + 1, 2 * x + 1));
  return out;
}

double s(double g) { return 2.0 / (1.0 + std::exp(-g)) - 1.0; }

double naive_exclusion(Image a, Image b, int levels) {
  double total = 0;
  for (int l = 0; l < levels; ++l) {
    if (l > 0) a = pool(a), b = pool(b);
    for (int d = 0; d < 2; ++d) {
      const int dy = d, dx = 1 - d;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          double sum = 0;
          long count = 0;
          for (int k = 0; k < a.n; ++k)
            for (int y = 0; y + dy < a.h; ++y)
              for (int x = 0; x + dx < a.w; ++x) {
                const double sa = s(a.at(k, j, y + dy, x + dx) - a.at(k, j, y, x));
                const double sb = s(b.at(k, i, y + dy, x + dx) - b.at(k, i, y, x));
                sum += sa * sa * sb * sb;
                ++count;
              }
          total += std::pow(sum / double(count), 0.25);
        }
    }
  }
  return total / (9.0 * levels) / 2.0;
}

void test_exclusion() {
  auto fwd = c10::Dispatcher::singleton()
                 .findSchemaOrThrow("ddip_video::exclusion_loss", "")
                 .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t)>();
  auto full = c10::Dispatcher::singleton()
                  .findSchemaOrThrow("ddip_video::exclusion_loss_forward", "")
                  .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                      const at::Tensor&, const at::Tensor&, int64_t)>();
  auto bwd = c10::Dispatcher::singleton()
                 .findSchemaOrThrow("ddip_video::exclusion_loss_backward", "")
                 .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                           const at::Tensor&, const at::Tensor&,
                                                           const at::Tensor&, const at::Tensor&, int64_t)>();
  const int shapes[][3] = {{2, 16, 24}, {1, 17, 23}, {3, 9, 13}};
  for (const auto& sh : shapes) {
    for (int levels : {1, 2, 3}) {
      at::manual_seed(11);
      const at::Tensor a = at::rand({sh[0], 3, sh[1], sh[2]}, at::kDouble) * 3;
      const at::Tensor b = at::rand({sh[0], 3, sh[1], sh[2]}, at::kDouble);
      Image ia{sh[0], sh[1], sh[2], values(a)}, ib{sh[0], sh[1], sh[2], values(b)};
      const std::string tag = std::to_string(sh[0]) + "x3x" + std::to_string(sh[1]) + "x" +
                              std::to_string(sh[2]) + " L=" + std::to_string(levels);
      expect_close(fwd.call(a, b, levels).item<double>(), naive_exclusion(ia, ib, levels), 1e-12,
                   "exclusion forward " + tag);
      for (const at::Tensor& f : {a.to(at::kFloat)}) {  // float32 path: looser tolerance
        expect_close(fwd.call(f, b.to(at::kFloat), levels).item<double>(),
                     naive_exclusion(ia, ib, levels), 1e-5, "exclusion forward float32 " + tag);
      }
      auto out = full.call(a, b, levels);
      at::Tensor ga, gb;
      std::tie(ga, gb) = bwd.call(at::ones({}, at::kDouble), a, b, std::get<1>(out), std::get<2>(out),
                                  std::get<3>(out), levels);
      const auto vga = values(ga), vgb = values(gb);
      const double eps = 1e-6;
      for (size_t e : {size_t(0), size_t(31), size_t(100), ia.v.size() - 1}) {
        for (int which = 0; which < 2; ++which) {
          Image& im = which == 0 ? ia : ib;
          const double keep = im.v[e];
          im.v[e] = keep + eps;
          const double up = naive_exclusion(ia, ib, levels);
          im.v[e] = keep - eps;
          const double down = naive_exclusion(ia, ib, levels);
          im.v[e] = keep;
          expect_close((which == 0 ? vga : vgb)[e], (up - down) / (2 * eps), 1e-4,
                       std::string("exclusion d/d") + (which == 0 ? "a" : "b") + "[" +
                           std::to_string(e) + "] " + tag);
        }
      }
    }
  }
}

}  // namespace

int main() {
  test_composite();
  test_exclusion();
  if (failures) {
    std::printf("%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("all CPU kernel checks passed\n");
  return 0;
}
