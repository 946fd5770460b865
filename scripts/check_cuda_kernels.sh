#!/usr/bin/env bash
# Compiles every CUDA kernel file (csrc/cuda/*.cu: CUDA toolkit only, no torch)
# with nvcc for Hopper, so a kernel that does not compile fails CI on machines
# without a GPU too. NVCC_ARCHS overrides the targets.
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$nvcc" ] || { echo "check_cuda_kernels: nvcc not found (set NVCC)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for arch in ${NVCC_ARCHS:-sm_90}; do
  for src in csrc/cuda/*.cu; do
    # the same half-precision restrictions as torch's extension build
    "$nvcc" -std=c++17 -O3 -arch="$arch" -Icsrc/include -Werror all-warnings \
      -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ \
      -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ \
      -c "$src" -o "$out/$(basename "$src").$arch.o"
    echo "nvcc $arch: $src ok"
  done
done
