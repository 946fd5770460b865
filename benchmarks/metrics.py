"""Segmentation scores: DAVIS region similarity J and the CDnet F-measure.

Masks may be bool arrays, 0/1 or 0/255 integer arrays (0/255 masks are cut at
128, so a mask that went through JPEG or resampling still reads right).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# CDnet ground-truth labels (see shared/data/README.md).
CDNET_STATIC = 0
CDNET_SHADOW = 50
CDNET_OUTSIDE_ROI = 85
CDNET_UNKNOWN = 170
CDNET_MOVING = 255
CDNET_IGNORED = (CDNET_SHADOW, CDNET_OUTSIDE_ROI, CDNET_UNKNOWN)


def _as_bool(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    return mask > (127 if mask.dtype == np.uint8 and mask.max() > 1 else 0)


def _check_same_shape(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of one frame's masks; two empty masks agree perfectly (1.0)."""
    pred, gt = _as_bool(pred), _as_bool(gt)
    _check_same_shape(pred, gt)
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def mean_jaccard(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> tuple[float, list[float]]:
    """J mean over frames, and the per-frame J."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth frames")
    if len(preds) == 0:
        raise ValueError("no frames to score")
    per_frame = [jaccard(p, g) for p, g in zip(preds, gts)]
    return float(np.mean(per_frame)), per_frame


def cdnet_f_measure(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], roi: np.ndarray | None = None
) -> tuple[float, float, float]:
    """CDnet F-measure, precision and recall, counted over all frames together.

    ``gts`` hold the CDnet labels (0, 50, 85, 170, 255); pixels labelled 50, 85 or
    170, and pixels outside ``roi`` (non-zero = inside) are not counted.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth frames")
    inside = None if roi is None else _as_bool(roi)
    tp = fp = fn = 0
    for pred, gt in zip(preds, gts):
        pred, gt = _as_bool(pred), np.asarray(gt)
        _check_same_shape(pred, gt)
        counted = ~np.isin(gt, CDNET_IGNORED)
        if inside is not None:
            counted &= inside
        moving = gt == CDNET_MOVING
        tp += np.count_nonzero(pred & moving & counted)
        fp += np.count_nonzero(pred & ~moving & counted)
        fn += np.count_nonzero(~pred & moving & counted)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f, precision, recall
