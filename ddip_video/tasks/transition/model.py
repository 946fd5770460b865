"""`transition`'s model: two shots, each a skip net shared by every frame and fed
time-correlated codes (or exactly black, a fade's solid shot), and the curve of
the mix, alpha_t, one non-increasing value per frame. Its objective: the frames
rebuilt from the mix (the fused composite loss with an N x 1 x 1 x 1 mask) and
the exclusion loss between the shots (docs/design.md)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...codes import FrameCodes
from ...nets import SkipNet
from ...ops import composite_recon_loss, exclusion_loss
from .options import TransitionOptions


class AlphaCurve(nn.Module):
    """alpha_t for t = 0 .. T-1, non-increasing from alpha_0 = 1 to alpha_{T-1} = 0.

    A softmax over the T - 1 gaps between frames gives how much alpha drops in
    each (bin k: between frames k and k + 1), so alpha_t is the mass of the bins
    from t on: shot A alone in the first frame, shot B alone in the last, by
    definition. The logits are a prior (the log of the classic estimate's
    drops) plus a small 1-D convolutional net over time applied to fixed,
    time-correlated codes; its last layer starts at zero, so the curve starts
    as the classic estimate. Every gap gets `floor` on top of its share, so
    that the net can move mass there; on a clip longer than 40 frames the 39
    gaps' worth is shared by all of them, else the little drops add up along
    a long single-shot stretch (0.04 over 200 frames at 2e-4 a gap) and its
    frames no longer count as one shot alone."""

    def __init__(self, prior: np.ndarray, code_channels: int = 8, hidden: int = 32, floor: float = 2e-4,
                 generator: torch.Generator | None = None):
        super().__init__()
        prior = np.clip(np.asarray(prior, dtype=np.float64), 0.0, 1.0)
        if len(prior) < 2:
            raise ValueError("an alpha curve needs at least 2 frames")
        drops = np.maximum(-np.diff(np.concatenate([[1.0], prior[1:-1], [0.0]])), 0.0)
        floor *= min(1.0, 39 / len(drops))
        prior_logits = torch.from_numpy(np.log(drops / max(drops.sum(), 1e-12) + floor)).float()
        self.register_buffer("prior", prior_logits, persistent=False)  # fixed, like FrameCodes.codes
        codes = FrameCodes(len(drops), code_channels, 1, 1, correlation=0.9, scale=1.0,
                           generator=generator).codes
        self.register_buffer("codes", codes[:, :, 0, 0].t().unsqueeze(0), persistent=False)  # 1 x C x (T - 1)
        self.net = nn.Sequential(nn.Conv1d(code_channels, hidden, 5, padding=2), nn.LeakyReLU(0.2),
                                 nn.Conv1d(hidden, hidden, 5, padding=2), nn.LeakyReLU(0.2),
                                 nn.Conv1d(hidden, 1, 5, padding=2))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self) -> torch.Tensor:
        logits = self.prior + self.net(self.codes)[0, 0]
        mass = torch.softmax(logits, dim=0)
        after = torch.flip(torch.cumsum(torch.flip(mass, [0]), 0), [0])  # after[k] = mass of bins k.. (gaps k+1..)
        return torch.cat([after.new_ones(1), after[1:], after.new_zeros(1)]).clamp(0, 1)


class Shot(nn.Module):
    """One shot: a skip net shared by every frame, fed time-correlated codes."""

    def __init__(self, num_frames: int, height: int, width: int, generator: torch.Generator,
                 correlation: float = 0.95):
        super().__init__()
        self.codes = FrameCodes(num_frames, 8, height, width, correlation=correlation, generator=generator)
        self.net = SkipNet(8, 3)

    def forward(self, idx: torch.Tensor, perturb: bool = True) -> torch.Tensor:
        return self.net(self.codes(idx, perturb))


class BlackShot(nn.Module):
    """A fade's black shot: exactly zero."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.shape = (3, height, width)

    def forward(self, idx: torch.Tensor, perturb: bool = True) -> torch.Tensor:
        return torch.zeros(len(idx), *self.shape, device=idx.device)


class TransitionModel(nn.Module):
    def __init__(self, num_frames: int, height: int, width: int, prior_alpha: np.ndarray,
                 black_a: bool, black_b: bool, generator: torch.Generator):
        super().__init__()
        self.alpha = AlphaCurve(prior_alpha, generator=generator)
        self.shot_a = BlackShot(height, width) if black_a else Shot(num_frames, height, width, generator)
        self.shot_b = BlackShot(height, width) if black_b else Shot(num_frames, height, width, generator)
        self.black = (black_a, black_b)

    def forward(self, idx: torch.Tensor, perturb: bool = True):
        """(alpha N x 1 x 1 x 1, shot A, shot B) of frames idx."""
        return self.alpha()[idx].view(-1, 1, 1, 1), self.shot_a(idx, perturb), self.shot_b(idx, perturb)


def loss_terms(opts: TransitionOptions, model: TransitionModel, alpha, shot_a, shot_b,
               frames) -> dict[str, torch.Tensor]:
    """The objective's terms by name: reconstruction of the frames from the mix, and the
    exclusion loss between the two shots' gradients (none for a fade's black shot)."""
    terms = {"recon": composite_recon_loss(alpha, shot_a, shot_b, frames, 1)}
    if not any(model.black) and opts.exclusion_weight > 0:
        terms["exclusion"] = opts.exclusion_weight * exclusion_loss(shot_a, shot_b)
    return terms
