"""Which answer do `transition`'s own terms prefer: the true shots, or the shots it returns?

    python -m benchmarks.priors_transition DATA_DIR [--pairs A:B ...] [--shapes whole middle]
                                           [--frames N] [--json F]

The dissolves of `eval_transition` (same pairs, shapes and mixing; `transition` run on
them through the CLI's code path at the CPU defaults, its shots read back from their
videos). Both answers mix back into the frames (the RMS of the mix's residual is
printed for each); what tells them apart is what the method assumes of a shot:

- *coherence*: how well a shot agrees with itself along its own motion, the term the
  carry's settling minimises: per step between neighbouring frames, both ways, the shot
  read along its DIS flow (measured on that shot, at the settling's size, where the flow
  passes its forward-backward check) minus the frame, sqrt(d^2 + eps^2) - eps averaged
  (x 1000);
- *sparsity*: the mean of |grad|^0.8 of the shot's grey image (sparse gradients: the
  natural-image prior; lower is preferred);
- *exclusion*: the model's exclusion loss between the two shots of a frame.

Each is given per band of the shot's weight in the frame (the target frame of a step).
Where a shot is faint, an answer that scores lower than the truth on every term is what
any method built from these terms prefers: a better solver moves away from the truth.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.eval_transition import DEFAULT_PAIRS, load_pair, mix_8bit, run_on_mix, shot_weights
from ddip_video.ops.reference import exclusion_loss_reference
from ddip_video.tasks.transition.carry import SETTLE_EPS, SETTLE_SIDE, self_links
from ddip_video.tasks.transition.options import TransitionOptions
from ddip_video.video import frames_to_uint8, working_size

BANDS = ((0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.0))


def shrink(frames8: np.ndarray, side: int = SETTLE_SIDE) -> np.ndarray:
    """T x h x w x 3 uint8 as float32 in [0, 1] at `side` on the longer side."""
    h, w = frames8.shape[1:3]
    size = working_size(w, h, side)
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames8]).astype(np.float32) / 255


def coherence(shots: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(target frame, penalty x 1000) of each step of a shot (T x h x w x 3 float) along
    its own flow, as the carry's settling measures it."""
    source, target, grid, trust = self_links(shots, seen)
    if grid is None:
        return np.zeros(0, int), np.zeros(0)
    frames = torch.from_numpy(shots).permute(0, 3, 1, 2).contiguous()
    seen_there = F.grid_sample(frames[source], grid, mode="bilinear", padding_mode="border", align_corners=True)
    penalty = torch.sqrt((seen_there - frames[target]) ** 2 + SETTLE_EPS ** 2) - SETTLE_EPS
    per_step = (trust * penalty).sum((1, 2, 3)) / (3 * trust.sum((1, 2, 3))).clamp_min(1)
    return target.numpy(), 1000 * per_step.numpy()


def sparsity(frame: np.ndarray) -> float:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float64)
    gx, gy = np.diff(grey, axis=1)[:-1], np.diff(grey, axis=0)[:, :-1]
    return float(np.mean((gx ** 2 + gy ** 2 + 1e-6) ** 0.4))


def exclusion(frame_a: np.ndarray, frame_b: np.ndarray) -> float:
    as_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].double()
    return float(exclusion_loss_reference(as_tensor(frame_a), as_tensor(frame_b)))


def band_means(weights: np.ndarray, values: np.ndarray) -> list:
    """The mean of `values` per band of the weights (None where a band is empty)."""
    out = []
    for low, high in BANDS:
        inside = (weights >= low) & ((weights < high) if high < 1 else (weights <= high))
        out.append(float(values[inside].mean()) if inside.any() else None)
    return out


def shot_terms(shots: np.ndarray, weight: np.ndarray) -> dict:
    mixed = (weight > 0.05) & (weight < 0.95)
    target, penalty = coherence(shots, weight > 0)
    frames = np.nonzero(mixed)[0]
    return dict(coherence=band_means(weight[target], penalty),
                sparsity=band_means(weight[frames], np.array([sparsity(shots[t]) for t in frames])))


def compare_clip(shot_a: torch.Tensor, shot_b: torch.Tensor, shape: str, opts: TransitionOptions,
                 workdir: Path) -> dict:
    alpha, beta = shot_weights(len(shot_a), shape)
    a8, b8 = frames_to_uint8(shot_a), frames_to_uint8(shot_b)
    mixed8 = mix_8bit(a8, b8, alpha, beta)
    _, seconds, got_a, got_b, _, _ = run_on_mix(mixed8, opts, workdir)
    mixed = np.nonzero((alpha > 0.05) & (alpha < 0.95))[0]
    row = dict(seconds=seconds)
    for name, (a, b) in (("truth", (a8, b8)), ("answer", (got_a, got_b))):
        residual = mixed8[mixed].astype(np.float64) - mix_8bit(a, b, alpha, beta)[mixed]
        small_a, small_b = shrink(a), shrink(b)
        row[name] = dict(mix_rms=float(np.sqrt((residual ** 2).mean())),
                         a=shot_terms(small_a, alpha), b=shot_terms(small_b, beta),
                         exclusion=float(np.mean([exclusion(small_a[t], small_b[t]) for t in mixed])))
    return row


def print_clip(name: str, row: dict) -> None:
    truth, answer = row["truth"], row["answer"]
    print(f"{name}: mix RMS (grey levels) truth {truth['mix_rms']:.2f}, answer {answer['mix_rms']:.2f}; "
          f"exclusion truth {truth['exclusion']:.4f}, answer {answer['exclusion']:.4f}; {row['seconds']:.0f} s")
    cell = lambda x, fmt: f"{x:{fmt}}" if x is not None else "-"
    for shot in ("a", "b"):
        for term, fmt in (("coherence", ".2f"), ("sparsity", ".4f")):
            pairs = "  ".join(f"{low:.1f}-{high:.1f}: {cell(t, fmt)} / {cell(a, fmt)}" for (low, high), t, a
                              in zip(BANDS, truth[shot][term], answer[shot][term]))
            print(f"  shot {shot.upper()} {term:<9} (truth / answer, by the shot's weight)  {pairs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, metavar="A:B")
    parser.add_argument("--shapes", nargs="+", default=["whole", "middle"], choices=["whole", "middle"])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    opts = TransitionOptions(device="cpu", seed=args.seed, progress=False)
    rows = []
    for pair in args.pairs:
        shot_a, shot_b = load_pair(args.data_dir, pair, args.frames, None)
        for shape in args.shapes:
            with tempfile.TemporaryDirectory() as workdir:
                row = dict(pair=pair, shape=shape, **compare_clip(shot_a, shot_b, shape, opts, Path(workdir)))
            rows.append(row)
            print_clip(f"{pair} {shape}", row)
            if args.json:
                args.json.write_text(json.dumps(dict(bands=BANDS, rows=rows), indent=1))
    faint = lambda side, shot, term: np.mean([r[side][shot][term][0] for r in rows])
    print("\nwhere a shot is faint (weight < 0.2), the mean over the clips, truth / answer:")
    for shot in ("a", "b"):
        print(f"  shot {shot.upper()}: coherence {faint('truth', shot, 'coherence'):.2f} / "
              f"{faint('answer', shot, 'coherence'):.2f}, sparsity {faint('truth', shot, 'sparsity'):.4f} / "
              f"{faint('answer', shot, 'sparsity'):.4f}")


if __name__ == "__main__":
    main()
