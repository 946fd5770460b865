"""`transition`'s options and its defaults per device (no torch imported: the CLI reads them)."""
from __future__ import annotations

from dataclasses import dataclass

from ...options import TaskOptions


@dataclass
class TransitionOptions(TaskOptions):
    window: int = 8                  # frames per optimisation step
    lr: float = 0.01
    alpha_lr: float = 0.003
    alpha_warmup: float = 0.3        # fraction of the steps with alpha held at the classic estimate,
    alpha_warmup_min: int = 200      # and at least this many: while the shot nets are crude, a moving
                                     # alpha soaks up their errors (with fewer steps it never moves)
    exclusion_weight: float = 0.05
    pure_tolerance: float = 0.01     # alpha within this of 1 (0) counts as shot A (B) alone
    anchor_frames: int = 16          # frames of each shot alone the model sees either side of the
                                     # transition the classic estimate locates; further ones pass through
    black_level: float = 0.03        # a frame whose mean and 99th percentile stay below 3x this is black
    eval_every: int = 100
    patience: int = 5
    resume: bool = False             # pick up an interrupted run's finished fits in OUTDIR


# The defaults where none is given. A CPU is some 40x slower per pixel-step than a GPU,
# so it works coarser and shorter.
DEFAULTS = {"cuda": dict(max_side=427, iters=3000), "cpu": dict(max_side=160, iters=600)}
