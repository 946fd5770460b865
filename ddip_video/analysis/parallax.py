"""The static scene's motion when it has depth: epipolar geometry instead of one homography.

A camera that moves through a scene with depth (handheld, tracking, dolly) makes near
things slide across far ones. One homography models a pan, a zoom or a flat scene; here
it leaves the near scene as a large residual, which the motion cue reads as foreground.
What any rigid static scene does under any camera motion is fixed by the two views'
fundamental matrix F: a static point of frame t lands on its epipolar line F x in the
other frame, wherever its depth puts it along that line; an object that moves on its own
leaves the line. The distance off the line (the Sampson distance, in pixels) is therefore
the motion cue for such a scene, and depth no longer counts as motion.

F is fitted between frames PARALLAX_SPAN apart (neighbouring frames see too little
parallax, and too little of the object's own motion, above the flow's noise), on flow
vectors that pass a forward-backward check, by MAGSAC (the object and the flow's errors are
outliers). Where the camera only rotates or the scene is flat, F is degenerate (any
epipole fits the scene, and RANSAC picks one that explains the object too): a clip uses
epipolar geometry only where it explains a large part of the scene that a homography
does not, and nearly all of it (scene_has_parallax).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import cv2
import numpy as np

from .flow import chained_flows, fb_error, pixel_grid

PARALLAX_SPAN = 4  # frames between the two views of each fitted F
PARALLAX_CHECKS = 8  # frame pairs, spread over the clip, that decide whether it has parallax
EPIPOLAR_THRESHOLD = 0.5  # px: Sampson distance of a static point (fit and inlier count)
HOMOGRAPHY_THRESHOLD = 1.0  # px: transfer error of a point a homography explains
PARALLAX_SHARE = 0.2  # the share of the scene F explains and a homography does not, at least...
UNEXPLAINED_SHARE = 0.1  # ... with at most this share that F leaves unexplained (water, smoke)
FB_TOLERANCE = 1.0  # px: flow samples that decide whether a clip has parallax must come back this close
OCCLUSION_TOLERANCE = 0.5  # px per frame of span: beyond, a pixel seen one way only counts as occluded
COORDINATE_SCALE = 512.0  # px: coordinates are divided by this for the distance's float32 arithmetic
GRID_STEP = 4  # px between flow samples fed to RANSAC
MIN_POINTS = 16


def sampson_distance(fundamental: np.ndarray, points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """First-order distance (px) of each correspondence points -> targets (... x 2) from
    satisfying y^T F x = 0; NaN where a target is.

    In float32 on coordinates scaled by 1 / COORDINATE_SCALE (in pixels the products
    cancel to a few significant digits), which holds the distance to about 1e-3 px."""
    f = np.diag([COORDINATE_SCALE, COORDINATE_SCALE, 1.0]) @ fundamental @ np.diag([COORDINATE_SCALE, COORDINATE_SCALE, 1.0])
    f = (f / np.abs(f).max()).astype(np.float32)
    x, y = (points[..., i].astype(np.float32) / COORDINATE_SCALE for i in (0, 1))
    u, v = (targets[..., i].astype(np.float32) / COORDINATE_SCALE for i in (0, 1))
    a, b, c = (f[i, 0] * x + f[i, 1] * y + f[i, 2] for i in range(3))  # F (x, y, 1)
    d, e = (f[0, i] * u + f[1, i] * v + f[2, i] for i in (0, 1))  # first two of F^T (u, v, 1)
    algebraic = a * u + b * v + c
    norm = a * a + b * b + d * d + e * e
    np.abs(algebraic, out=algebraic)
    np.sqrt(norm, out=norm)
    norm += 1e-12
    algebraic /= norm
    algebraic *= COORDINATE_SCALE
    return algebraic


def _samples(flow: np.ndarray, reliable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grid points whose flow stays in the frame (and is `reliable`, if given), and where they land."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[GRID_STEP // 2 : h : GRID_STEP, GRID_STEP // 2 : w : GRID_STEP]
    targets = flow[ys, xs] + np.stack([xs, ys], axis=-1)
    keep = np.isfinite(targets).all(axis=-1)
    if reliable is not None:
        keep &= reliable[ys, xs]
    return np.stack([xs[keep], ys[keep]], axis=1).astype(np.float64), targets[keep].astype(np.float64)


def _fit(points: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
    if len(points) < MIN_POINTS:
        return None
    try:
        fundamental, _ = cv2.findFundamentalMat(points, targets, cv2.USAC_MAGSAC, EPIPOLAR_THRESHOLD, 0.999, 5000)
    except cv2.error:  # MAGSAC asserts where its samples admit no model (seen on a 96x54 clip)
        return None
    if fundamental is None or fundamental.shape != (3, 3) or not np.all(np.isfinite(fundamental)):
        return None
    return fundamental


def fit_fundamental(flow: np.ndarray) -> np.ndarray | None:
    """F of a flow's two frames (y^T F x = 0 for a static point x and where it lands, y),
    by MAGSAC on grid samples; None where too few or degenerate."""
    return _fit(*_samples(flow))


def _span_ahead(forward: np.ndarray, t: int, span: int, grid: np.ndarray) -> np.ndarray:
    """The flow frame t -> t+span, chained (forward[t]: t -> t+1)."""
    return chained_flows(forward[t : t + span], [span], grid)[span]


def _span_back(backward: np.ndarray, t: int, span: int, grid: np.ndarray) -> np.ndarray:
    """The flow frame t+span -> t, chained (backward[t]: t+1 -> t)."""
    return chained_flows(backward[t : t + span][::-1], [span], grid)[span]


def _explained_shares(there: np.ndarray, back: np.ndarray, grid: np.ndarray) -> tuple[float, float] | None:
    """Shares of the flow `there` that a fitted F and a fitted homography explain, over
    its samples that the flow `back` returns to within FB_TOLERANCE (occlusions and flow
    errors would count against both models, and blur the difference between them)."""
    with np.errstate(invalid="ignore"):
        points, targets = _samples(there, fb_error(there, back, grid) < FB_TOLERANCE)  # NaN compares False
    fundamental = _fit(points, targets)
    if fundamental is None:
        return None
    homography, _ = cv2.findHomography(points, targets, cv2.RANSAC, HOMOGRAPHY_THRESHOLD, maxIters=2000, confidence=0.995)
    if homography is None:
        return None
    mapped = cv2.perspectiveTransform(points[None], homography)[0]
    by_f = float(np.mean(sampson_distance(fundamental, points, targets) < EPIPOLAR_THRESHOLD))
    by_h = float(np.mean(np.linalg.norm(mapped - targets, axis=1) < HOMOGRAPHY_THRESHOLD))
    return by_f, by_h


def scene_has_parallax(forward: np.ndarray, backward: np.ndarray) -> bool:
    """Whether the clip's static scene shows depth that one homography cannot model:
    on frame pairs PARALLAX_SPAN apart spread over the clip, F explains at least
    PARALLAX_SHARE more of the flow than a homography does, and all but
    UNEXPLAINED_SHARE of it (medians over the pairs). forward[t]: flow t -> t+1,
    backward[t]: t+1 -> t."""
    count = len(forward) + 1
    span = min(PARALLAX_SPAN, count - 1)
    grid = pixel_grid(*forward.shape[1:3])
    starts = np.unique(np.linspace(0, count - 1 - span, PARALLAX_CHECKS).round().astype(int))
    shares = []
    for t in starts:
        explained = _explained_shares(_span_ahead(forward, t, span, grid), _span_back(backward, t, span, grid), grid)
        if explained is not None:
            shares.append(explained)
    if not shares:
        return False
    by_f, by_h = np.median(np.array(shares), axis=0)
    return by_f - by_h >= PARALLAX_SHARE and 1 - by_f <= UNEXPLAINED_SHARE


def epipolar_residuals(forward: np.ndarray, backward: np.ndarray, spans: Sequence[int]) -> Iterator[list[np.ndarray]]:
    """For each frame in turn, per span (clipped to the clip's length): each pixel's
    distance (px) from its epipolar line in the frames `span` before and after, the
    smaller of the two (a background pixel about to be covered has a wrong flow one way
    only); NaN where neither view sees it. forward[t]: flow t -> t+1, backward[t]: t+1 -> t.
    Near the clip's ends, where only one view exists, only pixels whose flow comes back
    (within OCCLUSION_TOLERANCE a frame) count: there the minimum cannot drop the wrong
    flow of a pixel about to be covered. (A tolerance of 1 px, as for the decision, drops
    too much of real footage over 8-12 frames: goat's first frames lose the goat.)

    F of frames t and t+span is fitted once, on frame t's flow ahead; frame t+span
    reads it transposed."""
    count = len(forward) + 1
    spans = sorted({min(span, count - 1) for span in spans})
    grid = pixel_grid(*forward.shape[1:3])
    ahead_fits: dict[tuple[int, int], np.ndarray] = {}
    for t in range(count):
        ahead = chained_flows(forward[t:], spans, grid)
        behind = chained_flows(backward[t - 1 :: -1] if t > 0 else backward[:0], spans, grid)
        residuals = []
        for span in spans:
            residual = np.full(grid.shape[:2], np.nan, np.float32)
            if span in ahead and (fundamental := fit_fundamental(ahead[span])) is not None:
                ahead_fits[t, span] = fundamental
                np.fmin(residual, sampson_distance(fundamental, grid, grid + ahead[span]), out=residual)
            if span in behind and (fundamental := ahead_fits.pop((t - span, span), None)) is not None:
                np.fmin(residual, sampson_distance(fundamental.T, grid, grid + behind[span]), out=residual)
            if (span in ahead) != (span in behind):  # one view only: keep what comes back
                there, back = ((ahead[span], _span_back(backward, t, span, grid)) if span in ahead
                               else (behind[span], _span_ahead(forward, t - span, span, grid)))
                with np.errstate(invalid="ignore"):
                    residual[~(fb_error(there, back, grid) < OCCLUSION_TOLERANCE * span)] = np.nan
            residuals.append(residual)
        yield residuals
