"""Reading the evaluation data (DAVIS-format sequences, CDnet folders) and
moving masks between the working size and the ground truth's."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


def davis_sequences(data_dir: Path, only: list[str] | None = None) -> list[Path]:
    """The sub-folders of data_dir with frames/ and masks/ (only those named in `only`, if given)."""
    sequences = sorted(p for p in data_dir.iterdir() if (p / "frames").is_dir() and (p / "masks").is_dir())
    if only:
        sequences = [p for p in sequences if p.name in only]
    if not sequences:
        raise SystemExit(f"no sequences (folders with frames/ and masks/) in {data_dir}")
    return sequences


def shrink(frames: list[np.ndarray], max_side: int) -> np.ndarray:
    h, w = frames[0].shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return np.stack(frames)
    size = (round(w * scale), round(h * scale))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def enlarge(masks: np.ndarray, h: int, w: int) -> list[np.ndarray]:
    return [cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in masks]


def run_timed(method: Callable[[np.ndarray], np.ndarray], frames: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    masks = method(frames)
    return masks, time.perf_counter() - start
