"""Progress bars: one for every phase of a job (the classic analysis, the
optimisation with its loss terms and an ETA, the writing of the outputs)."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Mapping

from tqdm.auto import tqdm

# Where stderr is a file or a pipe (a log, a batch job), a bar redraws this seldom: at
# tqdm's pace (10 times a second) an hour's run would write some 36000 redraws into it.
LOG_REDRAW_SECONDS = 30.0


def progress_bar(description: str, unit: str, enabled: bool = True, iterable: Iterable | None = None,
                 total: int | None = None) -> tqdm:
    """Every phase's tqdm bar (a context manager; over `iterable` if given), gone when
    done. The phases: the motion analysis (some 0.12 s a frame on 2 CPU threads), the
    optimisation (Progress), and the writing of the full-size outputs (fgbg: 0.5 s a
    1080p frame)."""
    interval = 0.1 if sys.stderr.isatty() else LOG_REDRAW_SECONDS
    return tqdm(iterable, total=total, desc=description, unit=unit, disable=not enabled, leave=False,
                dynamic_ncols=True, mininterval=interval, maxinterval=max(10.0, interval))


class Progress:
    """A tqdm bar over the optimisation's steps: the loss, its named terms and an ETA."""

    def __init__(self, total: int, description: str, enabled: bool = True):
        self.bar = progress_bar(description, "it", enabled, total=total)
        self.start = time.perf_counter()

    def step(self, loss, terms: Mapping[str, object] | None = None) -> None:
        """One step done; loss (and terms, each a 0-dim tensor) shown every 10 steps."""
        self.bar.update(1)
        if self.bar.n % 10 == 0 and not self.bar.disable:  # .item() waits for the device
            shown = {"loss": f"{float(loss.detach()):.4f}"}
            if terms is not None and len(terms) > 1:
                shown.update((name, f"{float(value.detach()):.4f}") for name, value in terms.items())
            self.bar.set_postfix(shown, refresh=False)

    def close(self) -> float:
        """Closes the bar; the seconds since it opened."""
        self.bar.close()
        return time.perf_counter() - self.start
