"""Deep-image-prior networks: the 2D "skip" encoder-decoder of Ulyanov et al.
(reflection padding, stride-2 downsampling, BatchNorm, LeakyReLU(0.2), skip
connections, sigmoid out) and its space-time form for masks, which mixes
neighbouring frames after every block."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


LAYER_CHANNELS = (8, 16, 32, 64, 128)  # per level, as in the original Double-DIP


def smallest_side(levels: int = len(LAYER_CHANNELS)) -> int:
    """The shortest input side a skip net of `levels` levels can take: each
    level halves the side (rounding up), and the deepest must still be 2
    pixels, which its 3x3 reflection padding needs (1 pixel fails)."""
    return 2 ** levels + 1


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    pad = (kernel - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    layers.append(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, bias=True))
    return nn.Sequential(*layers)


def conv_bn_act(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(conv(in_ch, out_ch, kernel, stride), nn.BatchNorm2d(out_ch),
                         nn.LeakyReLU(0.2, inplace=True))


class TemporalMix(nn.Module):
    """Mixes each frame's features with its neighbours' in a batch of
    consecutive frames: a (3, 1, 1) convolution over time, added residually."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), bias=False)
        nn.init.zeros_(self.conv.weight)  # starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] < 2:
            return x
        seq = x.permute(1, 0, 2, 3).unsqueeze(0)  # 1 x C x T x H x W
        seq = F.pad(seq, (0, 0, 0, 0, 1, 1), mode="replicate")
        return x + self.conv(seq).squeeze(0).permute(1, 0, 2, 3)


class _Level(nn.Module):
    """One scale of the skip net: a skip branch, a downsampling branch that
    holds the deeper levels, and the merge."""

    def __init__(self, in_ch: int, down: int, up: int, skip: int, deeper: nn.Module | None,
                 deeper_out: int, temporal: bool):
        super().__init__()
        self.skip = conv_bn_act(in_ch, skip, 1) if skip else None
        self.down = nn.Sequential(conv_bn_act(in_ch, down, 3, stride=2), conv_bn_act(down, down, 3))
        self.deeper = deeper
        merged = skip + (deeper_out if deeper is not None else down)
        self.merge = nn.Sequential(nn.BatchNorm2d(merged), conv_bn_act(merged, up, 3), conv_bn_act(up, up, 1))
        self.mix = TemporalMix(up) if temporal else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        if self.deeper is not None:
            y = self.deeper(y)
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.skip is not None:
            y = torch.cat([self.skip(x), y], dim=1)
        y = self.merge(y)
        return self.mix(y) if self.mix is not None else y


class SkipNet(nn.Module):
    """Encoder-decoder with skip connections; any input size (each level
    upsamples to its input's exact size). Output in [0, 1].

    temporal=True makes it a space-time net for a batch of consecutive frames:
    every level mixes neighbouring frames (see TemporalMix)."""

    def __init__(self, in_channels: int, out_channels: int,
                 channels: Sequence[int] = LAYER_CHANNELS, skip_channels: int | Sequence[int] = 4,
                 temporal: bool = False):
        super().__init__()
        skips = [skip_channels] * len(channels) if isinstance(skip_channels, int) else list(skip_channels)
        deeper, deeper_out = None, 0
        for level in reversed(range(len(channels))):
            in_ch = in_channels if level == 0 else channels[level - 1]
            deeper = _Level(in_ch, channels[level], channels[level], skips[level], deeper,
                            deeper_out, temporal)
            deeper_out = channels[level]
        self.body = deeper
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(x)))
