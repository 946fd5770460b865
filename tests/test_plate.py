"""The clean plate (ddip_video/tasks/fgbg/plate.py): the scene behind a moving
object, from the frames that see it.

The clips are synthetic, cut from one real frame (tests/data/motion/) by a
panning camera with an object crossing, so the scene behind the object is known
exactly in every frame.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ddip_video.errors import InputError
from ddip_video.tasks.fgbg.options import FgbgOptions
from ddip_video.tasks.fgbg.outputs import run_fgbg
from ddip_video.tasks.fgbg.pick import pick_object
from ddip_video.tasks.fgbg.plate import (CameraPath, Lookahead, PlateBuilder, PlateRenderer, PlateSettings, cover_of,
                                         hole_of)
from ddip_video.video import iter_frames

IMAGE = Path(__file__).parent / "data" / "motion" / "breakdance_00000_360.png"
SIZE = (288, 160)      # w, h: a window of the 360 x 202 image
FRAMES = 16
PAN = 4                # px a frame, to the right
OBJECT = 40            # the crossing object's side, px
OBJECT_STEP = (10, 2)  # px a frame


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def scene() -> dict:
    """A panning shot of a real image with a textured object crossing it: the
    frames, the scene without the object, the object's masks, and the true camera."""
    image = cv2.cvtColor(cv2.imread(str(IMAGE), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    w, h = SIZE
    empty = np.stack([image[20:20 + h, t * PAN:t * PAN + w] for t in range(FRAMES)])
    patch = image[:OBJECT, -OBJECT:].astype(np.int32)
    patch = np.clip(np.stack([255 - patch[..., 0], patch[..., 1], patch[..., 2] // 2], -1), 0, 255).astype(np.uint8)
    frames, masks = empty.copy(), np.zeros(empty.shape[:3], bool)
    for t in range(FRAMES):
        x, y = 30 + t * OBJECT_STEP[0], 60 + t * OBJECT_STEP[1]
        frames[t, y:y + OBJECT, x:x + OBJECT] = patch
        masks[t, y:y + OBJECT, x:x + OBJECT] = True
    # frame t's pixel (x, y) is frame 0's (x + PAN t, y)
    to_first = np.stack([np.array([[1, 0, PAN * t], [0, 1, 0], [0, 0, 1]], np.float64) for t in range(FRAMES)])
    return {"frames": frames, "empty": empty, "masks": masks, "to_first": to_first}


def test_the_fill_is_the_scene_behind_the_object(scene):
    frames, masks = scene["frames"], scene["masks"]
    holes = [hole_of(m.astype(np.float32)) for m in masks]
    renderer = PlateRenderer(CameraPath(scene["to_first"]), None, lambda t: np.zeros((*masks.shape[1:], 3)))
    for t in (0, FRAMES // 2, FRAMES - 1):
        filled = renderer.fill(t, lambda k: frames[k], lambda k: holes[k], range(FRAMES))
        hole = holes[t]
        # exact alignment (whole-pixel pan): the fill is the scene, up to rounding
        assert psnr(filled[hole], scene["empty"][t][hole]) > 40, t
        assert np.array_equal(filled[~hole], frames[t][~hole].astype(np.float32))  # the rest untouched


def test_the_fill_takes_in_what_the_mask_missed_next_to_it(scene):
    """The masks miss the object's right 6 columns in every frame: next to the hole,
    frame t departs there from the median of the frames around it, so that strip is
    filled too (and nothing else is touched), and said so (`taken_in`, which fgbg adds to
    its mask); with the cue off it stays. (Not filled
    exactly: the frames around t miss their own strips, and some of those reach its hole.)"""
    frames, masks = scene["frames"], scene["masks"].copy()
    objects = masks.copy()
    for t in range(FRAMES):
        x = 30 + t * OBJECT_STEP[0]
        masks[t, :, x + OBJECT - 6:x + OBJECT] = False
    holes = [hole_of(m.astype(np.float32)) for m in masks]
    blank = lambda t: np.zeros((*masks.shape[1:], 3))
    with_cue = PlateRenderer(CameraPath(scene["to_first"]), None, blank)
    without = PlateRenderer(CameraPath(scene["to_first"]), None, blank, PlateSettings(departs=1e9))
    for t in (4, FRAMES // 2):
        filled = with_cue.fill(t, lambda k: frames[k], lambda k: holes[k], range(FRAMES))
        missed = objects[t] & ~holes[t]
        assert missed.sum() > 100, t
        assert with_cue.taken_in[missed].mean() > 0.6 and not (with_cue.taken_in & ~objects[t]).any(), t
        untouched = ~(objects[t] | holes[t])
        assert np.array_equal(filled[untouched], frames[t][untouched].astype(np.float32)), t
        plain = without.fill(t, lambda k: frames[k], lambda k: holes[k], range(FRAMES))
        gain = psnr(filled[missed], scene["empty"][t][missed]) - psnr(plain[missed], scene["empty"][t][missed])
        assert gain > 6, (t, gain)


def test_nearer_sources_weigh_more_when_they_match_alike():
    """A still camera; every source matches frame 3 alike around its hole, but what they
    show in it differs with their distance in time: the nearer ones weigh more (each
    source by 1 / (1 + frames apart)), as one homography fits a handheld scene less the
    further apart the frames."""
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = np.stack([scene] * 7)
    inside = {1: 50, 2: 150, 3: 250}  # what a source shows in the hole, by frames apart
    for k in range(7):
        if k != 3:
            frames[k, 16:32, 24:40] = inside[abs(k - 3)]
    holes = [np.zeros((48, 64), bool) for _ in range(7)]
    holes[3][16:32, 24:40] = True
    still = np.stack([np.eye(3)] * 7)
    renderer = PlateRenderer(CameraPath(still), None, lambda t: np.zeros((48, 64, 3)))
    filled = renderer.fill(3, lambda k: frames[k], lambda k: holes[k], range(7))
    weights = {apart: 1 / (1 + apart) for apart in inside}
    expected = sum(weights[d] * v for d, v in inside.items()) / sum(weights.values())  # 126.9; alike: 150
    assert np.allclose(filled[holes[3]], expected, atol=0.5)


def test_the_plate_is_the_whole_scene_in_frame_0s_coordinates(scene):
    frames, masks = scene["frames"], scene["masks"]
    builder = PlateBuilder(scene["to_first"], SIZE)
    for t in range(FRAMES):
        builder.add(t, frames[t], hole_of(masks[t].astype(np.float32)))
    plate, _ = builder.plates()
    w, h = SIZE
    assert plate.origin == (0, 0)
    assert plate.colour.shape == (h, w + PAN * (FRAMES - 1), 3)  # the pan's panorama
    assert plate.seen.all()  # every point was seen free of the object by some frame
    image = cv2.cvtColor(cv2.imread(str(IMAGE), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    truth = image[20:20 + h, :w + PAN * (FRAMES - 1)]
    assert psnr(plate.colour, truth) > 40
    rgba = plate.rgba()
    assert rgba.shape == (h, w + PAN * (FRAMES - 1), 4) and (rgba[..., 3] == 255).all()


def test_what_no_frame_sees_is_transparent_in_the_plate(scene):
    frames = scene["frames"]
    still = np.zeros_like(scene["to_first"]) + np.eye(3)
    object_at = np.zeros(frames.shape[:3], bool)
    object_at[:, 10:30, 10:30] = True  # an object that never moves off its spot
    builder = PlateBuilder(still, SIZE)
    for t in range(FRAMES):
        builder.add(t, frames[t], object_at[t])
    rgba = builder.plates()[1].rgba()
    assert (rgba[10:30, 10:30, 3] == 0).all() and (rgba[40:, 40:, 3] == 255).all()


def test_lookahead_holds_the_neighbours_in_reach():
    reads = []

    def items():
        for i in range(10):
            reads.append(i)
            yield i * 10
    near = Lookahead(items(), reach=2)
    seen = []
    for t in near:
        assert len(reads) == min(10, t + 3)  # read up to t + reach, no further
        assert near.available() == range(max(0, t - 2), min(10, t + 3))
        seen.append([near.get(k) for k in near.available()])
    assert len(seen) == 10 and seen[0] == [0, 10, 20] and seen[-1] == [70, 80, 90]


@pytest.mark.slow
def test_fgbg_background_is_the_scene_where_the_object_was(scene, tmp_path):
    """The whole code path (motion hints, the model's camera path and masks, the
    clean plate) on the synthetic shot: background.mp4 shows the scene behind
    the object, and plate.png the panorama."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(scene["frames"]):
        cv2.imwrite(str(folder / f"{t:03d}.png"), frame[..., ::-1])
    opts = FgbgOptions(device="cpu", max_side=128, iters=20, progress=False)
    result = run_fgbg(folder, tmp_path / "out", opts)
    background = np.stack(list(iter_frames(tmp_path / "out" / "background.mp4")))
    masks = scene["masks"]
    behind = psnr(background[masks], scene["empty"][masks])
    left = psnr(scene["frames"][masks], scene["empty"][masks])  # the object left in place
    assert behind > 28 and behind > left + 10, (behind, left)
    assert psnr(background[~masks], scene["empty"][~masks]) > 33  # the input, through the encoder
    plate = cv2.imread(str(tmp_path / "out" / "plate.png"), cv2.IMREAD_UNCHANGED)
    assert plate.shape[2] == 4 and plate.shape[1] >= SIZE[0] + PAN * (FRAMES - 1) - 4
    assert result.plate_seconds > 0


# ---- --pick: one object of several ----------------------------------------------------


def two_objects(frames: int = 8, size=(96, 64)) -> tuple[torch.Tensor, np.ndarray]:
    """Masks of two squares moving apart (one small, one large), a camera panning 2 px a frame."""
    w, h = size
    masks = torch.zeros(frames, 1, h, w)
    for t in range(frames):
        masks[t, 0, 10:20, 10 + 2 * t:20 + 2 * t] = 1.0      # small, to the right
        masks[t, 0, 30:55, 60 - 2 * t:85 - 2 * t] = 0.9      # large, to the left
    to_first = np.stack([np.array([[1, 0, 2.0 * t], [0, 1, 0], [0, 0, 1]]) for t in range(frames)])
    return masks, to_first


def test_pick_keeps_the_object_under_the_point_in_every_frame():
    masks, to_first = two_objects()
    # the point in input pixels (192 x 128, twice the masks' size): the small square
    picked = pick_object(masks, to_first, (30.0, 30.0), (192, 128))
    for t in range(len(masks)):
        assert picked[t, 0, 10:20, 10 + 2 * t:20 + 2 * t].min() == 1.0, t
        assert picked[t, 0, 30:55].max() == 0.0, t
    largest = pick_object(masks, to_first, "largest", (192, 128))
    assert largest[:, 0, 10:20].max() == 0.0 and largest[:, 0, 30:55].sum() == masks[:, 0, 30:55].sum()
    assert torch.equal(pick_object(masks, to_first, None, (192, 128)), masks)  # the default: every object


def test_pick_outside_the_frame_is_refused():
    masks, to_first = two_objects()
    with pytest.raises(InputError, match="outside the frame"):
        pick_object(masks, to_first, (500.0, 3.0), (192, 128))


def two_planes(count: int = 12) -> dict:
    """Two depth planes past a camera that translates: the far one (the top 60%) slides
    1 px a frame, the near one 3 px. The camera's path is the far plane's; a grey object
    crosses the near plane."""
    image = cv2.cvtColor(cv2.imread(str(IMAGE), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    w, h = SIZE
    split = int(0.6 * h)
    near_texture = np.ascontiguousarray(image[::-1, :, ::-1])
    empty = np.stack([image[20:20 + h, t:t + w] for t in range(count)])
    for t in range(count):
        empty[t, split:] = near_texture[split:h, 3 * t:3 * t + w]
    frames, holes = empty.copy(), np.zeros(empty.shape[:3], bool)
    for t in range(count):
        x = 20 + 16 * t
        frames[t, split + 10:split + 50, x:x + 40] = 128
        holes[t, split + 6:split + 54, x - 4:x + 44] = True
    to_first = np.stack([np.array([[1, 0, t], [0, 1, 0], [0, 0, 1]], np.float64) for t in range(count)])
    return {"frames": frames, "empty": empty, "holes": holes, "to_first": to_first}


def test_the_fill_follows_the_scenes_depth():
    """In the two planes' clip the object leaves a hole that the homography alone fills
    2 px a frame off. With the scene's depth (parallax=True) the fill is the near plane,
    as it is."""
    scene = two_planes()
    frames, empty, holes, to_first = scene["frames"], scene["empty"], scene["holes"], scene["to_first"]
    count, (w, h) = len(frames), SIZE
    scores = {}
    for parallax in (False, True):
        renderer = PlateRenderer(CameraPath(to_first), None, lambda t: np.zeros((h, w, 3)), parallax=parallax)
        t = count // 2
        filled = renderer.fill(t, lambda k: frames[k], lambda k: holes[k], range(count))
        scores[parallax] = psnr(filled[holes[t]], empty[t][holes[t]])
        assert np.array_equal(filled[~holes[t]], frames[t][~holes[t]].astype(np.float32))
    # measured: 25.4 dB with the depth, 15.6 without (the flow, at half size, blurs the
    # planes' edge just above the hole)
    assert scores[True] > 23 and scores[True] > scores[False] + 8


def test_the_plate_follows_the_scenes_depth():
    """plate.png of the two planes' clip, in the first frame's coordinates: with the
    homographies alone the near plane of every later frame lands 2 px a frame off and
    the median smears it; following the depth, the plate shows the first frame's scene."""
    scene = two_planes()
    frames, empty, holes, to_first = scene["frames"], scene["empty"], scene["holes"], scene["to_first"]
    w, h = SIZE
    scores = {}
    for parallax in (False, True):
        builder = PlateBuilder(to_first, SIZE, parallax=parallax)
        for t in range(len(frames)):
            builder.add(t, frames[t], holes[t])
        for_fill, written = builder.plates()
        x0, y0 = written.origin
        view, seen = written.colour[-y0:h - y0, -x0:w - x0], written.seen[-y0:h - y0, -x0:w - x0]
        scores[parallax] = psnr(view[seen], empty[0][seen])
        assert seen[~holes[0]].all()
        if not parallax:
            assert for_fill is written
    # measured: 26.0 dB following the depth, 18.0 without (the flow, at half size, blurs
    # the planes' edge)
    assert scores[True] > 23 and scores[True] > scores[False] + 6


def test_a_source_is_trusted_where_its_mask_says_scene():
    """What a frame's fill must replace (its hole: the mask above 0.25, grown 2 px at 480
    lines) is more than what it cannot give other frames (its cover: above 0.5, grown
    1 px): the soft edge is removed, yet it shows the scene to the others."""
    mask = np.zeros((480, 640), np.float32)
    mask[200:280, 300:380] = 1.0
    mask[190:200, 300:380] = 0.4   # the soft edge above
    hole, cover = hole_of(mask), cover_of(mask)
    assert hole[189:282, 300:380].all() and not hole[186, 340] and not hole[200:280, 383].any()
    assert cover[199:281, 300:380].all() and not cover[197, 340]
    assert not (cover & ~hole).any()
