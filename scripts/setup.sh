#!/usr/bin/env bash
# Sets up .venv with everything ddip-video needs and builds its C++ (and, where
# torch has CUDA, CUDA) kernels. Safe to run again: it only adds what is missing.
#   TORCH_SPEC   the torch to install when the venv has none (default torch==2.13.0:
#                on the project's machines a local CPU build; elsewhere PyPI's)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
# torch first and alone: a later unpinned 'torch' requirement must find it installed
.venv/bin/python -c "import torch" 2>/dev/null || pip install -q "${TORCH_SPEC:-torch==2.13.0}"
pip install -q "setuptools>=64" wheel ninja pybind11 av numpy opencv-python-headless tqdm pytest
pip install -q --no-build-isolation --no-deps -e .
.venv/bin/python -c "import ddip_video.ops as o; print('ddip-video ready: C++ kernels', 'built' if o.KERNELS_BUILT else 'NOT built', '| CUDA kernels', 'built' if o.CUDA_KERNELS_BUILT else 'not built')"
