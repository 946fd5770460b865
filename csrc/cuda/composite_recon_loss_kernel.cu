// Compositing with reconstruction loss on CUDA. Each thread takes V
// neighbouring pixels of one frame through every channel, so the mask is read
// once per pixel; per-block partial sums are added in a fixed order by a
// second small kernel (deterministic, no atomics).
#include <algorithm>

#include "common.cuh"
#include "ddip_video/math.h"
#include "kernels.h"

namespace ddip_video {
namespace cuda {
namespace {

constexpr int kThreads = 256;

struct Grid {
  int v;             // pixels per thread step (vector width)
  int64_t blocks_x;  // blocks per frame
};

template <typename T>
constexpr int vector_width() {
  return int(16 / sizeof(T));
}

template <typename T>
Grid plan(const CompositeArgs& a) {
  const int v = vector_width<T>();
  const int bytes = v * int(sizeof(T));
  const bool vec = a.hw % v == 0 && aligned_to(a.y1, bytes) && aligned_to(a.y2, bytes) &&
                   aligned_to(a.target, bytes) && (!a.mask_per_pixel || aligned_to(a.mask, bytes));
  Grid g;
  g.v = vec ? v : 1;
  const int64_t groups = a.hw / g.v;
  const int64_t max_x = std::max<int64_t>(1, (groups + kThreads - 1) / kThreads);
  const int64_t want = std::max<int64_t>(1, 8 * int64_t(multiprocessor_count()) / a.n);
  g.blocks_x = std::min(max_x, want);
  return g;
}

// One pixel group: V pixels of frame n starting at pixel i0, every channel.
template <typename T, int V>
struct PixelGroup {
  typename Acc<T>::type m[V];

  __device__ void load_mask(const T* mask, bool per_pixel, int64_t n, int64_t hw, int64_t i0) {
    if (per_pixel) {
      const Pack<T, V> pm = load_pack<T, V>(mask + n * hw + i0);
#pragma unroll
      for (int k = 0; k < V; ++k) m[k] = to_acc(pm.v[k]);
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) m[k] = to_acc(mask[n]);
    }
  }
};

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) forward_kernel(
    const T* __restrict__ mask, const T* __restrict__ y1, const T* __restrict__ y2,
    const T* __restrict__ target, int64_t c_count, int64_t hw, bool per_pixel, int p,
    typename Acc<T>::type* __restrict__ partials) {
  using A = typename Acc<T>::type;
  const int64_t n = blockIdx.y, groups = hw / V;
  A acc = 0;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    PixelGroup<T, V> px;
    px.load_mask(mask, per_pixel, n, hw, g * V);
    for (int64_t c = 0; c < c_count; ++c) {
      const int64_t at = (n * c_count + c) * hw + g * V;
      const Pack<T, V> a = load_pack<T, V>(y1 + at), b = load_pack<T, V>(y2 + at),
                       t = load_pack<T, V>(target + at);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const A bk = to_acc(b.v[k]);
        acc += recon_term<A>(bk + px.m[k] * (to_acc(a.v[k]) - bk) - to_acc(t.v[k]), p);
      }
    }
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[n * gridDim.x + blockIdx.x] = acc;
}

// Sums `count` partials in a fixed order and writes scale * sum to out[0].
template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) finish_sum_kernel(const A* __restrict__ partials,
                                                              int64_t count, A scale,
                                                              T* __restrict__ out) {
  A acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) out[0] = from_acc<T>(acc * scale);
}

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) backward_kernel(
    const T* __restrict__ grad, const T* __restrict__ mask, const T* __restrict__ y1,
    const T* __restrict__ y2, const T* __restrict__ target, int64_t c_count, int64_t hw,
    bool per_pixel, int p, typename Acc<T>::type inv_count, T* __restrict__ grad_mask,
    T* __restrict__ grad_y1, T* __restrict__ grad_y2, typename Acc<T>::type* __restrict__ partials) {
  using A = typename Acc<T>::type;
  const int64_t n = blockIdx.y, groups = hw / V;
  const A scale = to_acc(grad[0]) * inv_count;
  A frame_acc = 0;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    PixelGroup<T, V> px;
    px.load_mask(mask, per_pixel, n, hw, g * V);
    A gm[V];
#pragma unroll
    for (int k = 0; k < V; ++k) gm[k] = 0;
    for (int64_t c = 0; c < c_count; ++c) {
      const int64_t at = (n * c_count + c) * hw + g * V;
      const Pack<T, V> a = load_pack<T, V>(y1 + at), b = load_pack<T, V>(y2 + at),
                       t = load_pack<T, V>(target + at);
      Pack<T, V> ga, gb;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const A ak = to_acc(a.v[k]), bk = to_acc(b.v[k]);
        const A d = scale * recon_term_grad<A>(bk + px.m[k] * (ak - bk) - to_acc(t.v[k]), p);
        const A dm = d * px.m[k];
        ga.v[k] = from_acc<T>(dm);
        gb.v[k] = from_acc<T>(d - dm);
        gm[k] += d * (ak - bk);
      }
      store_pack<T, V>(grad_y1 + at, ga);
      store_pack<T, V>(grad_y2 + at, gb);
    }
    if (per_pixel) {
      Pack<T, V> out;
#pragma unroll
      for (int k = 0; k < V; ++k) out.v[k] = from_acc<T>(gm[k]);
      store_pack<T, V>(grad_mask + n * hw + g * V, out);
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) frame_acc += gm[k];
    }
  }
  if (!per_pixel) {
    frame_acc = block_sum(frame_acc);
    if (threadIdx.x == 0) partials[n * gridDim.x + blockIdx.x] = frame_acc;
  }
}

// grad_mask[n] = sum of frame n's partials (per-frame masks).
template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) finish_frames_kernel(const A* __restrict__ partials,
                                                                 int64_t per_frame,
                                                                 T* __restrict__ grad_mask) {
  A acc = 0;
  for (int64_t i = threadIdx.x; i < per_frame; i += blockDim.x)
    acc += partials[blockIdx.x * per_frame + i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) grad_mask[blockIdx.x] = from_acc<T>(acc);
}

template <typename T>
cudaError_t forward_typed(const CompositeArgs& a, void* workspace, void* loss, cudaStream_t st) {
  using A = typename Acc<T>::type;
  const Grid g = plan<T>(a);
  const dim3 grid(unsigned(g.blocks_x), unsigned(a.n));
  A* partials = static_cast<A*>(workspace);
  const T *m = static_cast<const T*>(a.mask), *y1 = static_cast<const T*>(a.y1),
          *y2 = static_cast<const T*>(a.y2), *t = static_cast<const T*>(a.target);
  constexpr int V = vector_width<T>();
  if (g.v == V)
    forward_kernel<T, V><<<grid, kThreads, 0, st>>>(m, y1, y2, t, a.c, a.hw, a.mask_per_pixel, a.p,
                                                    partials);
  else
    forward_kernel<T, 1><<<grid, kThreads, 0, st>>>(m, y1, y2, t, a.c, a.hw, a.mask_per_pixel, a.p,
                                                    partials);
  const A inv_count = A(1) / A(double(a.n) * double(a.c) * double(a.hw));
  finish_sum_kernel<T, A><<<1, kThreads, 0, st>>>(partials, a.n * g.blocks_x, inv_count,
                                                  static_cast<T*>(loss));
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward_typed(const CompositeArgs& a, const void* grad, void* gm, void* g1, void* g2,
                           void* workspace, cudaStream_t st) {
  using A = typename Acc<T>::type;
  Grid g = plan<T>(a);
  const int v = vector_width<T>();
  if (g.v == v && !(aligned_to(g1, v * sizeof(T)) && aligned_to(g2, v * sizeof(T)) &&
                    (!a.mask_per_pixel || aligned_to(gm, v * sizeof(T)))))
    g.v = 1;
  const dim3 grid(unsigned(g.blocks_x), unsigned(a.n));
  A* partials = static_cast<A*>(workspace);
  const A inv_count = A(1) / A(double(a.n) * double(a.c) * double(a.hw));
  const T *gr = static_cast<const T*>(grad), *m = static_cast<const T*>(a.mask),
          *y1 = static_cast<const T*>(a.y1), *y2 = static_cast<const T*>(a.y2),
          *t = static_cast<const T*>(a.target);
  T *pm = static_cast<T*>(gm), *p1 = static_cast<T*>(g1), *p2 = static_cast<T*>(g2);
  constexpr int V = vector_width<T>();
  if (g.v == V)
    backward_kernel<T, V><<<grid, kThreads, 0, st>>>(gr, m, y1, y2, t, a.c, a.hw, a.mask_per_pixel,
                                                     a.p, inv_count, pm, p1, p2, partials);
  else
    backward_kernel<T, 1><<<grid, kThreads, 0, st>>>(gr, m, y1, y2, t, a.c, a.hw, a.mask_per_pixel,
                                                     a.p, inv_count, pm, p1, p2, partials);
  if (!a.mask_per_pixel)
    finish_frames_kernel<T, A><<<unsigned(a.n), kThreads, 0, st>>>(partials, g.blocks_x, pm);
  return cudaGetLastError();
}

}  // namespace

int64_t composite_workspace_size(const CompositeArgs& a) {
  // The largest grid any dtype plans (scalar path: v = 1).
  const int64_t max_x = std::max<int64_t>(1, (a.hw + kThreads - 1) / kThreads);
  const int64_t want = std::max<int64_t>(1, 8 * int64_t(multiprocessor_count()) / a.n);
  return a.n * std::min(max_x, want);
}

cudaError_t composite_forward(const CompositeArgs& a, void* workspace, void* loss,
                              cudaStream_t stream) {
  return dispatch(a.dtype, [&](auto tag) {
    return forward_typed<decltype(tag)>(a, workspace, loss, stream);
  });
}

cudaError_t composite_backward(const CompositeArgs& a, const void* grad, void* grad_mask,
                               void* grad_y1, void* grad_y2, void* workspace,
                               cudaStream_t stream) {
  return dispatch(a.dtype, [&](auto tag) {
    return backward_typed<decltype(tag)>(a, grad, grad_mask, grad_y1, grad_y2, workspace, stream);
  });
}

}  // namespace cuda
}  // namespace ddip_video
