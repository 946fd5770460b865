"""Builds ddip_video._C, the C++ (and, where torch has CUDA, CUDA) operators.

The schemas live in csrc/ops.cpp; csrc/cpu holds the CPU kernels; csrc/cuda
holds toolkit-only kernels (*_kernel.cu) and their torch glue (*_cuda.cpp).
Set DDIP_VIDEO_CPU_ONLY=1 to skip the CUDA kernels on a machine that has them.
"""
import glob
import os

from setuptools import setup
from torch.utils import cpp_extension


def want_cuda() -> bool:
    if os.environ.get("DDIP_VIDEO_CPU_ONLY", "0") not in ("", "0"):
        return False
    import torch

    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def extension():
    root = os.path.dirname(os.path.abspath(__file__))
    rel = lambda pattern: sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, pattern)))
    sources = ["csrc/ops.cpp", "csrc/module.cpp"] + rel("csrc/cpu/*.cpp")
    cxx = ["-O3", "-fopenmp"]  # the C++ standard: whatever this torch asks for
    include_dirs = [os.path.join(root, "csrc", "include")]
    if want_cuda():
        sources += rel("csrc/cuda/*.cu") + rel("csrc/cuda/*_cuda.cpp")
        return cpp_extension.CUDAExtension(
            "ddip_video._C",
            sources,
            include_dirs=include_dirs,
            define_macros=[("DDIP_VIDEO_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]},
            extra_link_args=["-fopenmp"],
        )
    return cpp_extension.CppExtension(
        "ddip_video._C",
        sources,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
