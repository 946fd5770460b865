// Per-pixel math shared by the CPU and CUDA kernels. Plain C++ (no torch):
// nvcc compiles it for the device, the host compiler for the CPU kernels.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define DDIP_HD __host__ __device__ __forceinline__
#else
#define DDIP_HD inline
#endif

namespace ddip_video {

// ---- compositing with reconstruction loss --------------------------------

// Loss term of one element: |r| (p = 1) or r^2 (p = 2), r = composite - target.
template <typename acc_t>
DDIP_HD acc_t recon_term(acc_t residual, int p) {
  return p == 1 ? (residual < 0 ? -residual : residual) : residual * residual;
}

// d(term)/d(residual); sign(0) = 0, as torch.abs' gradient.
template <typename acc_t>
DDIP_HD acc_t recon_term_grad(acc_t residual, int p) {
  if (p == 2) return acc_t(2) * residual;
  // sign(residual) as a select of copysign: a nested ternary does not vectorise on the CPU
  return residual == acc_t(0) ? acc_t(0) : copysign(acc_t(1), residual);
}

// ---- exclusion loss ------------------------------------------------------

// s(g) = 2 * sigmoid(g) - 1 = tanh(g / 2). Differences of images in [0, 1]
// lie in [-1, 1]; there a degree-4 polynomial in g^2 (fitted to tanh, relative
// error under 2e-7 in float arithmetic) keeps the GPU off its special-function
// unit. Elsewhere it is written with exp(-|g|), which never overflows.
DDIP_HD float squash_near_zero(float g) {  // for |g| <= 1
  const float u = g * g;
  float p = 3.347913876e-05f;
  p = p * u - 4.139784467e-04f;
  p = p * u + 4.164009062e-03f;
  p = p * u - 4.166633987e-02f;
  p = p * u + 4.999999935e-01f;
  return g * p;
}

DDIP_HD float squash(float g) {
  if (g <= 1.f && g >= -1.f) return squash_near_zero(g);
#if defined(__CUDA_ARCH__)
  const float e = __expf(-fabsf(g));
  const float s = __fdividef(1.f - e, 1.f + e);
#else
  const float e = std::exp(-std::fabs(g));
  const float s = (1.f - e) / (1.f + e);
#endif
  return g < 0 ? -s : s;
}

DDIP_HD double squash(double g) {  // float64: exact formula everywhere
  const double e = exp(-fabs(g));
  const double s = (1.0 - e) / (1.0 + e);
  return g < 0 ? -s : s;
}

// Gradients of sum_ij K_ij s_a_j^2 s_b_i^2 with respect to the differences
// behind s_a and s_b (d s / d g = (1 - s^2) / 2, d(s^2) = 2 s ds):
// ga_j = s_a_j (1 - s_a_j^2) sum_i K_ij s_b_i^2, gb_i = s_b_i (1 - s_b_i^2) sum_j K_ij s_a_j^2.
template <typename acc_t, typename coef_t>
DDIP_HD void pair_grads(const acc_t sa[3], const acc_t sb[3], const coef_t k[9], acc_t ga[3],
                        acc_t gb[3]) {
  acc_t sa2[3], sb2[3];
  for (int c = 0; c < 3; ++c) sa2[c] = sa[c] * sa[c], sb2[c] = sb[c] * sb[c];
  for (int c = 0; c < 3; ++c) {
    acc_t wa = 0, wb = 0;
    for (int o = 0; o < 3; ++o) {
      wa += acc_t(k[o * 3 + c]) * sb2[o];
      wb += acc_t(k[c * 3 + o]) * sa2[o];
    }
    ga[c] = sa[c] * (acc_t(1) - sa2[c]) * wa;
    gb[c] = sb[c] * (acc_t(1) - sb2[c]) * wb;
  }
}

// acc[i * 3 + j] += s_a_j^2 * s_b_i^2
template <typename acc_t, typename sum_t>
DDIP_HD void add_pair_products(const acc_t sa[3], const acc_t sb[3], sum_t acc[9]) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) acc[i * 3 + j] += sa[j] * sa[j] * sb[i] * sb[i];
}

}  // namespace ddip_video
