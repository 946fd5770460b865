"""`fgbg`'s options and its defaults per device (no torch imported: the CLI reads them)."""
from __future__ import annotations

from dataclasses import dataclass

from ...options import TaskOptions


@dataclass
class FgbgOptions(TaskOptions):
    mask_png: bool = False
    resume: bool = False             # pick up an interrupted run's finished segments in OUTDIR
    pick: str | None = None          # None: every moving object; "X,Y": the one under that point; "largest"
    window: int = 8                  # frames per optimisation step
    lr: float = 0.005
    warmup: float = 0.25             # fraction of the steps spent on the hints alone
    area_weight: float = 0.03        # cost of one unit of mask, in units of L1 reconstruction error
    exclusion_weight: float = 0.05
    binary_weight: float = 0.05
    hint_weight: float = 1.0
    hint_floor: float = 0.5          # the hints' weight once they have faded
    eval_every: int = 50
    patience: int = 4
    segment_iters: float = 0.2       # a long shot's segments: this share of the steps for 150 frames, pro rata


def parse_pick(text: str | None) -> tuple[float, float] | str | None:
    """--pick's value: None, "largest", or (x, y) in the input's pixels (ValueError
    where it is none of these); the CLI and run_fgbg both read it here."""
    if text is None or text == "largest":
        return text
    try:
        x, y = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected X,Y (pixels) or largest, got {text!r}") from None
    if not (0 <= x < float("inf") and 0 <= y < float("inf")):
        raise ValueError(f"expected a point inside the frame, got {text!r}")
    return x, y


# The defaults where none is given: a GPU runs the full schedule at 427 px in about a
# minute per 50 frames; a CPU is some 40x slower per pixel-step, so it works coarser.
DEFAULTS = {"cuda": dict(max_side=427, iters=800), "cpu": dict(max_side=160, iters=300)}
