"""The inputs of the layer nets: fixed noise codes, one per frame, correlated in
time (every task's per-frame layers are drawn from them)."""
from __future__ import annotations

import math

import torch
from torch import nn


class FrameCodes(nn.Module):
    """Fixed noise inputs, one per frame, correlated in time: a stationary
    Gaussian AR(1) sequence, so neighbouring frames get near codes and the shared
    net can vary per frame without flicker. `perturb` adds the small per-step
    noise (reg_noise_std) that keeps the nets from fitting noise."""

    def __init__(self, num_frames: int, channels: int, height: int, width: int,
                 correlation: float = 0.95, scale: float = 0.1, reg_noise_std: float = 1.0 / 30,
                 generator: torch.Generator | None = None):
        super().__init__()
        codes = torch.empty(num_frames, channels, height, width)
        codes[0] = torch.randn(channels, height, width, generator=generator)
        innovation = math.sqrt(1.0 - correlation ** 2)
        for t in range(1, num_frames):
            codes[t] = correlation * codes[t - 1] + innovation * torch.randn(
                channels, height, width, generator=generator)
        # Fixed inputs, drawn from the seed, are buffers outside the state dict
        # (persistent=False): BestState keeps no copy of them, which would double
        # the largest thing a long clip holds.
        self.register_buffer("codes", codes * scale, persistent=False)
        self.reg_noise_std = reg_noise_std

    def forward(self, frames: torch.Tensor, perturb: bool = True) -> torch.Tensor:
        z = self.codes[frames]
        if perturb and self.reg_noise_std > 0:
            z = z + self.reg_noise_std * torch.randn_like(z)
        return z
