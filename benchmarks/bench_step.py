"""One full optimisation step of the default `fgbg` model (three skip nets,
the mask net, Adam) with the fused operators, against the same step with the
pure-PyTorch reference losses, as a ratio measured in one run.

    python -m benchmarks.bench_step [--device cuda] [--frames 50] [--max-side 427] [--window 8] [--bf16]

The clip is the shipped sample (its frames repeated to --frames), at the
default working size; the camera is taken as still (identity homographies),
which does not change the cost of a step. --bf16: the step under bfloat16 autocast
(`fgbg` itself runs in float32), to see what mixed precision would buy.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch


from ddip_video.analysis.motion import MotionHints
from ddip_video.ops import _loader
from ddip_video.fit import total_loss
from ddip_video.tasks.fgbg.model import FgbgModel
from ddip_video.tasks.fgbg.options import DEFAULTS, FgbgOptions
from ddip_video.tasks.fgbg.separate import FgbgFit
from ddip_video.video import read_video

SAMPLE = Path(__file__).resolve().parents[1] / "ddip_video" / "data" / "blackswan.mp4"


def clip(frames: int, max_side: int) -> torch.Tensor:
    video, _ = read_video(SAMPLE, max_side=max_side)
    return video[torch.arange(frames) % len(video)]


def time_steps(model, optimizer, frames, hint, opts, window, steps, device, bf16=False) -> float:
    idx = torch.arange(window, device=device)
    task = FgbgFit(model, frames, hint, opts, warmup=0)  # the full objective, not the warm-up's

    def one():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = total_loss(task.loss_terms(idx, opts.iters - 1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for _ in range(3):
        one()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            one()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            one()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--max-side", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--window", type=int, default=FgbgOptions.window)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--bf16", action="store_true", help="also time the step under bfloat16 autocast")
    args = parser.parse_args()
    device = torch.device(args.device)
    steps = args.steps or (30 if device.type == "cuda" else 5)
    defaults = DEFAULTS[device.type]
    frames = clip(args.frames, args.max_side or defaults["max_side"])
    t, _, h, w = frames.shape
    prob = np.zeros((t, h, w), np.float32)
    prob[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 0.9
    hints = MotionHints(prob, prob > 0.5, np.tile(np.eye(3), (t, 1, 1)), True)
    opts = FgbgOptions(iters=defaults["iters"])
    results = {}
    runs = [("fused", False, False), ("reference", True, False)] + [("fused bf16", False, True)] * args.bf16
    for name, force_reference, bf16 in runs:
        _loader.FORCE_REFERENCE = force_reference
        model = FgbgModel(frames, hints, torch.Generator().manual_seed(0)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
        hint = torch.from_numpy(prob).unsqueeze(1).to(device)
        results[name] = time_steps(model, optimizer, frames.to(device), hint, opts, args.window, steps, device,
                                   bf16)
    _loader.FORCE_REFERENCE = False
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"fgbg step: {args.window} frames of {w}x{h} per step, {where}, torch {torch.__version__}")
    for name, ms in results.items():
        print(f"  {name:9s} {ms:8.2f} ms per step ({ms / args.window:.2f} ms per frame)")
    print(f"  reference / fused = {results['reference'] / results['fused']:.2f}x")
    if args.bf16:
        print(f"  fused / fused bf16 = {results['fused'] / results['fused bf16']:.2f}x")


if __name__ == "__main__":
    main()
