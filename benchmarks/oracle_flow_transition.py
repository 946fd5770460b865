"""An oracle-flow baseline for `transition`: both shots solved for with the true motion.

    python -m benchmarks.oracle_flow_transition DATA_DIR [--side N] [--frames N] [--pairs A:B ...]
        [--shapes whole middle] [--steps N] [--temporal W] [--tv W] [--exclusion W] [--json F]

The dissolves of eval_transition.py (same pairs, shapes and 8-bit mixing), made at
--side pixels on the longer side (160: the CPU working size, so no resizing
enters the figures). Both shots are then solved for, every pixel of every frame
a free variable, given what `transition` has to estimate and this script is
handed: the true alpha of every frame and the true optical flow within each
shot (OpenCV DIS between consecutive frames of the clean shot, as
ddip_video.analysis.motion computes it). The objective: the mix reproduced exactly
(squared error), each shot's frame t close to its frame t-1 warped along that
shot's flow (L1, weight --temporal), and two image priors: total variation
(--tv) and the exclusion loss `transition` uses (--exclusion). Adam, --steps.

Printed per clip: PSNR of each shot over the frames with 0.05 < alpha < 0.95
(as eval_transition.py scores them), and per frame for every third such frame.

What it is: one solver, with hand-picked priors, handed the true alpha and flow. It is
not a bound on what the information allows: under its own objective the true shots can
score worse than its solution, and other uses of the same true flow (a per-pixel fusion
along it, with occlusion checks, both ways) score higher (benchmarks/notes/transition.md).
A baseline to compare methods with, not a ceiling.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F


from benchmarks.eval_transition import DEFAULT_PAIRS, load_sequence, mix_8bit, psnr, shot_weights
from ddip_video.analysis.motion import dense_flows
from ddip_video.ops import exclusion_loss
from ddip_video.video import frames_to_uint8


def sampling_grids(shot8: np.ndarray) -> torch.Tensor:
    """(T-1) x h x w x 2: for each pixel of frame t+1, where it was in frame t, in
    grid_sample's [-1, 1] coordinates."""
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in shot8]
    _, backward = dense_flows(gray)  # backward[t]: flow t+1 -> t
    h, w = gray[0].shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x = (xs + backward[..., 0]) / (w - 1) * 2 - 1
    y = (ys + backward[..., 1]) / (h - 1) * 2 - 1
    return torch.from_numpy(np.stack([x, y], axis=-1))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()


def solve(mixed: torch.Tensor, alpha: np.ndarray, grids: tuple[torch.Tensor, torch.Tensor],
          args) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.tensor(alpha, dtype=torch.float32).view(-1, 1, 1, 1)
    shots = [mixed.clone().requires_grad_(), mixed.clone().requires_grad_()]
    optimizer = torch.optim.Adam(shots, lr=0.01)
    for step in range(args.steps):
        if step == args.steps // 2:
            for group in optimizer.param_groups:
                group["lr"] = 0.003
        a, b = shots
        loss = 100 * (weight * a + (1 - weight) * b - mixed).square().mean()
        for shot, grid in zip(shots, grids):
            warped = F.grid_sample(shot[:-1], grid, align_corners=True, padding_mode="border")
            loss = loss + args.temporal * (shot[1:] - warped).abs().mean() + args.tv * total_variation(shot)
        if args.exclusion > 0:
            loss = loss + args.exclusion * exclusion_loss(a, b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return tuple(shot.detach().clamp(0, 1) for shot in shots)


def solve_clip(shot_a: torch.Tensor, shot_b: torch.Tensor, shape: str, args) -> dict:
    alpha, beta = shot_weights(len(shot_a), shape)
    a8, b8 = frames_to_uint8(shot_a), frames_to_uint8(shot_b)
    mixed = torch.from_numpy(mix_8bit(a8, b8, alpha, beta)).permute(0, 3, 1, 2).float() / 255
    got_a, got_b = (frames_to_uint8(x) for x in solve(mixed, alpha, (sampling_grids(a8), sampling_grids(b8)), args))
    mixed_frames = np.nonzero((alpha > 0.05) & (alpha < 0.95))[0]
    return dict(psnr_a=psnr(got_a[mixed_frames], a8[mixed_frames]),
                psnr_b=psnr(got_b[mixed_frames], b8[mixed_frames]),
                per_frame=[dict(frame=int(t), alpha=float(alpha[t]), a=psnr(got_a[t], a8[t]), b=psnr(got_b[t], b8[t]))
                           for t in mixed_frames])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--side", type=int, default=160)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, metavar="A:B")
    parser.add_argument("--shapes", nargs="+", default=["whole", "middle"], choices=["whole", "middle"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--temporal", type=float, default=1.0)
    parser.add_argument("--tv", type=float, default=0.03)
    parser.add_argument("--exclusion", type=float, default=0.1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for pair in args.pairs:
        shots = [load_sequence(args.data_dir / name / "frames", args.frames, args.side) for name in pair.split(":")]
        count = min(map(len, shots))
        for shape in args.shapes:
            row = dict(pair=pair, shape=shape, **solve_clip(shots[0][:count], shots[1][:count], shape, args))
            rows.append(row)
            profile = " ".join(f"{p['alpha']:.2f}:{p['a']:.1f}/{p['b']:.1f}" for p in row["per_frame"][::3])
            print(f"{pair:<24}{shape:<7} A {row['psnr_a']:6.2f} dB  B {row['psnr_b']:6.2f} dB   "
                  f"per frame (alpha: A/B dB) {profile}", flush=True)
    mean_a, mean_b = (float(np.mean([r[key] for r in rows])) for key in ("psnr_a", "psnr_b"))
    print(f"{'mean':<31} A {mean_a:6.2f} dB  B {mean_b:6.2f} dB  (true alpha and true per-shot flow, "
          f"{count} frames at --side {args.side})")
    if args.json:
        args.json.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, rows=rows,
                                             means=dict(psnr_a=mean_a, psnr_b=mean_b)), indent=2))


if __name__ == "__main__":
    main()
