"""Tests for the segmentation scores and the classic-vision motion hints.

The clips are synthetic, cut from one real frame (tests/data/motion/), so the camera
motion and the foreground are known exactly.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.baselines import plain_motion_hints
from benchmarks.metrics import cdnet_f_measure, jaccard, mean_jaccard
from ddip_video.analysis.motion import (CHANGE_LEVEL, MotionHints, camera_motion, change_to_background, hint_steps,
                                        motion_hints)

IMAGE = Path(__file__).parent / "data" / "motion" / "breakdance_00000_360.png"
CLIP_SIZE = (288, 160)  # w, h: a window of the 360 x 202 image, so a pan stays inside it


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    bgr = cv2.imread(str(IMAGE), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing test image {IMAGE}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def window(image: np.ndarray, x: int, y: int) -> np.ndarray:
    w, h = CLIP_SIZE
    return image[y : y + h, x : x + w].copy()


def panning_clip(image: np.ndarray, offsets: list[tuple[int, int]]) -> np.ndarray:
    """Frame t shows the image from (x_t, y_t): its pixel (x, y) is frame 0's (x + x_t - x_0, ...)."""
    return np.stack([window(image, x, y) for x, y in offsets])


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)


def map_point(homography: np.ndarray, x: float, y: float) -> np.ndarray:
    p = homography @ np.array([x, y, 1.0])
    return p[:2] / p[2]


def corner_error(found: np.ndarray, true: np.ndarray, w: int, h: int) -> float:
    corners = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w / 2, h / 2)]
    return max(np.abs(map_point(found, x, y) - map_point(true, x, y)).max() for x, y in corners)


def with_moving_patch(clip: np.ndarray, patch: np.ndarray, start: tuple[int, int], step: tuple[int, int]):
    """Paste `patch` at start + t * step in frame t; returns the clip and the true masks."""
    clip = clip.copy()
    masks = np.zeros(clip.shape[:3], bool)
    ph, pw = patch.shape[:2]
    for t in range(len(clip)):
        x, y = start[0] + t * step[0], start[1] + t * step[1]
        clip[t, y : y + ph, x : x + pw] = patch
        masks[t, y : y + ph, x : x + pw] = True
    return clip, masks


def textured_patch(image: np.ndarray, size: int = 44) -> np.ndarray:
    # The top-left corner of the frame (sky and facade), recoloured so that it stands out
    # from the scene as a real object would, but keeps its texture for the flow to follow.
    patch = image[:size, :size].astype(np.int32)
    patch[..., 0] = 255 - patch[..., 0]
    patch[..., 2] = patch[..., 2] // 2
    return np.clip(patch, 0, 255).astype(np.uint8)


# --- metrics -------------------------------------------------------------------------


def test_jaccard_exact_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 pixels
    b[:2, :3] = True  # 6 pixels, 4 shared
    assert jaccard(a, b) == pytest.approx(4 / 6)
    assert jaccard(a, a) == 1.0
    assert jaccard(a, ~a) == 0.0
    assert jaccard(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0  # both empty
    assert jaccard(np.zeros((3, 3), bool), np.eye(3, dtype=bool)) == 0.0


def test_jaccard_accepts_0_255_masks():
    a = np.zeros((4, 4), np.uint8)
    b = np.zeros((4, 4), np.uint8)
    a[:2, :2] = 255
    b[:2, :3] = 255
    assert jaccard(a, b) == pytest.approx(4 / 6)
    assert jaccard(a, a > 0) == 1.0


def test_jaccard_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        jaccard(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def test_mean_jaccard_averages_frames():
    full = np.ones((2, 2), bool)
    half = np.array([[True, False], [False, False]])
    mean, per_frame = mean_jaccard([full, half, full], [full, full, ~full])
    assert per_frame == pytest.approx([1.0, 0.25, 0.0])
    assert mean == pytest.approx(1.25 / 3)


def test_cdnet_f_measure_ignores_labels_and_roi():
    gt = np.array([[0, 0, 255, 255], [50, 85, 170, 255]], np.uint8)
    pred = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], bool)
    roi = np.ones_like(gt, bool)
    # counted pixels: row 0 all four, (1, 3); 50/85/170 ignored.
    # TP = (0,2), (1,3) = 2; FP = (0,0) = 1; FN = (0,3) = 1
    f, precision, recall = cdnet_f_measure([pred], [gt], roi)
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 3)
    assert f == pytest.approx(2 / 3)
    roi[0, 0] = False  # drops the false positive
    f, precision, recall = cdnet_f_measure([pred], [gt], roi)
    assert precision == pytest.approx(1.0)
    assert f == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))


def test_cdnet_f_measure_accumulates_over_frames():
    gt1 = np.array([[255, 0]], np.uint8)
    gt2 = np.array([[255, 255]], np.uint8)
    pred1 = np.array([[True, True]])  # TP 1, FP 1
    pred2 = np.array([[True, False]])  # TP 1, FN 1
    f, precision, recall = cdnet_f_measure([pred1, pred2], [gt1, gt2], None)
    assert (precision, recall) == pytest.approx((2 / 3, 2 / 3))
    assert f == pytest.approx(2 / 3)


def test_cdnet_f_measure_nothing_found():
    gt = np.array([[255, 0]], np.uint8)
    assert cdnet_f_measure([np.zeros((1, 2), bool)], [gt]) == (0.0, 0.0, 0.0)


# --- camera motion -------------------------------------------------------------------


def test_camera_motion_recovers_pan(image):
    offsets = [(0, 0), (3, 1), (7, 2), (10, 4), (14, 5), (17, 7), (21, 8), (24, 10)]
    found = camera_motion(panning_clip(image, offsets))
    w, h = CLIP_SIZE
    assert found.shape == (len(offsets), 3, 3) and found.dtype == np.float64
    assert np.allclose(found[0], np.eye(3))
    for t, (x, y) in enumerate(offsets):
        assert corner_error(found[t], translation(x, y), w, h) < 0.1, t  # measured: <= 0.01 px


def test_camera_motion_recovers_homography(image):
    w, h = CLIP_SIZE
    base = window(image, 36, 20)
    frames, truths = [base], [np.eye(3)]
    for t in range(1, 6):
        # frame t = frame 0 zoomed, turned and shifted about the centre: frame t's pixel
        # p shows frame 0's pixel truth @ p.
        angle, scale = np.deg2rad(0.6 * t), 1 + 0.01 * t
        to_t = cv2.getRotationMatrix2D((w / 2, h / 2), np.rad2deg(angle), scale)
        to_t = np.vstack([to_t, [0, 0, 1]]) @ translation(1.5 * t, -0.8 * t)
        to_t[2, :2] = [2e-5 * t, -1e-5 * t]  # a little perspective
        # Warping the whole image (frame 0 is its window at (36, 20)) keeps real content
        # at the borders.
        frames.append(cv2.warpPerspective(image, to_t @ translation(-36, -20), (w, h), flags=cv2.INTER_LINEAR))
        truths.append(np.linalg.inv(to_t))
    found = camera_motion(np.stack(frames))
    for t in range(len(frames)):
        assert corner_error(found[t], truths[t], w, h) < 0.3, t  # measured: <= 0.07 px


# --- motion hints --------------------------------------------------------------------


def check_hints(hints: MotionHints, count: int, h: int, w: int) -> None:
    assert hints.fg_prob.shape == (count, h, w) and hints.fg_prob.dtype == np.float32
    assert hints.fg_mask.shape == (count, h, w) and hints.fg_mask.dtype == bool
    assert hints.homographies.shape == (count, 3, 3) and hints.homographies.dtype == np.float64
    assert np.all(hints.fg_prob >= 0) and np.all(hints.fg_prob <= 1)
    assert np.allclose(hints.homographies[0], np.eye(3))
    assert isinstance(hints.camera_static, bool)


@pytest.mark.parametrize("step", [(7, 2), (1, 0)], ids=["fast", "slow"])
def test_motion_hints_find_patch_with_panning_camera(image, step):
    count = 12
    offsets = [(2 * t, t // 2) for t in range(count)]
    clip, truth = with_moving_patch(panning_clip(image, offsets), textured_patch(image), (40, 60), step)
    hints = motion_hints(clip)
    check_hints(hints, count, *clip.shape[1:3])
    assert not hints.camera_static
    assert not hints.parallax  # a pan over a flat scene: one homography explains it
    assert not np.allclose(hints.homographies[-1], np.eye(3))
    mean, _ = mean_jaccard(list(hints.fg_mask), list(truth))
    assert mean > 0.95  # measured: 0.995 (fast), 0.996 (slow)
    # the soft map agrees: high on the patch, low on the background
    assert hints.fg_prob[truth].mean() > 0.9  # measured: 0.97
    assert hints.fg_prob[~truth].mean() < 0.05  # measured: 0.002


def test_motion_hints_find_patch_with_still_camera(image):
    count = 12
    clip, truth = with_moving_patch(panning_clip(image, [(30, 20)] * count), textured_patch(image), (30, 50), (8, 3))
    ticks = []
    hints = motion_hints(clip, tick=lambda: ticks.append(1))
    assert len(ticks) == hint_steps(count) == 34  # what the progress bar counts to
    check_hints(hints, count, *clip.shape[1:3])
    assert hints.camera_static
    assert np.allclose(hints.homographies, np.eye(3))
    mean, _ = mean_jaccard(list(hints.fg_mask), list(truth))
    assert mean > 0.95  # measured: 0.9998


def test_motion_hints_nothing_moves(image):
    clip = panning_clip(image, [(10, 10)] * 6)
    hints = motion_hints(clip)
    check_hints(hints, 6, *clip.shape[1:3])
    assert hints.camera_static
    assert hints.fg_mask.mean() < 0.01


def test_motion_hints_short_clip(image):
    # Too short for the change cue's usual frame offsets: the nearest frames stand in.
    background = panning_clip(image, [(0, 0), (3, 1), (6, 2)])
    clip, truth = with_moving_patch(background, textured_patch(image), (60, 50), (6, 2))
    hints = motion_hints(clip)
    check_hints(hints, 3, *clip.shape[1:3])
    assert mean_jaccard(list(hints.fg_mask), list(truth))[0] > 0.9  # measured: 0.96


def test_motion_hints_single_frame(image):
    clip = window(image, 0, 0)[None]
    hints = motion_hints(clip)
    check_hints(hints, 1, *clip.shape[1:3])
    assert not hints.fg_mask.any()


def test_motion_hints_rejects_bad_input():
    with pytest.raises(ValueError):
        motion_hints(np.zeros((3, 20, 20), np.uint8))
    with pytest.raises(ValueError):
        motion_hints(np.zeros((3, 20, 20, 3), np.float32))


def test_colour_index_is_the_rgb_histogram_bin():
    from ddip_video.analysis.motion import COLOUR_BINS, colour_index

    values = np.arange(256, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(values, values[::-1], values[::3], indexing="ij"), axis=-1)[None]  # every level
    q = rgb.astype(np.int64) * COLOUR_BINS // 256
    expected = (q[..., 0] * COLOUR_BINS + q[..., 1]) * COLOUR_BINS + q[..., 2]
    index = colour_index(rgb)
    assert index.shape == rgb.shape[:-1] and np.array_equal(index, expected)
    assert index.min() == 0 and index.max() == COLOUR_BINS**3 - 1


def test_plain_motion_hints_find_fast_patch(image):
    # The baseline of benchmarks/eval_davis.py: residual flow cut at Otsu's threshold.
    count = 12
    offsets = [(2 * t, t // 2) for t in range(count)]
    clip, truth = with_moving_patch(panning_clip(image, offsets), textured_patch(image), (40, 60), (7, 2))
    hints = plain_motion_hints(clip)
    check_hints(hints, count, *clip.shape[1:3])
    assert not hints.camera_static
    mean, _ = mean_jaccard(list(hints.fg_mask), list(truth))
    # measured 0.757: the flow's smoothing spills over the patch's edges (motion_hints: 0.995)
    assert mean > 0.6
    assert hints.fg_prob[truth].mean() > 0.6  # measured: 0.70
    assert hints.fg_prob[~truth].mean() < 0.05  # measured: 0.001
    assert plain_motion_hints(clip[:1]).fg_mask.sum() == 0  # one frame: nothing moves


@pytest.mark.parametrize("static", [True, False])
def test_change_sees_through_a_fade(image, static):
    # A still shot fading in from 30% to full brightness, a patch crossing it: a fade must
    # not make the whole frame look changed (each frame is compared with its background
    # at the background's brightness).
    count = 16
    clip, truth = with_moving_patch(panning_clip(image, [(30, 20)] * count), textured_patch(image), (30, 50), (8, 3))
    gains = np.linspace(0.3, 1.0, count).reshape(-1, 1, 1, 1)
    faded = np.clip(clip * gains + 0.5, 0, 255).astype(np.uint8)
    change = change_to_background(faded, np.stack([np.eye(3)] * count), static)
    for t in range(count):
        # measured: background medians 0.3-3.8 (still camera) and 0.5-1.2 (the moving
        # camera's path); without the fade's gain 3.8-55.7 and 28.7-59.6. The patch: 40.8-88.8
        assert np.nanmedian(change[t][~truth[t]]) < CHANGE_LEVEL / 2, t
    assert np.nanmedian(change[0][truth[0]]) > CHANGE_LEVEL


# --- depth: a moving camera's parallax is not motion (analysis.parallax) ---------------


def two_plane_clip(image: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A camera translating sideways past two planes: the far one (the image) slides 1 px
    a frame, the near one (the bottom 40%, another texture) 5 px; returns the clip and
    where the near plane is."""
    w, h = CLIP_SIZE
    near_rows = slice(int(0.6 * h), h)
    near_texture = np.ascontiguousarray(image[::-1, :, ::-1])  # upside down, channels swapped
    clip = panning_clip(image, [(t, 20) for t in range(count)])
    for t in range(count):
        clip[t, near_rows] = near_texture[near_rows.start : h, 5 * t : 5 * t + w]
    near = np.zeros((h, w), bool)
    near[near_rows] = True
    return clip, near


@pytest.mark.parametrize("model_parallax", [True, False], ids=["epipolar", "homography-only"])
def test_motion_hints_parallax_is_not_motion(image, monkeypatch, model_parallax):
    """The near plane moves 4 px a frame against the far one, because of depth alone; an
    object moving down (off the epipolar lines, which run sideways) is the foreground.
    One homography takes the near plane for the object (the second case shows it does, so
    the first is a real test)."""
    from ddip_video.analysis import motion
    if not model_parallax:
        monkeypatch.setattr(motion, "scene_has_parallax", lambda forward, backward: False)
    count = 12
    background, near = two_plane_clip(image, count)
    clip, truth = with_moving_patch(background, textured_patch(image), (120, 10), (0, 3))
    hints = motion_hints(clip)
    check_hints(hints, count, *clip.shape[1:3])
    near_marked = hints.fg_mask[:, near].mean()
    found = mean_jaccard(list(hints.fg_mask), list(truth))[0]
    if model_parallax:
        assert hints.parallax
        assert near_marked < 0.02  # measured: 0.0
        assert found > 0.9  # measured: 0.99 (0.98 to 1.0 per frame)
    else:
        assert not hints.parallax
        assert near_marked > 0.5  # measured: 0.99 (and the object lost, J 0.0)


def test_sampson_distance_matches_the_float64_formula():
    from ddip_video.analysis.parallax import sampson_distance
    rng = np.random.default_rng(0)
    # an F of pixel coordinates (entries scaled as a real one's) and points off its lines
    fundamental = rng.normal(size=(3, 3)) * [[1e-6, 1e-5, 1e-3], [1e-5, 1e-6, 1e-3], [1e-3, 1e-3, 1.0]]
    x = rng.uniform(0, 427, (200, 2))
    y = x + rng.normal(size=(200, 2))
    fx = np.c_[x, np.ones(200)] @ fundamental.T
    fty = np.c_[y, np.ones(200)] @ fundamental
    algebraic = np.sum(np.c_[y, np.ones(200)] * fx, axis=1)
    expected = np.abs(algebraic) / np.sqrt(fx[:, 0] ** 2 + fx[:, 1] ** 2 + fty[:, 0] ** 2 + fty[:, 1] ** 2)
    assert np.allclose(sampson_distance(fundamental, x, y), expected, atol=2e-3, rtol=1e-4)
    # a point on its epipolar line: a pure sideways translation keeps rows
    translation_f = np.array([[0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # [e]x with e = (1, 0, 0)
    assert np.allclose(sampson_distance(translation_f, x, x + [5.0, 0.0]), 0, atol=1e-3)
    assert np.allclose(sampson_distance(translation_f, x, x + [0.0, 2.0]), 2 / np.sqrt(2), atol=1e-3)


def test_chained_flows_follow_each_step():
    from ddip_video.analysis.flow import chained_flows, pixel_grid
    h, w = 20, 30
    steps = [np.full((h, w, 2), (1.0, 0.5), np.float32), np.full((h, w, 2), (2.0, -1.0), np.float32),
             np.full((h, w, 2), (0.0, 3.0), np.float32)]
    chained = chained_flows(steps, [1, 3, 5], pixel_grid(h, w))
    assert sorted(chained) == [1, 3]  # longer than the steps: left out
    assert np.allclose(chained[1][5, 5], (1.0, 0.5))
    assert np.allclose(chained[3][5, 5], (3.0, 2.5))
    assert np.isnan(chained[3][0, -1]).all()  # left the frame on the way


def test_grabcut_may_trim_an_object_not_drop_it():
    """Two objects of the evidence (a large one, a small one): where GrabCut's result
    has lost the small one whole (or left it in specks), it is put back if its evidence
    is strong; a trimmed object, or a weak one (a speck of flow noise), stays as GrabCut
    left it."""
    from ddip_video.analysis.motion import _with_lost_objects
    mask = np.zeros((60, 100), bool)
    mask[10:50, 5:45] = True    # large
    mask[20:40, 70:85] = True   # small
    strong = np.where(mask, 4.0, -4.0).astype(np.float32)
    weak = strong.copy()
    weak[20:40, 70:85] = 1.0
    large_only = mask.copy()
    large_only[:, 60:] = False
    trimmed = mask.copy()
    trimmed[20:26, 70:85] = False  # 70% of the small object kept
    assert np.array_equal(_with_lost_objects(mask, large_only, strong), mask)
    assert np.array_equal(_with_lost_objects(mask, large_only, weak), large_only)
    assert np.array_equal(_with_lost_objects(mask, trimmed, strong), trimmed)


def test_a_thin_part_cut_off_by_the_cleaning_comes_back_where_it_clearly_moves():
    """A body with a leg joined to it by a neck thinner than the cleaning's opening: the
    opening severs the leg, which is then too small a component to keep; judged with the
    body it was cut from, it comes back where its evidence is strong, not where it is weak.
    A blob as small that never touched the body stays out either way."""
    from ddip_video.analysis.motion import _evidence_mask, keep_components, clean_mask
    h, w = 240, 427  # the hints' working size: the opening's radius is 2 px here
    strong = np.full((h, w), -4.0, np.float32)
    strong[60:120, 100:160] = 5.0    # body
    strong[119:130, 128:130] = 5.0   # neck, 2 px wide
    strong[130:170, 125:133] = 5.0   # leg, 8 px wide
    strong[60:100, 300:308] = 5.0    # a separate blob of the leg's size
    leg = np.zeros((h, w), bool)
    leg[134:166, 126:132] = True
    weak = strong.copy()
    weak[130:170, 125:133] = 0.5
    assert not keep_components(clean_mask(strong > 0), False)[leg].any()  # what the cleaning alone leaves
    found = _evidence_mask(strong, False)
    assert found[leg].all() and found[80, 130] and not found[60:100, 300:308].any()
    assert not _evidence_mask(weak, False)[leg].any()


def test_an_object_does_not_leave_for_one_frame():
    """Three frames of a still camera: a square object held by the masks of the frames
    before and after, dropped by the middle frame's (its evidence there is positive), is
    put back; a blob of evidence that the neighbours do not hold stays out."""
    from ddip_video.analysis.motion import keep_tracked_objects
    frames = np.full((3, 80, 120, 3), (40, 120, 60), np.uint8)  # grass
    frames[:, 30:50, 20:40] = (200, 30, 30)                     # a red square
    frames[1, 10:20, 90:100] = (200, 200, 200)                  # a speck in the middle frame
    mask = np.zeros((3, 80, 120), bool)
    mask[[0, 2], 30:50, 20:40] = True
    log_odds = np.full((3, 80, 120), -4.0, np.float32)
    log_odds[:, 30:50, 20:40] = 1.0
    log_odds[1, 10:20, 90:100] = 1.0
    homographies = np.stack([np.eye(3)] * 3)
    kept = keep_tracked_objects(frames, mask, log_odds, homographies)
    assert kept[1, 31:49, 21:39].all() and not kept[1, 10:20, 90:100].any()
    assert np.array_equal(kept[[0, 2]], mask[[0, 2]])
    assert kept[1].sum() < 1.3 * mask[0].sum()


def test_an_object_does_not_leave_for_three_frames():
    """Six frames of a still camera: the square is held by frames 0 and 4-5 and dropped
    by frames 1-3 (its evidence positive throughout): all three get it back (the middle
    one from the frames 2 away, then its neighbours); four lost frames running stay lost
    (TRACK_GAP is 3), and a speck of evidence held by no frame stays out."""
    from ddip_video.analysis.motion import TRACK_GAP, keep_tracked_objects
    assert TRACK_GAP == 3
    frames = np.full((6, 80, 120, 3), (40, 120, 60), np.uint8)
    frames[:, 30:50, 20:40] = (200, 30, 30)
    frames[2, 10:20, 90:100] = (200, 200, 200)
    log_odds = np.full((6, 80, 120), -4.0, np.float32)
    log_odds[:, 30:50, 20:40] = 1.0
    log_odds[2, 10:20, 90:100] = 1.0
    homographies = np.stack([np.eye(3)] * 6)
    mask = np.zeros((6, 80, 120), bool)
    mask[[0, 4, 5], 30:50, 20:40] = True
    kept = keep_tracked_objects(frames, mask, log_odds, homographies)
    for t in (1, 2, 3):
        assert kept[t, 31:49, 21:39].all(), t
    assert not kept[2, 10:20, 90:100].any()
    mask[4] = False  # lost in frames 1-4: too long a gap
    kept = keep_tracked_objects(frames, mask, log_odds, homographies)
    assert not kept[1:5, 30:50, 20:40].any()


def test_an_object_put_back_stays_where_the_evidence_allows():
    """The object moves 8 px a frame: its neighbours' masks, carried by the (still)
    camera, reach beyond it; what comes back never covers pixels the evidence is sure
    are background."""
    from ddip_video.analysis.motion import keep_tracked_objects
    frames = np.full((3, 80, 120, 3), (40, 120, 60), np.uint8)
    mask = np.zeros((3, 80, 120), bool)
    log_odds = np.full((3, 80, 120), -4.0, np.float32)
    for t, x in enumerate((32, 40, 48)):
        frames[t, 30:50, x:x + 20] = (200, 30, 30)
        log_odds[t, 30:50, x:x + 20] = 1.0
    mask[0, 30:50, 32:52] = mask[2, 30:50, 48:68] = True
    kept = keep_tracked_objects(frames, mask, log_odds, np.stack([np.eye(3)] * 3))
    assert kept[1, 31:49, 41:59].all()
    assert not (kept[1] & (log_odds[1] < -3)).any()
