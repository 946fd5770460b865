"""Motion hints: which pixels belong to the moving foreground, from classic vision alone.

No trained model and no user input: the hints come from the clip itself. Each cue is a
per-pixel log-odds (0 = no opinion); they are summed, then cut with a graph cut.

1. Dense optical flow (OpenCV DIS at the full working resolution: its MEDIUM preset stops
   at half resolution and blurs object boundaries) between neighbouring frames, both ways.
2. Camera motion: a homography per frame pair fitted by RANSAC to flow vectors that pass
   a forward-backward check, so the moving foreground (a minority) is rejected as
   outliers. Chained, they map every frame to frame 0. A camera whose frames barely move
   against their neighbours, and not at all against frame 0, is still: its homographies
   are exact identities.
3. Motion: the flow left over once the camera's motion is taken out, the smaller of the
   forward and the backward residual (a background pixel about to be covered by the object
   has a wrong flow in one direction only), relative to the frame's median residual
   (parallax and flow noise differ from clip to clip). A moving camera over a scene with
   depth (analysis.parallax decides) has its near scene slide across the far one, which
   one homography takes for motion: there the residual is each pixel's distance from its
   epipolar line instead, over 4, 8 and 12 frames (depth moves a static point along its
   line only), and the change cue below, which aligns frames by homographies, is left out.
4. Change: each frame against the median of frames 4, 8 and 12 steps before and after,
   warped onto it (a still camera: the median of frames spread over the whole clip). It
   sees slow objects and object interiors that the flow smooths over.
5. Colour: clip-wide RGB histograms of foreground and background, first learnt from
   clearly moving pixels, then again from the first result. Their log-likelihood ratio
   fills object interiors that hardly move and trims moving background coloured like
   the background (shadows, ripples, a reflection).
6. Mask: per frame, GrabCut around the positive region, with confident pixels fixed, snaps
   it to colour edges (an object it drops whole is put back); specks are dropped (moving
   camera: the largest components are kept, the rest is mostly parallax). Then across
   frames: what a frame dropped of an object that the frames before and after both hold
   is put back (an object does not leave for one frame).

On the five DAVIS-2016 sequences in shared/data (benchmarks/eval_hints.py, longer side
427) the mask scores J = 0.70 against 0.19 for OpenCV's MOG2 and 0.21 for KNN.

Besides motion_hints, the pieces a caller may want on their own are public: the flows
(dense_flows), the camera's path (track_camera), the change cue (change_to_background),
the residual motion (motion_ratios) and the mask clean-up (clean_mask, keep_components,
soft_mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .flow import fb_error, lands_inside, pixel_grid
from .parallax import epipolar_residuals, scene_has_parallax


@dataclass
class MotionHints:
    """The hints for a clip. fg_prob blends the summed evidence (as a probability) with
    fg_mask (edges softened), so it is mostly above 0.5 inside the mask, below outside."""

    fg_prob: np.ndarray  # T x h x w float32 in [0, 1]: how likely each pixel is the moving foreground
    fg_mask: np.ndarray  # T x h x w bool: the hint segmentation itself
    homographies: np.ndarray  # T x 3 x 3 float64: frame t pixel (x, y, 1) -> frame 0 (identity at t = 0)
    camera_static: bool  # whether the camera was found to be still
    parallax: bool = False  # whether the static scene's motion was modelled by epipolar geometry (depth)


# Tuned on the DAVIS-2016 sequences in shared/data at a longer side of 427 px
# (benchmarks/eval_hints.py). Lengths marked "px @427" are pixels at that size and scale
# with the working resolution; other lengths are working-resolution pixels.
REFERENCE_SIDE = 427
FLOW_FB_TOLERANCE = 1.0  # px: flow vectors used for the homography must come back this close
RANSAC_THRESHOLD = 1.0  # px
HOMOGRAPHY_GRID_STEP = 6  # px between flow samples fed to RANSAC
STILL_PAIR_SHIFT = 0.5  # px: most a still camera's frame corners move between neighbours
STILL_SHIFT = 1.0  # px: most they move between any frame and frame 0
STILL_CHECKS = 4  # frames compared with frame 0 directly
EPIPOLAR_SPANS = (4, 8, 12)  # frames between the views whose epipolar geometry scores motion
RESIDUAL_FLOOR = 0.05  # px added to the frame's median residual before dividing by it
MOTION_RATIO = 8.0  # residual / median residual at which motion alone is 50:50
CHANGE_OFFSETS = (-12, -8, -4, 4, 8, 12)  # frames compared with frame t for its background
STILL_BACKGROUND_FRAMES = 25  # frames, spread over the clip, in a still camera's background
CHANGE_LEVEL = 30.0  # RGB distance to the background at which change alone is 50:50
FADE_GAIN_TOLERANCE = 0.1  # |log| of a frame's gain on its background left as is (real clips: <= 0.039)
GAIN_FLOOR = 8.0  # grey level under which a pixel says nothing of the gain
CHANGE_WEIGHT = 1.0
STILL_CHANGE_WEIGHT = 2.0  # a still camera's background needs no alignment: trust it more
COLOUR_WEIGHT = 0.5
COLOUR_BINS = 16  # per RGB channel
CORE_RATIO = 16.0  # motion ratio of pixels trusted to be foreground colour samples
CORE_EROSION = 5  # px @427
BACKGROUND_MARGIN = 15  # px @427: colour samples for background lie this far from the motion
GRABCUT_SURE = 3.0  # log-odds beyond which GrabCut may not relabel a pixel
GRABCUT_MARGIN = 20  # px @427 of context around the mask given to GrabCut
GRABCUT_ITERATIONS = 1  # a second one changes J by < 0.001 for 20% more time
GRABCUT_MIN_PIXELS = 30
LOST_OBJECT_SHARE = 0.5  # GrabCut may trim a component, not drop it: under this share kept, it is restored...
LOST_OBJECT_EVIDENCE = 2.0  # ... if its mean log-odds is above this (a moving object, not a speck); also
                            # what a piece cut off an object by the cleaning needs to come back
SOFT_EDGE = 1.5  # px @427: blur of the mask's edge in fg_prob
CLEAN_RADIUS = 2  # px @427: morphological opening and closing of masks
SMALL_COMPONENT = 0.2  # moving camera: keep components at least this fraction of the largest one
TRACK_DROPPED = 0.1  # a component of the evidence with less than this share in its frame's mask was dropped...
TRACK_OVERLAP = 0.5  # ... and is put back if this share of it is in the masks of the frames before and after
TRACK_GAP = 3        # ... or lost for up to this many frames running
STILL_MIN_AREA = 0.001  # still camera: keep every component at least this fraction of the frame


def _px(length: float, shape: tuple[int, ...]) -> int:
    """A length tuned at REFERENCE_SIDE, in pixels of an image of this (h, w, ...) shape."""
    return max(1, round(length * max(shape[:2]) / REFERENCE_SIDE))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be T x h x w x 3 uint8 RGB, got {frames.shape} {frames.dtype}")
    if len(frames) == 0:
        raise ValueError("no frames")
    return frames


# --- flow and camera motion -------------------------------------------------------------


def _dis() -> cv2.DISOpticalFlow:
    # The MEDIUM preset stops at half resolution; the finest scale keeps object boundaries
    # sharp, which matters more here than the 3x cost (still ~25 ms a pair at 427x240).
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    dis.setPatchSize(8)
    dis.setPatchStride(4)
    dis.setVariationalRefinementIterations(5)
    return dis


def _no_tick() -> None:
    pass


def dense_flows(gray: list[np.ndarray], tick: Callable[[], None] = _no_tick) -> tuple[np.ndarray, np.ndarray]:
    """forward[t]: flow t -> t+1; backward[t]: flow t+1 -> t (both (T-1) x h x w x 2);
    tick() after each flow.

    Each in one block, not a list of per-frame arrays: the allocator returns a block
    this size to the system when it is freed, but keeps small freed arrays resident."""
    dis = _dis()
    forward = np.empty((len(gray) - 1, *gray[0].shape, 2), np.float32)
    backward = np.empty_like(forward)
    for t, (a, b) in enumerate(zip(gray[:-1], gray[1:])):
        forward[t] = dis.calc(a, b, None)
        tick()
    for t, (a, b) in enumerate(zip(gray[:-1], gray[1:])):
        backward[t] = dis.calc(b, a, None)
        tick()
    return forward, backward


def _fit_homography(flow: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """Homography mapping pixels of the flow's source frame to its target frame."""
    h, w = flow.shape[:2]
    step = HOMOGRAPHY_GRID_STEP
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    ys, xs = ys.ravel(), xs.ravel()
    keep = reliable[ys, xs]
    src = np.stack([xs[keep], ys[keep]], axis=1).astype(np.float32)
    dst = src + flow[ys[keep], xs[keep]]
    if len(src) < 8:
        return np.eye(3)
    homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_THRESHOLD, maxIters=2000, confidence=0.995)
    if homography is None or not np.all(np.isfinite(homography)):
        return np.eye(3)
    return homography / homography[2, 2]


def _camera_flow(homography: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The flow a homography alone would produce at every pixel."""
    h = homography.astype(np.float32)
    mapped = grid @ h[:2, :2].T + h[:2, 2]
    depth = grid @ h[2, :2] + h[2, 2]
    return mapped / depth[..., None] - grid


@dataclass
class FramePairs:
    """Flows and homographies between neighbouring frames (index t: frames t and t+1)."""

    forward: np.ndarray  # (T-1) x h x w x 2: flow t -> t+1
    backward: np.ndarray  # flow t+1 -> t
    h_forward: list[np.ndarray]  # homography t -> t+1
    h_backward: list[np.ndarray]  # homography t+1 -> t


def _frame_pairs(gray: list[np.ndarray], tick: Callable[[], None] = _no_tick) -> FramePairs:
    forward, backward = dense_flows(gray, tick)
    grid = pixel_grid(*gray[0].shape)
    h_forward, h_backward = [], []
    for fwd, bwd in zip(forward, backward):
        with np.errstate(invalid="ignore"):
            h_forward.append(_fit_homography(fwd, fb_error(fwd, bwd, grid) < FLOW_FB_TOLERANCE))
            h_backward.append(_fit_homography(bwd, fb_error(bwd, fwd, grid) < FLOW_FB_TOLERANCE))
    return FramePairs(forward, backward, h_forward, h_backward)


def _chain_to_first(pairs: FramePairs) -> np.ndarray:
    chained = [np.eye(3)]
    for h_back in pairs.h_backward:  # h_back maps frame t+1 to frame t
        h = chained[-1] @ h_back
        chained.append(h / h[2, 2])
    return np.array(chained)


def _corner_shift(homography: np.ndarray, h: int, w: int) -> float:
    """How far (px) a homography moves the frame's corners, at most."""
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64).T
    mapped = homography @ corners
    return float(np.abs(mapped[:2] / mapped[2] - corners[:2]).max())


def _camera_is_still(gray: list[np.ndarray], pairs: FramePairs) -> bool:
    h, w = gray[0].shape
    if max(_corner_shift(hom, h, w) for hom in pairs.h_forward) > STILL_PAIR_SHIFT:
        return False
    # Chained pair homographies drift like a random walk even for a still camera, so
    # a few frames are compared with frame 0 directly.
    dis = _dis()
    for t in np.unique(np.linspace(0, len(gray) - 1, STILL_CHECKS + 1).round().astype(int))[1:]:
        flow = dis.calc(gray[0], gray[t], None)
        if _corner_shift(_fit_homography(flow, np.ones(flow.shape[:2], bool)), h, w) > STILL_SHIFT:
            return False
    return True


def gray_frames(frames: np.ndarray) -> list[np.ndarray]:
    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


def track_camera(gray: list[np.ndarray], tick: Callable[[], None] = _no_tick) -> tuple[FramePairs, np.ndarray, bool]:
    """Flows between neighbours, homographies to frame 0, and whether the camera is
    still; tick() after each flow."""
    pairs = _frame_pairs(gray, tick)
    if _camera_is_still(gray, pairs):
        # Exact identities beat fitted ones: no drift, no resampling blur.
        identity = [np.eye(3)] * len(pairs.forward)
        pairs = FramePairs(pairs.forward, pairs.backward, identity, identity)
        return pairs, np.stack([np.eye(3)] * len(gray)), True
    return pairs, _chain_to_first(pairs), False


def camera_motion(frames: np.ndarray) -> np.ndarray:
    """T x 3 x 3 homographies mapping pixels (x, y, 1) of frame t to frame 0."""
    frames = _check_frames(frames)
    if len(frames) == 1:
        return np.eye(3)[None].copy()
    return track_camera(gray_frames(frames))[1]


# --- evidence ----------------------------------------------------------------------------


def motion_ratios(pairs: FramePairs, shape: tuple[int, int]) -> np.ndarray:
    """T x h x w: residual flow over the frame's median residual."""
    grid = pixel_grid(*shape)
    count = len(pairs.forward) + 1
    ratios = np.empty((count,) + shape, np.float32)
    for t in range(count):
        residuals = []
        if t + 1 < count:
            residuals.append(_residual(pairs.forward[t], pairs.h_forward[t], grid))
        if t > 0:
            residuals.append(_residual(pairs.backward[t - 1], pairs.h_backward[t - 1], grid))
        ratios[t] = np.fmin.reduce(residuals)
    return _relative(ratios)


def epipolar_ratios(pairs: FramePairs) -> np.ndarray:
    """T x h x w: distance off the epipolar lines (analysis.parallax) over the frame's
    median distance, the largest over EPIPOLAR_SPANS; the motion cue for a scene with depth.

    Several spans, because an object's own motion off the lines builds up at its own pace:
    a slow walker stands out only over many frames, a fast one (or one that turns) over few."""
    ratios = np.empty((len(pairs.forward) + 1, *pairs.forward.shape[1:3]), np.float32)
    for t, residuals in enumerate(epipolar_residuals(pairs.forward, pairs.backward, EPIPOLAR_SPANS)):
        ratios[t] = np.maximum.reduce(_relative(np.stack(residuals)))
    return ratios


def _relative(residuals: np.ndarray) -> np.ndarray:
    """Each frame's residuals (NaN: no evidence) over its median residual, in place."""
    for residual in residuals:
        np.nan_to_num(residual, copy=False, nan=0.0)
        residual /= np.median(residual) + RESIDUAL_FLOOR
    return residuals


def _residual(flow: np.ndarray, homography: np.ndarray, grid: np.ndarray) -> np.ndarray:
    residual = np.linalg.norm(flow - _camera_flow(homography, grid), axis=-1)
    residual[~lands_inside(flow, grid)] = np.nan  # no evidence where the pixel leaves the frame
    return residual


def _aligned_median(frames: np.ndarray, homographies: np.ndarray, t: int, others: list[int]) -> np.ndarray:
    """Median of the frames `others`, each warped onto frame t; NaN where none reaches."""
    h, w = frames.shape[1:3]
    to_t = np.linalg.inv(homographies[t])
    aligned, reached = [], np.zeros((h, w), bool)
    for u in others:
        u_to_t = to_t @ homographies[u]
        # Where a warped frame does not reach, it shows frame t itself (no change there),
        # so that the median is taken over the frames that do.
        aligned.append(cv2.warpPerspective(
            frames[u], u_to_t, (w, h), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT, dst=frames[t].copy(),
        ))
        reached |= cv2.warpPerspective(np.ones((h, w), np.uint8), u_to_t, (w, h), flags=cv2.INTER_NEAREST) > 0
    background = np.median(np.stack(aligned), axis=0)
    background[~reached] = np.nan
    return background


def change_to_background(frames: np.ndarray, homographies: np.ndarray, static: bool) -> np.ndarray:
    """T x h x w: colour distance of each frame to a robust background for it (NaN: unknown)."""
    count = len(frames)
    distances = np.full(frames.shape[:3], np.nan, np.float32)
    if static:
        # A still camera sees the same background all clip long: one median of frames
        # spread over the clip outlasts objects that stop for a while.
        spread = np.unique(np.linspace(0, count - 1, min(count, STILL_BACKGROUND_FRAMES)).round().astype(int))
        background = np.median(frames[spread], axis=0).astype(np.float32)
    for t in range(count):
        if not static:
            others = [t + o for o in CHANGE_OFFSETS if 0 <= t + o < count]
            if not others:  # a short clip: the nearest frames will do
                others = sorted((u for u in range(count) if u != t), key=lambda u: abs(u - t))[: len(CHANGE_OFFSETS)]
            background = _aligned_median(frames, homographies, t, others)
        frame = frames[t].astype(np.float32)
        # in the background's brightness, where CHANGE_LEVEL was measured
        distances[t] = np.linalg.norm(frame / _fade_gain(frame, background) - background, axis=-1)
    return distances


def _fade_gain(frame: np.ndarray, background: np.ndarray) -> float:
    """How much brighter the whole frame is than its background: a fade in or out, or
    the camera's exposure, would otherwise make every pixel look changed. The median
    ratio of their grey levels (the foreground, a minority, does not move it); 1 where
    that is within FADE_GAIN_TOLERANCE of 1, or unknown."""
    frame_gray, background_gray = frame.mean(axis=-1), background.mean(axis=-1)
    usable = (frame_gray > GAIN_FLOOR) & (background_gray > GAIN_FLOOR)  # NaN (not seen) compares False
    if usable.sum() < 0.1 * usable.size:
        return 1.0
    gain = float(np.median(frame_gray[usable] / background_gray[usable]))
    return gain if abs(np.log(gain)) > FADE_GAIN_TOLERANCE else 1.0


def _change_log_odds(change: np.ndarray, static: bool) -> np.ndarray:
    weight = STILL_CHANGE_WEIGHT if static else CHANGE_WEIGHT
    shifted = change + 1.0
    log_odds = np.log(shifted, out=shifted) - np.log(CHANGE_LEVEL)
    log_odds *= weight
    return np.nan_to_num(log_odds, copy=False, nan=0.0)  # no background seen there: no evidence either way


def colour_index(frames: np.ndarray) -> np.ndarray:
    """T x h x w int16: each pixel's RGB histogram bin (COLOUR_BINS divides 256; kept
    small, as it lives through both colour passes)."""
    q = frames // (256 // COLOUR_BINS)  # uint8, no wide temporary
    index = q[..., 0].astype(np.int16) * COLOUR_BINS
    index += q[..., 1]
    index *= COLOUR_BINS
    index += q[..., 2]
    return index


def _colour_log_odds(index: np.ndarray, fg_samples: np.ndarray, bg_samples: np.ndarray) -> np.ndarray:
    """Per-pixel log(p(colour | fg) / p(colour | bg)) from clip-wide histograms;
    index: colour_index of the frames."""
    bins = COLOUR_BINS**3
    fg = np.bincount(index[fg_samples], minlength=bins) + 1.0  # +1: colours seen in neither
    bg = np.bincount(index[bg_samples], minlength=bins) + 1.0
    ratio = np.log((fg / fg.sum()) / (bg / bg.sum()))
    return np.clip(ratio, -5, 5).astype(np.float32)[index]


# --- masks -------------------------------------------------------------------------------


def clean_mask(mask: np.ndarray) -> np.ndarray:
    kernel = _disk(_px(CLEAN_RADIUS, mask.shape))
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)


def keep_components(mask: np.ndarray, static: bool) -> np.ndarray:
    """The object's components: the largest ones for a moving camera (the rest is mostly
    parallax and flow errors), all but specks for a still one (several things may move)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    least = STILL_MIN_AREA * mask.size if static else SMALL_COMPONENT * areas.max()
    keep = np.concatenate([[False], areas >= least])
    return keep[labels]


def _segment(log_odds: np.ndarray, static: bool) -> np.ndarray:
    return np.stack([_evidence_mask(frame, static) for frame in log_odds])


def _evidence_mask(log_odds: np.ndarray, static: bool) -> np.ndarray:
    """The evidence's mask (log_odds > 0), cleaned, its objects' components kept
    (keep_components), and the pieces the cleaning cut off a kept object put back where
    their evidence is strong. The opening severs thin parts (a dancer's legs, 8-10 px
    wide at 427 px, over a stone edge) whose pieces then fall under SMALL_COMPONENT of
    the largest one; judged with what they were cut from, and only where they clearly
    move, they come back (water by a swan, cut off the same way, is weaker evidence)."""
    evidence = log_odds > 0
    cleaned = clean_mask(evidence) > 0
    kept = keep_components(cleaned, static)
    if static:  # every component but specks is kept already
        return kept
    count, before = cv2.connectedComponents((cleaned | evidence).astype(np.uint8), connectivity=8)
    areas = np.bincount(before[cleaned], minlength=count)
    areas[0] = 0
    whole = areas >= SMALL_COMPONENT * areas.max()
    whole[0] = False
    count, pieces = cv2.connectedComponents((cleaned & whole[before] & ~kept).astype(np.uint8), connectivity=8)
    if count <= 1:
        return kept
    strong = _mean_per_label(pieces, count, log_odds) > LOST_OBJECT_EVIDENCE
    strong[0] = False
    return kept | strong[pieces]


def _mean_per_label(labels: np.ndarray, count: int, values: np.ndarray) -> np.ndarray:
    """The mean of `values` over each of `count` labels (0 where a label has no pixel)."""
    area = np.bincount(labels.ravel(), minlength=count)
    return np.bincount(labels.ravel(), weights=values.ravel(), minlength=count) / np.maximum(area, 1)


def _colour_samples(mask: np.ndarray, confident: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels to learn colours from: the mask's eroded interior (only its `confident`
    pixels, if given) for the foreground, what lies well outside the mask for the background."""
    fg = np.empty_like(mask)
    bg = np.empty_like(mask)
    for t, frame_mask in enumerate(mask):
        core = frame_mask if confident is None else frame_mask & confident[t]
        fg[t] = cv2.erode(core.astype(np.uint8), _disk(_px(CORE_EROSION, core.shape))) > 0
        bg[t] = cv2.dilate(frame_mask.astype(np.uint8), _disk(_px(BACKGROUND_MARGIN, core.shape))) == 0
    return fg, bg


def _with_colour(index: np.ndarray, log_odds: np.ndarray, samples: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    fg, bg = samples
    if not fg.any() or not bg.any():
        return log_odds
    return log_odds + COLOUR_WEIGHT * _colour_log_odds(index, fg, bg)


def _grabcut(frame: np.ndarray, log_odds: np.ndarray, static: bool) -> np.ndarray:
    """Snap the mask (log_odds > 0) to colour edges with a graph cut around it.

    Confident evidence (|log-odds| > GRABCUT_SURE) is fixed; the rest is left to GrabCut's
    colour models of this frame and its smoothness term.
    """
    mask = _evidence_mask(log_odds, static)
    refined = _snap_to_edges(frame, log_odds, mask)
    if refined is None:
        return mask
    return _with_lost_objects(mask, keep_components(refined, static), log_odds)


def _snap_to_edges(frame: np.ndarray, log_odds: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """GrabCut's foreground in a crop around `mask`, which it starts from; None where
    it cannot run (too little of either side, degenerate colour models)."""
    if np.count_nonzero(mask) < GRABCUT_MIN_PIXELS:
        return None
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    margin = _px(GRABCUT_MARGIN, mask.shape)
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + margin + 1, h)
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + margin + 1, w)
    crop_odds, crop_mask = log_odds[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    labels = np.where(crop_mask, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[crop_odds < -GRABCUT_SURE] = cv2.GC_BGD
    labels[crop_mask & (crop_odds > GRABCUT_SURE)] = cv2.GC_FGD
    foreground = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if min(np.count_nonzero(foreground), np.count_nonzero(~foreground)) < GRABCUT_MIN_PIXELS:
        return None  # too little of one side to learn its colours from
    bgr = np.ascontiguousarray(frame[y0:y1, x0:x1, ::-1])
    models = np.zeros((1, 65)), np.zeros((1, 65))
    try:
        cv2.grabCut(bgr, labels, None, models[0], models[1], GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate colour models (e.g. a flat crop): keep the evidence's mask
        return None
    refined = np.zeros_like(mask)
    refined[y0:y1, x0:x1] = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))
    return refined


def _with_lost_objects(mask: np.ndarray, refined: np.ndarray, log_odds: np.ndarray) -> np.ndarray:
    """GrabCut's result (its components kept), with any object of `mask` it dropped
    (most of a component gone, or left in specks) put back as the evidence drew it.
    One crop's colour models serve every object in it: a second, smaller object
    coloured unlike the first can lose to the background's model whole (a dancer
    beside a swan, gone in some frames)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return refined
    kept = np.bincount(labels[refined], minlength=count)
    area = np.bincount(labels.ravel(), minlength=count)
    lost = (kept < LOST_OBJECT_SHARE * area) & (_mean_per_label(labels, count, log_odds) > LOST_OBJECT_EVIDENCE)
    lost[0] = False
    return refined | lost[labels]


def keep_tracked_objects(frames: np.ndarray, mask: np.ndarray, log_odds: np.ndarray,
                         homographies: np.ndarray) -> np.ndarray:
    """The masks with what a frame dropped of an object that frames before and after it
    both hold (carried by the camera's motion) put back: an object does not leave for a
    frame or three. Each frame's choice of components (the largest ones, GrabCut's colour
    models) flips where an object is near its threshold: a pasted swan of 0.19-0.22 of
    the area of a kite-surfer and his spray was in one frame and out the next, or out for
    three frames running, and each frame it was out was left in the clean plate. Put
    back: each component of the evidence (log_odds > 0) the mask dropped whole and the
    frames `span` before and after hold, and the evidence's pixels the mask dropped that
    both hold (the swan's neck, which touched the spray's component); with their masks
    around them, snapped to the frame's colour edges. The spans go 1, 2, ... up to half of
    TRACK_GAP + 1 and back to 1, each pass on the masks the last one mended, so that a gap
    closes from its middle outwards (of three lost frames, the middle one by the frames 2
    away, then the others by their neighbours). A blob of evidence the frames around it do
    not hold (a crowd's passing movement) stays out."""
    out = mask.copy()
    widest = (TRACK_GAP + 1) // 2
    spans = list(range(1, widest + 1)) + list(range(widest - 1, 0, -1))
    for span in spans:
        out = _mended(frames, out, log_odds, homographies, span)
    return out


def _mended(frames: np.ndarray, mask: np.ndarray, log_odds: np.ndarray, homographies: np.ndarray,
            span: int) -> np.ndarray:
    """keep_tracked_objects' pass with the frames `span` before and after each frame."""
    h, w = mask.shape[1:]
    out = mask.copy()
    for t in range(span, len(mask) - span):
        labels = cv2.connectedComponents(clean_mask(log_odds[t] > 0), connectivity=8)[1]
        count = labels.max() + 1
        area = np.bincount(labels.ravel(), minlength=count)
        back = np.bincount(labels[mask[t]], minlength=count) < TRACK_DROPPED * area
        either, both = np.zeros((h, w), bool), np.ones((h, w), bool)
        for u in (t - span, t + span):
            carried = cv2.warpPerspective(mask[u].astype(np.uint8), np.linalg.solve(homographies[t], homographies[u]),
                                          (w, h), flags=cv2.INTER_NEAREST) > 0
            back &= np.bincount(labels[carried], minlength=count) >= TRACK_OVERLAP * area
            either |= carried
            both &= carried
        back[0] = False
        # whole components dropped, and the evidence's pixels that the frame dropped and
        # both hold (a swan's neck that touches the spray)
        dropped = (labels > 0) & ~mask[t]
        if span > 1:  # only pieces both hold most of: further apart, both hold bits of a crowd's movement
            pieces = cv2.connectedComponents(dropped.astype(np.uint8), connectivity=8)[1]
            held = np.bincount(pieces[both], minlength=pieces.max() + 1) >= TRACK_OVERLAP * np.bincount(pieces.ravel())
            held[0] = False
            dropped &= held[pieces]
        returned = back[labels] | (both & dropped)
        returned = cv2.morphologyEx(returned.astype(np.uint8), cv2.MORPH_OPEN, _disk(_px(CLEAN_RADIUS, (h, w)))) > 0
        if not returned.any():
            continue
        near = cv2.dilate(returned.astype(np.uint8), _disk(_px(CORE_EROSION, (h, w)))) > 0
        unsure = log_odds[t] > -GRABCUT_SURE  # never where the evidence is sure of the background
        returned |= either & near & unsure
        snapped = _snap_to_edges(frames[t], log_odds[t], returned)
        if snapped is not None:  # what GrabCut adds, near what came back
            returned |= snapped & unsure & (cv2.dilate(near.astype(np.uint8), _disk(_px(CORE_EROSION, (h, w)))) > 0)
        out[t] |= returned
    return out


def hint_steps(count: int) -> int:
    """How many times motion_hints ticks for a clip of `count` frames."""
    return 3 * count - 2 if count > 1 else 0


def motion_hints(frames: np.ndarray, tick: Callable[[], None] = _no_tick) -> MotionHints:
    """Foreground hints for a T x h x w x 3 uint8 RGB clip at working resolution;
    tick() hint_steps(T) times on the way (after each flow and each frame's GrabCut),
    for a progress bar."""
    frames = _check_frames(frames)
    count, h, w = frames.shape[:3]
    if count == 1:  # nothing moves in a single frame
        return MotionHints(
            np.zeros((1, h, w), np.float32), np.zeros((1, h, w), bool), np.eye(3)[None].copy(), True
        )
    pairs, homographies, static = track_camera(gray_frames(frames), tick)
    parallax = not static and scene_has_parallax(pairs.forward, pairs.backward)
    ratio = epipolar_ratios(pairs) if parallax else motion_ratios(pairs, (h, w))
    del pairs  # the flows (16 bytes a pixel) are the largest thing held; nothing needs them now

    # Large T x h x w maps are updated in place and dropped after their last use: the
    # hints' peak memory bounds the clip length a machine can take.
    motion = np.log(ratio + 1e-3) - np.log(MOTION_RATIO)
    if parallax:  # homography-aligned neighbours differ wherever the scene has depth
        evidence = motion.copy()
    else:
        evidence = _change_log_odds(change_to_background(frames, homographies, static), static)
        evidence += motion

    # Colours, first from what clearly moves; then again from the first result, which
    # already drops moving background coloured like background (shadows, ripples) and
    # holds the still parts of the object.
    index = colour_index(frames)
    first_samples = _colour_samples(_segment(motion, static), ratio > CORE_RATIO)
    del motion, ratio
    log_odds = _with_colour(index, evidence, first_samples)
    del first_samples
    second_samples = _colour_samples(_segment(log_odds, static), log_odds > 0)
    del log_odds
    log_odds = _with_colour(index, evidence, second_samples)
    del index, evidence, second_samples

    mask = np.empty(log_odds.shape, bool)
    for t, (frame, odds) in enumerate(zip(frames, log_odds)):
        mask[t] = _grabcut(frame, odds, static)
        tick()
    mask = keep_tracked_objects(frames, mask, log_odds, homographies)
    prob = soft_mask(log_odds, mask)
    return MotionHints(prob, mask, homographies, static, parallax)


def soft_mask(log_odds: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Evidence and decision in one map: mostly above 0.5 inside the mask, below it outside."""
    evidence = np.clip(log_odds, -30, 30)  # the logistic, in place: these maps are the clip's size
    np.negative(evidence, out=evidence)
    np.exp(evidence, out=evidence)
    evidence += 1.0
    np.reciprocal(evidence, out=evidence)
    sigma = SOFT_EDGE * max(mask.shape[1:]) / REFERENCE_SIDE
    for t, m in enumerate(mask):
        evidence[t] += cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma)
    evidence *= 0.5
    return evidence.astype(np.float32)
