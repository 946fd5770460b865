"""The options every task takes (the CLI's common flags). Importing this loads
no torch: the CLI builds its help from the tasks' options alone."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass
class TaskOptions:
    """Each task's options add its own tuning to these."""
    device: str = "auto"
    max_side: int | None = None      # working resolution (outputs keep the input's size); None: per device
    iters: int | None = None         # optimisation steps; None: per device
    seed: int = 0
    fps: Fraction | None = None      # frame rate of an image folder
    progress: bool = True
