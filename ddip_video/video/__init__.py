"""Video input and output: decoding, a streaming writer, and all-or-nothing output folders."""

from ddip_video.video.colour import ColourTags
from ddip_video.video.convert import frame_to_tensor, frames_to_uint8, to_uint8
from ddip_video.video.output import StagedOutputDir
from ddip_video.video.reader import VideoInfo, iter_frames, probe, read_video, resize_frames, working_size
from ddip_video.video.writer import StreamingWriter, save_png

__all__ = [
    "VideoInfo",
    "ColourTags",
    "probe",
    "iter_frames",
    "read_video",
    "working_size",
    "resize_frames",
    "StreamingWriter",
    "save_png",
    "frame_to_tensor",
    "frames_to_uint8",
    "to_uint8",
    "StagedOutputDir",
]
