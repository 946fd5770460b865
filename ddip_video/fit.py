"""The optimisation engine every task runs.

A task plugs in a `FitTask`: its model, its parameter groups (a learning rate
each, and the step from which a group trains), its loss terms by name, and the
score its best state is judged by. The engine owns the rest, once for every
task: random windows of consecutive frames, Adam, the progress bar with the
named terms, evaluation every few steps, the best state, the early stop and
its restoring, and inference over overlapping windows.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

import torch
from torch import nn

from .progress import Progress


@dataclass(frozen=True)
class Schedule:
    """How long and how a fit runs. The score is evaluated every `eval_every`
    steps from step `eval_from` on (and at the last step, unless that would be the only
    check: it could only keep the last state); the fit stops once
    it has not improved for `patience` evaluations, but not before `stop_from`."""
    steps: int
    window: int            # consecutive frames per step
    eval_every: int
    patience: int
    eval_from: int = 0     # before it the loss is not yet the objective the score judges
    stop_from: int = 0     # e.g. not before every group has trained


@dataclass
class ParamGroup:
    """Parameters trained at one learning rate, held still before step `start`."""
    params: list[nn.Parameter]
    lr: float
    start: int = 0


class FitTask(Protocol):
    """What a task supplies to `fit`."""
    model: nn.Module

    def param_groups(self) -> list[ParamGroup]:
        """The parameters to train, in groups."""

    def loss_terms(self, idx: torch.Tensor, step: int) -> Mapping[str, torch.Tensor]:
        """The weighted loss terms of one step on frames idx, by name; their sum is the loss."""

    def score(self, idx: torch.Tensor) -> torch.Tensor:
        """The objective of frames idx without perturbation (lower is better), for the best state."""


@dataclass
class FitReport:
    steps: int          # the steps run (fewer than scheduled after an early stop)
    best_step: int      # the step whose state was kept (-1: a fit ended before eval_from)
    best_score: float
    seconds: float
    terms: dict[str, float] = field(default_factory=dict)  # the last step's loss terms


def total_loss(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The terms summed in their order."""
    values = iter(terms.values())
    loss = next(values)
    for value in values:
        loss = loss + value
    return loss


def fit(task: FitTask, num_frames: int, schedule: Schedule, device: torch.device, generator: torch.Generator,
        label: str, progress: bool = True) -> FitReport:
    """Runs the optimisation of `task` on a clip of num_frames frames and leaves its
    model in the best state seen. Windows are drawn from `generator`."""
    window = min(schedule.window, num_frames)
    groups = [group for group in task.param_groups() if group.params]
    optimizer = torch.optim.Adam([dict(params=group.params, lr=group.lr) for group in groups])
    best = BestState(task.model, schedule.patience)
    bar = Progress(schedule.steps, label, progress)
    step, terms = 0, {}
    for step in range(schedule.steps):
        for group in groups:
            if group.start > 0:
                for param in group.params:
                    param.requires_grad_(step >= group.start)
        first = int(torch.randint(0, num_frames - window + 1, (1,), generator=generator))
        idx = torch.arange(first, first + window, device=device)
        terms = task.loss_terms(idx, step)
        loss = total_loss(terms)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.step(loss.detach(), terms)
        last = step == schedule.steps - 1
        since = step - schedule.eval_from
        if since >= 0 and ((since + 1) % schedule.eval_every == 0 or last):
            if last and best.checks == 0:  # a lone check has nothing to choose from: the last state stays
                best.best_step = step
                break
            stale = best.update(evaluate(task, num_frames, window, device), step)
            if stale and step >= schedule.stop_from and not last:
                break
    seconds = bar.close()
    best.restore()
    return FitReport(step + 1, best.best_step, best.best_score, seconds,
                     {name: float(value.detach()) for name, value in terms.items()})


@torch.no_grad()
def evaluate(task: FitTask, num_frames: int, window: int, device: torch.device) -> float:
    """The task's score averaged over consecutive windows covering the clip."""
    total, count = 0.0, 0
    for idx in frame_windows(num_frames, window):
        total += float(task.score(idx.to(device)))
        count += 1
    return total / count


@torch.no_grad()
def windowed_mean(num_frames: int, window: int, device: torch.device,
                  outputs: Callable[[torch.Tensor], Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """Per-frame outputs of the whole clip: outputs(idx) (tensors of len(idx) frames
    each) run on windows that overlap by half, and averaged where they do."""
    sums: list[torch.Tensor] | None = None
    counts = torch.zeros(num_frames, 1, 1, 1, device=device)
    for idx in frame_windows(num_frames, window, overlap=min(window, num_frames) // 2):
        idx = idx.to(device)
        results = outputs(idx)
        if sums is None:
            sums = [result.new_zeros((num_frames, *result.shape[1:])) for result in results]
        for total, result in zip(sums, results):
            total[idx] += result
        counts[idx] += 1
    return [total / counts.view(-1, *[1] * (total.dim() - 1)) for total in sums]


def frame_windows(num_frames: int, window: int, overlap: int = 0) -> list[torch.Tensor]:
    """Consecutive frame windows covering the clip (the last one ends at the
    last frame), each of length min(window, num_frames)."""
    window = min(window, num_frames)
    step = max(1, window - overlap)
    starts = list(range(0, num_frames - window + 1, step))
    if starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return [torch.arange(s, s + window) for s in starts]


class BestState:
    """Keeps a copy of the modules' state at the lowest score seen, and says
    when the score has not improved for `patience` checks. The state is the
    state dict: the weights, not the fixed inputs (non-persistent buffers)."""

    def __init__(self, module: nn.Module, patience: int, min_delta: float = 1e-4):
        self.module, self.patience, self.min_delta = module, patience, min_delta
        self.best_score = math.inf
        self.best_step = -1
        self.state = None
        self.stale = 0
        self.checks = 0

    def update(self, score: float, step: int) -> bool:
        """Records a check; returns True when the optimisation should stop."""
        self.checks += 1
        improved = math.isfinite(score) and (
            self.state is None or score < self.best_score - self.min_delta * abs(self.best_score))
        if improved:
            self.best_score, self.best_step, self.stale = score, step, 0
            self.state = copy.deepcopy(self.module.state_dict())
        else:
            self.stale += 1
        return self.stale >= self.patience

    def restore(self) -> None:
        if self.state is not None:
            self.module.load_state_dict(self.state)
