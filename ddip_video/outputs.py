"""What every task writes besides its own layers: the layer videos' writer, set
up from the input's VideoInfo, and the contact sheet (preview.png)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from .video import ColourTags, StreamingWriter, VideoInfo, save_png, to_uint8


def layer_writer(path, info: VideoInfo, kind: str, audio_from=None, quality: int = 18) -> StreamingWriter:
    """A writer for an output video of the clip `info` describes: its frame rate, size,
    start timecode, pixel aspect ratio and colour tags, so that an editor lines the two
    up and shows them alike, and its chroma resolution (4:4:4 stays 4:4:4). `quality`:
    the H.264 CRF. A context manager: closed on success, aborted (its partial
    file removed) on an error, so that writers opened in one ExitStack leave no thread
    or file behind whichever of them fails."""
    return StreamingWriter(path, info.fps, (info.width, info.height), kind, audio_from=audio_from, quality=quality,
                           timecode=info.timecode, pixel_aspect=info.pixel_aspect, colour=info.colour,
                           full_chroma=info.full_chroma)


def write_contact_sheet(path: Path, rows: list[list[torch.Tensor]], labels: list[str],
                        tile_width: int = 320, pixel_aspect: Fraction = Fraction(1),
                        colour: ColourTags = ColourTags()) -> None:
    """rows: per sampled frame, one C x H x W image per column. pixel_aspect
    (a pixel's width over its height, as the video is shown): the tiles take
    the shape a player shows, so an anamorphic clip is not drawn squeezed.
    colour: the frames' tags, which the PNG carries (an HDR clip's curve)."""
    tiles = []
    for row in rows:
        images = [to_uint8(img) for img in row]
        shown_width = images[0].shape[1] * float(pixel_aspect)
        height = max(1, round(images[0].shape[0] * tile_width / shown_width))
        tiles.append(np.concatenate([cv2.resize(im, (tile_width, height), interpolation=cv2.INTER_AREA)
                                     for im in images], axis=1))
    header = np.full((28, tiles[0].shape[1], 3), 255, np.uint8)
    for i, label in enumerate(labels):
        cv2.putText(header, label, (i * tile_width + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                    cv2.LINE_AA)
    sheet = np.concatenate([header] + tiles, axis=0)
    save_png(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), colour)


def sample_frames(num_frames: int, count: int = 4) -> list[int]:
    """`count` frames spread evenly over the clip, the first and the last among them."""
    return sorted({round(i * (num_frames - 1) / max(1, count - 1)) for i in range(count)})
