"""ddip-video: split a video into layers with a temporally coupled Double-DIP.

Importing the package loads nothing heavy (the CLI's --help and --version stay
quick); ddip_video.ops loads the kernels when a task first uses them.
"""

__version__ = "0.1.0"
