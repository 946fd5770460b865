"""What the clean plate's targets ask of the masks: `removal.py`'s clips filled with
masks made from the truth, by `fgbg`'s own renderer and by an oracle, per clip.

    python -m benchmarks.oracle_removal [--tools ../shared/tools/removal.py] [--data DIR]
                                        [--clips NAME ...] [--json F]

Two kinds of mask, both from the truth: *objects*, the pasted object and the clip's own
(dilated 4 px, as removal.py's references take them); and *moving*, those together with
whatever moves in the clip's own background (a crowd, water): pixels of the true
background that differ from it 3 frames before and after, aligned by the camera, by
more than `level` grey levels (both ways; opened 3x3). `moving` is what a mask holds
when it takes every thing that moves against the scene (issue 26's point 5), the truth
of the benchmark calling some of it background.

Each is filled (hole and sources' exclusion alike, the camera path the motion hints',
scored uncoded, so that the layers' coding does not count) by:
- *renderer*: `tasks/fgbg/plate.py` at its defaults (PlateBuilder, PlateRenderer; what
  no frame sees, Telea inpainting);
- *oracle*: per pixel of the mask, the one other frame (aligned by the camera path, where
  the mask does not hold it) closest to the truth: an upper bound for any fill that
  copies from the clip's other frames through one homography each.

The renderer on `objects` says what the fill scores once the masks are right; the oracle
on `moving` what the rest can score at most while the masks hold what moves. No model is
fitted: a few minutes in all on 2 CPU threads.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks.eval_removal import DEFAULT_TOOL, load_tool, make_clips
from ddip_video.analysis.motion import camera_motion
from ddip_video.tasks.fgbg.plate import CameraPath, PlateBuilder, PlateRenderer, PlateSettings
from ddip_video.tasks.fgbg.separate import HINT_SIDE, rescale_homographies
from ddip_video.video.reader import working_size

SPAN = 3  # frames between the background and what it is compared with
MOVING_LEVELS = ((25, 4), (60, 0))  # (grey levels, px the result is grown) for `moving`


def camera_path(frames: np.ndarray) -> CameraPath:
    """The motion hints' camera path (found at their working size), at the frames' size."""
    h, w = frames.shape[1:3]
    small = working_size(w, h, HINT_SIDE)
    resized = np.stack([cv2.resize(f, small, interpolation=cv2.INTER_AREA) for f in frames])
    return CameraPath(rescale_homographies(camera_motion(resized), small, (w, h)))


def object_masks(truth: dict) -> np.ndarray:
    kernel = np.ones((9, 9), np.uint8)
    return np.stack([cv2.dilate(((p > 0.01) | o).astype(np.uint8), kernel) > 0
                     for p, o in zip(truth["paste"], truth["own"])])


def moving_background(background: np.ndarray, path: CameraPath, level: float, grow: int) -> np.ndarray:
    """Where the true background differs from itself SPAN frames before and after (aligned)."""
    count, h, w = background.shape[:3]
    out = np.zeros((count, h, w), bool)
    for t in range(count):
        least = np.full((h, w), np.inf, np.float32)
        for k in (t - SPAN, t + SPAN):
            if not 0 <= k < count:
                continue
            homography = path.between(k, t)
            warped = cv2.warpPerspective(background[k], homography, (w, h), flags=cv2.INTER_LINEAR)
            inside = cv2.warpPerspective(np.ones((h, w), np.uint8), homography, (w, h), flags=cv2.INTER_NEAREST) > 0
            diff = np.abs(warped.astype(np.float32) - background[t]).mean(-1)
            least = np.minimum(least, np.where(inside, diff, np.inf))
        moved = cv2.morphologyEx(((least > level) & np.isfinite(least)).astype(np.uint8), cv2.MORPH_OPEN,
                                 np.ones((3, 3), np.uint8))
        out[t] = cv2.dilate(moved, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0
    return out


def renderer_fill(frames: np.ndarray, masks: np.ndarray, path: CameraPath) -> np.ndarray:
    count, h, w = masks.shape
    settings = PlateSettings()
    builder = PlateBuilder(path.to_first, (w, h), settings)
    for t in range(count):
        builder.add(t, frames[t], masks[t])
    inpainted = lambda t: cv2.inpaint(frames[t], masks[t].astype(np.uint8), 5, cv2.INPAINT_TELEA).astype(np.float32)
    renderer = PlateRenderer(path, builder.plates()[0], inpainted, settings)
    fill = lambda t: renderer.fill(t, lambda k: frames[k], lambda k: masks[k], range(count))
    return np.stack([np.clip(fill(t) + 0.5, 0, 255).astype(np.uint8) for t in range(count)])


def oracle_fill(frames: np.ndarray, masks: np.ndarray, path: CameraPath, background: np.ndarray) -> np.ndarray:
    count, h, w = masks.shape
    out = frames.copy()
    for t in range(count):
        best = np.full((h, w), np.inf, np.float32)
        for k in range(count):
            if k == t:
                continue
            homography = path.between(k, t)
            warped = cv2.warpPerspective(frames[k], homography, (w, h), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
            seen = cv2.warpPerspective((~masks[k]).astype(np.uint8), homography, (w, h),
                                       flags=cv2.INTER_NEAREST) > 0
            error = ((warped.astype(np.float32) - background[t]) ** 2).mean(-1)
            better = masks[t] & seen & (error < best)
            best[better] = error[better]
            out[t][better] = warped[better]
    return out


def evaluate_clip(tool, clip: Path) -> dict:
    truth = dict(np.load(clip / "truth.npz"))
    frames = tool.read_video(str(clip / "input.mp4"))
    path = camera_path(frames)
    _, rest = tool.regions(truth["paste"], truth["own"])
    objects = object_masks(truth)
    row = {"clip": clip.name,
           "renderer objects": tool.score(renderer_fill(frames, objects, path), truth),
           "oracle objects": tool.score(oracle_fill(frames, objects, path, truth["bg"]), truth)}
    for level, grow in MOVING_LEVELS:
        moving = objects | moving_background(truth["bg"], path, level, grow)
        name = f"moving {level}"
        row[f"{name} share of rest"] = float(moving[rest].mean())
        row[f"renderer {name}"] = tool.score(renderer_fill(frames, moving, path), truth)
        row[f"oracle {name}"] = tool.score(oracle_fill(frames, moving, path, truth["bg"]), truth)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", type=Path, default=DEFAULT_TOOL, help="removal.py")
    parser.add_argument("--data", type=Path, default=None, help="DAVIS data (default: the tool's)")
    parser.add_argument("--clips", nargs="+", help="only these clips (e.g. dog+car-shadow)")
    parser.add_argument("--json", type=Path, help="write the per-clip figures here")
    args = parser.parse_args()
    tool = load_tool(args.tools)
    data = args.data or args.tools.resolve().parent.parent / "data" / "davis2016"
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for clip in make_clips(tool, data, Path(work), args.clips):
            row = evaluate_clip(tool, clip)
            rows.append(row)
            print(row["clip"], flush=True)
            for key, value in row.items():
                if key != "clip":
                    print(f"  {key:32} " + (f"{value[0]:6.2f} / {value[1]:6.2f}" if isinstance(value, tuple)
                                             else f"{value:.4f}"), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
