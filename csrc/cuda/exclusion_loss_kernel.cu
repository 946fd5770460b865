// Exclusion loss on CUDA, one launch per pyramid level and pass.
//
// A thread owns one column of a block of kRows rows and walks down it, so
// every input value is loaded once: the right neighbour comes from the next
// lane by a warp shuffle, the row below is the next step's row. The forward
// adds the 9 + 9 channel-pair products in registers, reduces them per block
// (partials summed in a fixed order by a last small kernel: deterministic)
// and writes the next 2x2 pooled level. The backward runs coarse to fine;
// each level adds the coarser level's gradient spread back through the pooling.
#include <algorithm>
#include <vector>

#include "common.cuh"
#include "ddip_video/math.h"
#include "kernels.h"

namespace ddip_video {
namespace cuda {
namespace {

constexpr int kRows = 32;                  // rows a thread walks
constexpr int kWarps = 4;                  // warps per block, side by side in x
constexpr int kThreads = kWarps * kWarp;
constexpr int kFwdCols = kThreads;         // forward: a lane per column
constexpr int kBwdCols = kWarps * (kWarp - 1);  // backward: lane 0 only feeds lane 1

struct LevelGeom {
  int h, w;
  int64_t pyramid_offset;  // of this level in the pyramid buffers (levels >= 1)
};

std::vector<LevelGeom> level_geometry(const ExclusionArgs& args) {
  std::vector<LevelGeom> g;
  int h = int(args.h), w = int(args.w);
  int64_t off = 0;
  for (int l = 0; l < args.levels; ++l) {
    g.push_back({h, w, off});
    if (l > 0) off += args.n * 3 * int64_t(h) * w;
    h /= 2;
    w /= 2;
  }
  return g;
}

dim3 forward_grid(const LevelGeom& g, int64_t n) {
  return dim3(unsigned((g.w + kFwdCols - 1) / kFwdCols), unsigned((g.h + kRows - 1) / kRows),
              unsigned(n));
}

dim3 backward_grid(const LevelGeom& g, int64_t n) {
  return dim3(unsigned((g.w + kBwdCols - 1) / kBwdCols), unsigned((g.h + kRows - 1) / kRows),
              unsigned(n));
}

int64_t blocks(const dim3& d) { return int64_t(d.x) * d.y * d.z; }

// The six planes (a channels 0-2, then b channels 0-2) of frame n.
template <typename S>
struct Planes {
  const S* p[6];
  __device__ Planes(const S* a, const S* b, int64_t n, int64_t plane) {
#pragma unroll
    for (int c = 0; c < 3; ++c) {
      p[c] = a + (n * 3 + c) * plane;
      p[3 + c] = b + (n * 3 + c) * plane;
    }
  }
  template <typename A>
  __device__ void load_row(A out[6], int64_t offset) const {
#pragma unroll
    for (int k = 0; k < 6; ++k) out[k] = to_acc(p[k][offset]);
  }
};

// Squashed differences (to - from) of the six planes.
template <typename A>
__device__ __forceinline__ void squash6(const A from[6], const A to[6], A sa[3], A sb[3]) {
#pragma unroll
  for (int c = 0; c < 3; ++c) {
    sa[c] = squash(to[c] - from[c]);
    sb[c] = squash(to[3 + c] - from[3 + c]);
  }
}

// Values of the next column: from the next lane; the last lane loads them.
template <typename S, typename A>
__device__ __forceinline__ void right_neighbours(const Planes<S>& planes, const A cur[6], A right[6],
                                                 int64_t row_offset, int x_right, int lane) {
#pragma unroll
  for (int k = 0; k < 6; ++k) right[k] = __shfl_down_sync(0xffffffffu, cur[k], 1);
  if (lane == kWarp - 1) planes.load_row(right, row_offset + x_right);
}

template <typename A>
__device__ void store_block_sums(A acc[18], A* out) {
  __shared__ A warp_sums[kWarps][18];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
#pragma unroll
  for (int k = 0; k < 18; ++k) {
    A v = acc[k];
    for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) warp_sums[warp][k] = v;
  }
  __syncthreads();
  if (threadIdx.x < 18) {
    A v = 0;
    for (int w = 0; w < kWarps; ++w) v += warp_sums[w][threadIdx.x];
    out[threadIdx.x] = v;
  }
}

template <typename S, typename A>
__global__ void __launch_bounds__(kThreads) forward_level_kernel(
    const S* __restrict__ a, const S* __restrict__ b, int h, int w, A* __restrict__ pool_a,
    A* __restrict__ pool_b, A* __restrict__ partials) {
  const int lane = threadIdx.x % kWarp;
  const int x = blockIdx.x * kFwdCols + threadIdx.x;
  const int y0 = blockIdx.y * kRows, y_end = min(y0 + kRows, h);
  const int64_t n = blockIdx.z, plane = int64_t(h) * w;
  const int xc = min(x, w - 1), x_right = min(x + 1, w - 1);
  const bool has_right = x + 1 < w, in_x = x < w;
  const int ph = h / 2, pw = w / 2;
  const bool pools = pool_a != nullptr && x % 2 == 0 && x / 2 < pw;
  const Planes<S> planes(a, b, n, plane);

  A acc[18];
#pragma unroll
  for (int k = 0; k < 18; ++k) acc[k] = 0;
  A cur[6], down[6], right[6], sa[3], sb[3];
  planes.load_row(cur, int64_t(y0) * w + xc);
  for (int y = y0; y < y_end; ++y) {
    const bool has_down = y + 1 < h;  // the same for the whole warp
    if (has_down) planes.load_row(down, int64_t(y + 1) * w + xc);
    right_neighbours(planes, cur, right, int64_t(y) * w, x_right, lane);
    if (has_right) {
      squash6(cur, right, sa, sb);
      add_pair_products(sa, sb, acc);
    }
    if (has_down && in_x) {
      squash6(cur, down, sa, sb);
      add_pair_products(sa, sb, acc + 9);
    }
    if (y % 2 == 0 && y / 2 < ph) {  // y + 1 < h: down is loaded
      A down_right[6];
#pragma unroll
      for (int k = 0; k < 6; ++k) down_right[k] = __shfl_down_sync(0xffffffffu, down[k], 1);
      if (pools) {
        const int64_t at = int64_t(y / 2) * pw + x / 2, pplane = int64_t(ph) * pw;
#pragma unroll
        for (int c = 0; c < 3; ++c) {
          pool_a[(n * 3 + c) * pplane + at] = A(0.25) * (cur[c] + right[c] + down[c] + down_right[c]);
          pool_b[(n * 3 + c) * pplane + at] =
              A(0.25) * (cur[3 + c] + right[3 + c] + down[3 + c] + down_right[3 + c]);
        }
      }
    }
#pragma unroll
    for (int k = 0; k < 6; ++k) cur[k] = down[k];
  }
  const int64_t block = (int64_t(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  store_block_sums(acc, partials + block * 18);
}

struct FinishArgs {
  int levels;
  int64_t partial_offset[16], partial_blocks[16];  // per level, in blocks of 18
  double count[16][2];                             // differences per level and direction
};

// One warp per (direction, pair): sums the partials of every level in a fixed
// order, writes the means and the loss.
template <typename T, typename A>
__global__ void __launch_bounds__(18 * kWarp) forward_finish_kernel(const A* __restrict__ partials,
                                                                    FinishArgs f, A* __restrict__ means,
                                                                    T* __restrict__ loss) {
  const int lane = threadIdx.x % kWarp, k = threadIdx.x / kWarp;
  __shared__ A root_sum[18];
  A total = 0;  // every thread accumulates the same value; thread 0's is used
  for (int l = 0; l < f.levels; ++l) {
    A v = 0;
    for (int64_t i = lane; i < f.partial_blocks[l]; i += kWarp) v += partials[(f.partial_offset[l] + i) * 18 + k];
    for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) {
      const A mean = v / A(f.count[l][k / 9]);
      means[l * 18 + k] = mean;
      root_sum[k] = pow(mean, A(0.25));
    }
    __syncthreads();
    if (threadIdx.x == 0)
      for (int q = 0; q < 18; ++q) total += root_sum[q];
    __syncthreads();
  }
  if (threadIdx.x == 0) loss[0] = from_acc<T>(total / A(18 * f.levels));
}

// K[l][q] = d loss / d (sum of products q at level l).
template <typename T, typename A>
__global__ void coefficients_kernel(const T* __restrict__ grad, const A* __restrict__ means,
                                    FinishArgs f, A* __restrict__ k) {
  const int i = threadIdx.x;
  if (i >= 18 * f.levels) return;
  const int l = i / 18, q = i % 18;
  k[i] = to_acc(grad[0]) * A(0.25) * pow(means[i], A(-0.75)) / A(18 * f.levels) /
         A(f.count[l][q / 9]);
}

template <typename S, typename A, typename O>
__global__ void __launch_bounds__(kThreads) backward_level_kernel(
    const S* __restrict__ a, const S* __restrict__ b, int h, int w, const A* __restrict__ k,
    const A* __restrict__ coarse_a, const A* __restrict__ coarse_b, O* __restrict__ out_a,
    O* __restrict__ out_b) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  // Lane 0 sits one column left of the warp's outputs: it only supplies the
  // gradient of the difference between that column and the first output.
  const int x = blockIdx.x * kBwdCols + warp * (kWarp - 1) + lane - 1;
  const int y0 = blockIdx.y * kRows, y_end = min(y0 + kRows, h);
  const int64_t n = blockIdx.z, plane = int64_t(h) * w;
  const int xc = max(0, min(x, w - 1)), x_right = max(0, min(x + 1, w - 1));
  const bool in_x = x >= 0 && x < w, has_right = in_x && x + 1 < w, writes = lane > 0 && in_x;
  const int ch = h / 2, cw = w / 2;
  const Planes<S> planes(a, b, n, plane);
  A kx[9], ky[9];
#pragma unroll
  for (int q = 0; q < 9; ++q) kx[q] = k[q], ky[q] = k[9 + q];

  A cur[6], down[6], right[6], gx[6], gy[6], gy_above[6], sa[3], sb[3];
  // y-difference gradients between rows y and y + 1 (zero past the last row)
  auto y_grads = [&](const A top[6], const A bottom[6], bool exists, A out[6]) {
    if (exists && in_x) {
      squash6(top, bottom, sa, sb);
      pair_grads(sa, sb, ky, out, out + 3);
    } else {
#pragma unroll
      for (int q = 0; q < 6; ++q) out[q] = 0;
    }
  };
  planes.load_row(cur, int64_t(y0) * w + xc);
  if (y0 > 0) {
    A above[6];
    planes.load_row(above, int64_t(y0 - 1) * w + xc);
    y_grads(above, cur, true, gy_above);
  } else {
#pragma unroll
    for (int q = 0; q < 6; ++q) gy_above[q] = 0;
  }
  for (int y = y0; y < y_end; ++y) {
    const bool has_down = y + 1 < h;
    if (has_down) planes.load_row(down, int64_t(y + 1) * w + xc);
    right_neighbours(planes, cur, right, int64_t(y) * w, x_right, lane);
    if (has_right) {
      squash6(cur, right, sa, sb);
      pair_grads(sa, sb, kx, gx, gx + 3);
    } else {
#pragma unroll
      for (int q = 0; q < 6; ++q) gx[q] = 0;
    }
    y_grads(cur, down, has_down, gy);
    A gx_left[6];
#pragma unroll
    for (int q = 0; q < 6; ++q) gx_left[q] = __shfl_up_sync(0xffffffffu, gx[q], 1);
    if (writes) {
      const bool coarse = coarse_a != nullptr && y / 2 < ch && x / 2 < cw;
      const int64_t cat = int64_t(y / 2) * cw + x / 2, cplane = int64_t(ch) * cw;
#pragma unroll
      for (int c = 0; c < 3; ++c) {
        A va = gx_left[c] - gx[c] + gy_above[c] - gy[c];
        A vb = gx_left[3 + c] - gx[3 + c] + gy_above[3 + c] - gy[3 + c];
        if (coarse) {
          va += A(0.25) * coarse_a[(n * 3 + c) * cplane + cat];
          vb += A(0.25) * coarse_b[(n * 3 + c) * cplane + cat];
        }
        const int64_t at = (n * 3 + c) * plane + int64_t(y) * w + x;
        out_a[at] = from_acc<O>(va);
        out_b[at] = from_acc<O>(vb);
      }
    }
#pragma unroll
    for (int q = 0; q < 6; ++q) gy_above[q] = gy[q], cur[q] = down[q];
  }
}

FinishArgs finish_args(const ExclusionArgs& args, const std::vector<LevelGeom>& geom) {
  FinishArgs f{};
  f.levels = args.levels;
  int64_t off = 0;
  for (int l = 0; l < args.levels; ++l) {
    f.partial_offset[l] = off;
    f.partial_blocks[l] = blocks(forward_grid(geom[l], args.n));
    off += f.partial_blocks[l];
    f.count[l][0] = double(args.n) * geom[l].h * (geom[l].w - 1);
    f.count[l][1] = double(args.n) * (geom[l].h - 1) * geom[l].w;
  }
  return f;
}

template <typename T>
cudaError_t forward_typed(const ExclusionArgs& args, void* loss, void* means, void* pyramid_a,
                          void* pyramid_b, void* workspace, cudaStream_t st) {
  using A = typename Acc<T>::type;
  const std::vector<LevelGeom> geom = level_geometry(args);
  const FinishArgs f = finish_args(args, geom);
  A* partials = static_cast<A*>(workspace);
  A *pa = static_cast<A*>(pyramid_a), *pb = static_cast<A*>(pyramid_b);
  for (int l = 0; l < args.levels; ++l) {
    const LevelGeom& g = geom[l];
    A* next_a = l + 1 < args.levels ? pa + geom[l + 1].pyramid_offset : nullptr;
    A* next_b = l + 1 < args.levels ? pb + geom[l + 1].pyramid_offset : nullptr;
    A* part = partials + f.partial_offset[l] * 18;
    if (l == 0)
      forward_level_kernel<T, A><<<forward_grid(g, args.n), kThreads, 0, st>>>(
          static_cast<const T*>(args.a), static_cast<const T*>(args.b), g.h, g.w, next_a, next_b, part);
    else
      forward_level_kernel<A, A><<<forward_grid(g, args.n), kThreads, 0, st>>>(
          pa + g.pyramid_offset, pb + g.pyramid_offset, g.h, g.w, next_a, next_b, part);
  }
  forward_finish_kernel<T, A><<<1, 18 * kWarp, 0, st>>>(partials, f, static_cast<A*>(means),
                                                        static_cast<T*>(loss));
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward_typed(const ExclusionArgs& args, const void* grad, const void* means,
                           const void* pyramid_a, const void* pyramid_b, void* grad_a, void* grad_b,
                           void* workspace, cudaStream_t st) {
  using A = typename Acc<T>::type;
  const std::vector<LevelGeom> geom = level_geometry(args);
  const FinishArgs f = finish_args(args, geom);
  const int64_t pyramid = geom.size() > 1 ? exclusion_pyramid_size(args) : 0;
  A* k = static_cast<A*>(workspace);
  A* scratch_a = k + 18 * args.levels;  // gradients of levels 1 .. L-1
  A* scratch_b = scratch_a + pyramid;
  coefficients_kernel<T, A><<<1, 18 * 16, 0, st>>>(static_cast<const T*>(grad),
                                                   static_cast<const A*>(means), f, k);
  const A *pa = static_cast<const A*>(pyramid_a), *pb = static_cast<const A*>(pyramid_b);
  for (int l = args.levels - 1; l >= 0; --l) {
    const LevelGeom& g = geom[l];
    const A* ca = l + 1 < args.levels ? scratch_a + geom[l + 1].pyramid_offset : nullptr;
    const A* cb = l + 1 < args.levels ? scratch_b + geom[l + 1].pyramid_offset : nullptr;
    const A* kl = k + 18 * l;
    if (l == 0)
      backward_level_kernel<T, A, T><<<backward_grid(g, args.n), kThreads, 0, st>>>(
          static_cast<const T*>(args.a), static_cast<const T*>(args.b), g.h, g.w, kl, ca, cb,
          static_cast<T*>(grad_a), static_cast<T*>(grad_b));
    else
      backward_level_kernel<A, A, A><<<backward_grid(g, args.n), kThreads, 0, st>>>(
          pa + g.pyramid_offset, pb + g.pyramid_offset, g.h, g.w, kl, ca, cb,
          scratch_a + g.pyramid_offset, scratch_b + g.pyramid_offset);
  }
  return cudaGetLastError();
}

}  // namespace

int64_t exclusion_pyramid_size(const ExclusionArgs& args) {
  const std::vector<LevelGeom> geom = level_geometry(args);
  int64_t total = 0;
  for (size_t l = 1; l < geom.size(); ++l) total += args.n * 3 * int64_t(geom[l].h) * geom[l].w;
  return total;
}

int64_t exclusion_forward_workspace_size(const ExclusionArgs& args) {
  const std::vector<LevelGeom> geom = level_geometry(args);
  int64_t total = 0;
  for (const LevelGeom& g : geom) total += blocks(forward_grid(g, args.n));
  return total * 18;
}

int64_t exclusion_backward_workspace_size(const ExclusionArgs& args) {
  return 18 * int64_t(args.levels) + 2 * exclusion_pyramid_size(args);
}

cudaError_t exclusion_forward(const ExclusionArgs& args, void* loss, void* means, void* pyramid_a,
                              void* pyramid_b, void* workspace, cudaStream_t stream) {
  if (args.levels < 1 || args.levels > 16) return cudaErrorInvalidValue;
  return dispatch(args.dtype, [&](auto tag) {
    return forward_typed<decltype(tag)>(args, loss, means, pyramid_a, pyramid_b, workspace, stream);
  });
}

cudaError_t exclusion_backward(const ExclusionArgs& args, const void* grad, const void* means,
                               const void* pyramid_a, const void* pyramid_b, void* grad_a,
                               void* grad_b, void* workspace, cudaStream_t stream) {
  if (args.levels < 1 || args.levels > 16) return cudaErrorInvalidValue;
  return dispatch(args.dtype, [&](auto tag) {
    return backward_typed<decltype(tag)>(args, grad, means, pyramid_a, pyramid_b, grad_a, grad_b,
                                         workspace, stream);
  });
}

}  // namespace cuda
}  // namespace ddip_video
