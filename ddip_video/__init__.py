"""ddip-video: split a video into layers with a temporally coupled Double-DIP."""

__version__ = "0.1.0"

from . import ops  # noqa: E402,F401  (loads the kernels and registers their autograd)
