"""How well `ddip-video transition` unmixes dissolves with exact ground truth.

    python -m benchmarks.eval_transition DATA_DIR [--max-side N] [--device D] [--iters N]
        [--frames N] [--clip-side N] [--pairs A:B ...] [--shapes whole middle fade long dip
        white-fade white-dip] [--json F]
        [--per-frame] [--set NAME=VALUE ...]

DATA_DIR holds DAVIS-format sequences (<seq>/frames/*.jpg), like
../shared/data/davis2016. Each pair A:B of sequences gives, over their first
--frames frames, I_t = alpha_t * A_t + (1 - alpha_t) * B_t for each shape:
  whole   alpha falls linearly from 1 to 0 over the whole clip;
  middle  hard A for the first quarter, a linear dissolve over the middle half, hard B;
  fade    "whole" with A black (a fade from black);
  long    long shots around a short dissolve: 100 frames of A, a 12-frame
          dissolve, 100 of B, the --frames frames of each sequence played
          forwards and backwards to that length;
  dip     a dip to black: a quarter of A, A fading out, 2 black frames, B
          fading in, the rest B (I_t = alpha_t A_t + beta_t B_t, beta_t the
          weight of shot B: 0 until B fades in).
  white-fade, white-dip   "fade" and "dip" with white for black (a fade from
          white: A is white; I_t = 1 - (alpha_t (1 - A_t) + beta_t (1 - B_t))).
The mixed clip is written losslessly as a folder of PNGs (at the sequences'
size, or --clip-side on the longer side) and `transition` runs on it through
the CLI's own code path (run_transition, writing every output); the shots are
read back from shot_a.mp4 and shot_b.mp4 and alpha from alpha.csv.

Per clip: PSNR of each recovered shot against the truth, over the frames where
0.05 < alpha_t < 0.95 (in a dip: where that shot's weight is; one PSNR over
all those frames' pixels, at the clip's size), the mean of those frames' own
PSNRs, and the pooled PSNR over the frames where the shot's weight is between 0.2
and 0.8; the same for the trivial
answer (the input as both shots) and for the best the working size allows
(the true shots shrunk to it and enlarged again, then corrected with the true
alpha as `transition` corrects its own: what perfect shots at that size would
score); the mean absolute error of alpha over all frames (in a dip, of beta_t
too); and the wall-clock seconds. --per-frame also prints each shot's PSNR on
every third mixed frame (all of them go to --json). --set changes a field of
TransitionOptions (exclusion_weight=0, ...), for trials.
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch


from ddip_video.tasks.transition.options import TransitionOptions
from ddip_video.tasks.transition.outputs import run_transition, split_residual
from ddip_video.tasks.transition.unmix import resolve_options
from benchmarks.overrides import option_overrides
from ddip_video.video import frames_to_uint8, read_video, resize_frames, working_size

DEFAULT_PAIRS = ["blackswan:car-shadow", "dog:kite-surf", "breakdance:blackswan"]


def ramp(num_frames: int, shape: str) -> np.ndarray:
    """alpha_t of a test shape (the weight of shot A)."""
    if shape in ("whole", "fade"):
        return np.linspace(1.0, 0.0, num_frames)
    if shape == "long":
        return np.r_[np.ones(100), np.linspace(1.0, 0.0, 14)[1:-1], np.zeros(100)]
    if shape == "middle":
        alpha = np.ones(num_frames)
        quarter = num_frames // 4
        end = num_frames - quarter
        alpha[quarter:end] = np.linspace(1.0, 0.0, end - quarter + 2)[1:-1]
        alpha[end:] = 0.0
        return alpha
    raise ValueError(f"unknown shape {shape!r}")


LONG_FRAMES = 212


def shot_weights(num_frames: int, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """(alpha_t, beta_t): the weights of shot A and shot B in a test shape."""
    if shape != "dip":
        alpha = ramp(num_frames, shape)
        return alpha, 1.0 - alpha
    hold, black = num_frames // 4, 2
    fade = (num_frames - 2 * hold - black) // 2
    steps = np.linspace(1.0, 0.0, fade + 2)[1:-1]
    alpha = np.r_[np.ones(hold), steps, np.zeros(num_frames - hold - fade)]
    beta = np.r_[np.zeros(hold + fade + black), steps[::-1], np.ones(num_frames - hold - 2 * fade - black)]
    return alpha, beta


def residual_splits(alpha: np.ndarray, beta: np.ndarray, dip: bool) -> list[tuple[float, tuple[bool, bool]]]:
    """Per frame, the weight and black shot split_residual takes, as `transition`
    gives them (Unmixing.mix_at)."""
    if not dip:
        return [(float(a), (False, False)) for a in alpha]
    return [(float(a), (False, True)) if b == 0 else (1.0 - float(b), (True, False)) for a, b in zip(alpha, beta)]


def mix_8bit(a8: np.ndarray, b8: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """alpha_t A_t + beta_t B_t of two T x h x w x 3 uint8 clips, rounded to uint8."""
    mixed = alpha.reshape(-1, 1, 1, 1) * a8 + beta.reshape(-1, 1, 1, 1) * b8
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def back_and_forth(frames: torch.Tensor, n: int) -> torch.Tensor:
    """n frames: the clip played forwards, backwards, forwards ..."""
    period = 2 * (len(frames) - 1)
    return frames[[min(t % period, period - t % period) for t in range(n)]]


def load_sequence(folder: Path, num_frames: int, side: int | None) -> torch.Tensor:
    frames, _ = read_video(folder, max_side=side)
    return frames[:num_frames]


def load_pair(data_dir: Path, pair: str, num_frames: int, side: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two sequences of "A:B" in a DAVIS-format folder, cut to the same length."""
    frames = []
    for name in pair.split(":"):
        folder = data_dir / name / "frames"
        if not folder.is_dir():
            raise SystemExit(f"no sequence {name} (no folder {folder})")
        frames.append(load_sequence(folder, num_frames, side))
    if frames[0].shape[1:] != frames[1].shape[1:]:
        raise SystemExit(f"{pair}: the sequences differ in size")
    count = min(len(frames[0]), len(frames[1]))
    return frames[0][:count], frames[1][:count]


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 255.0 ** 2 * 1e-10)))  # at most 100 dB (exact)


def shot_scores(got: np.ndarray, truth: np.ndarray, weight: np.ndarray) -> dict:
    """A recovered shot against the truth (T x h x w x 3 uint8), given the shot's weight
    in each frame: the pooled PSNR over the frames where 0.05 < weight < 0.95, the mean
    of those frames' own PSNRs, and the pooled PSNR over the frames where
    0.2 <= weight <= 0.8 (the heart of the dissolve; None if there are none)."""
    mixed = (weight > 0.05) & (weight < 0.95)
    middle = (weight >= 0.2) & (weight <= 0.8)
    return dict(pooled=psnr(got[mixed], truth[mixed]),
                frame_mean=float(np.mean([psnr(got[t], truth[t]) for t in np.nonzero(mixed)[0]])),
                middle=psnr(got[middle], truth[middle]) if middle.any() else None)


def working_size_ceiling(a8: np.ndarray, b8: np.ndarray, mixed8: np.ndarray, splits: list,
                         frames: np.ndarray, max_side: int) -> tuple[float, float]:
    """PSNR of perfect shots at the working size, on `frames` (see the module's doc);
    splits: residual_splits."""
    to_float = lambda x: torch.from_numpy(x[frames]).permute(0, 3, 1, 2).float() / 255
    a, b, mixed = to_float(a8), to_float(b8), to_float(mixed8)
    size = (a.shape[-1], a.shape[-2])
    low = working_size(*size, max_side)
    a_low, b_low = (resize_frames(resize_frames(x, low), size) for x in (a, b))
    chosen = [splits[t] for t in np.nonzero(frames)[0]]
    pairs = [split_residual(m, w, x * (not black[0]), y * (not black[1]), black)  # as the black shot is 0
             for m, (w, black), x, y in zip(mixed, chosen, a_low, b_low)]
    return (psnr(frames_to_uint8(torch.stack([p[0] for p in pairs])), a8[frames]),
            psnr(frames_to_uint8(torch.stack([p[1] for p in pairs])), b8[frames]))


def read_weights(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """alpha.csv's weights of shot A and of shot B (1 - alpha where not written)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    alpha = np.array([float(row["alpha"]) for row in rows])
    return alpha, np.array([float(row["weight_b"]) for row in rows]) if "weight_b" in rows[0] else 1.0 - alpha


def run_on_mix(mixed8: np.ndarray, opts: TransitionOptions, workdir: Path):
    """`transition` run as the CLI runs it on a mixed clip (T x h x w x 3 uint8, written
    losslessly as PNGs): (its result, the seconds, shot A and shot B as read back from
    their videos, the weights of A and of B as read back from alpha.csv)."""
    clip_dir, out_dir = workdir / "clip", workdir / "out"
    clip_dir.mkdir()
    for t, frame in enumerate(mixed8):
        cv2.imwrite(str(clip_dir / f"{t:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    start = time.perf_counter()
    result = run_transition(clip_dir, out_dir, opts)
    seconds = time.perf_counter() - start
    got_a = frames_to_uint8(read_video(out_dir / "shot_a.mp4")[0])
    got_b = frames_to_uint8(read_video(out_dir / "shot_b.mp4")[0])
    got_alpha, got_beta = read_weights(out_dir / "alpha.csv")
    assert len(got_a) == len(got_b) == len(got_alpha) == len(mixed8)
    return result, seconds, got_a, got_b, got_alpha, got_beta


def evaluate_clip(shot_a: torch.Tensor, shot_b: torch.Tensor, shape: str, opts: TransitionOptions,
                  workdir: Path) -> dict:
    """Mixes, writes, runs transition as the CLI does, scores."""
    if shape == "long":
        shot_a, shot_b = back_and_forth(shot_a, LONG_FRAMES), back_and_forth(shot_b, LONG_FRAMES)
    num_frames = len(shot_a)
    white = shape.startswith("white-")
    base = shape.removeprefix("white-")
    if white:  # mixed as a fade of black of the inverted shots, inverted back below
        shot_a, shot_b = 1.0 - shot_a, 1.0 - shot_b
    if base == "fade":
        shot_a = torch.zeros_like(shot_a)
    alpha, beta = shot_weights(num_frames, base)
    a8, b8 = frames_to_uint8(shot_a), frames_to_uint8(shot_b)
    mixed8 = mix_8bit(a8, b8, alpha, beta)
    mixed_a, mixed_b = (alpha > 0.05) & (alpha < 0.95), (beta > 0.05) & (beta < 0.95)
    splits = residual_splits(alpha, beta, base == "dip")
    max_side = resolve_options(opts)[0].max_side
    # PSNR is the same of inverted images, so the best is found as for black
    ceiling_a = working_size_ceiling(a8, b8, mixed8, splits, mixed_a, max_side)[0]
    ceiling_b = working_size_ceiling(a8, b8, mixed8, splits, mixed_b, max_side)[1]
    if white:
        a8, b8, mixed8 = 255 - a8, 255 - b8, 255 - mixed8
    result, seconds, got_a, got_b, got_alpha, got_beta = run_on_mix(mixed8, opts, workdir)
    u = result.unmixing
    pure = np.isin(alpha, (0, 1)) & np.isin(beta, (0, 1))
    found = (got_alpha[pure] == alpha[pure]) & (got_beta[pure] == beta[pure])
    extra = dict(beta_mae=float(np.abs(got_beta - beta).mean())) if base == "dip" else {}
    per_frame = [dict(frame=int(t), alpha=float(alpha[t]), beta=float(beta[t]),
                      a=psnr(got_a[t], a8[t]) if mixed_a[t] else None, b=psnr(got_b[t], b8[t]) if mixed_b[t] else None)
                 for t in np.nonzero(mixed_a | mixed_b)[0]]
    score_a, score_b = shot_scores(got_a, a8, alpha), shot_scores(got_b, b8, beta)
    return dict(frames=num_frames, size=f"{a8.shape[2]}x{a8.shape[1]}", mixed_frames=int((mixed_a | mixed_b).sum()),
                single_shot_frames_found=f"{int(found.sum())}/{int(pure.sum())}",
                psnr_a=score_a["pooled"], psnr_b=score_b["pooled"],
                frame_mean_a=score_a["frame_mean"], frame_mean_b=score_b["frame_mean"],
                middle_a=score_a["middle"], middle_b=score_b["middle"],
                trivial_a=psnr(mixed8[mixed_a], a8[mixed_a]), trivial_b=psnr(mixed8[mixed_b], b8[mixed_b]),
                ceiling_a=ceiling_a, ceiling_b=ceiling_b, **extra,
                alpha_mae=float(np.abs(got_alpha - alpha).mean()),
                alpha_mae_classic=float(np.abs(u.classic_alpha - alpha).mean()),
                kind=u.label, span=[u.first, u.last], seconds=seconds, iterations=u.iterations,
                best=u.best_iteration + 1, device=u.device, max_side=u.options.max_side,
                max_iters=u.options.iters, per_frame=per_frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--max-side", type=int, default=None,
                        help="the model's working size (default: the CLI's for the device)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=None, help="default: the CLI's for the device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=40, help="frames per clip (default 40)")
    parser.add_argument("--clip-side", type=int, default=None,
                        help="shrink the sequences to this longer side before mixing (default: as stored)")
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, metavar="A:B",
                        help=f"sequence pairs, shot A first (default {' '.join(DEFAULT_PAIRS)})")
    parser.add_argument("--shapes", nargs="+", default=["whole", "middle"],
                        choices=["whole", "middle", "fade", "long", "dip", "white-fade", "white-dip"])
    parser.add_argument("--json", type=Path, help="write the per-clip figures here")
    parser.add_argument("--per-frame", action="store_true", help="print PSNR per frame too")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                        help="a TransitionOptions field to change (a trial)")
    args = parser.parse_args()
    opts = TransitionOptions(device=args.device, max_side=args.max_side, iters=args.iters, seed=args.seed,
                             progress=False, **option_overrides(TransitionOptions, args.set))
    rows = []
    for pair in args.pairs:
        shot_a, shot_b = load_pair(args.data_dir, pair, args.frames, args.clip_side)
        for shape in args.shapes:
            with tempfile.TemporaryDirectory() as workdir:
                row = dict(pair=pair, shape=shape, **evaluate_clip(shot_a, shot_b, shape, opts, Path(workdir)))
            rows.append(row)
            if args.json:  # after every clip, so that a run cut short keeps what it measured
                write_json(args, rows)
            print(f"{pair:<24}{shape:<7} A {row['psnr_a']:6.2f} dB  B {row['psnr_b']:6.2f} dB  "
                  f"(per frame {row['frame_mean_a']:5.2f} / {row['frame_mean_b']:5.2f}; "
                  f"trivial {row['trivial_a']:5.2f} / {row['trivial_b']:5.2f}, best {row['ceiling_a']:5.2f} / "
                  f"{row['ceiling_b']:5.2f})  alpha MAE {row['alpha_mae']:.4f} "
                  f"(classic {row['alpha_mae_classic']:.4f})"
                  + (f" beta MAE {row['beta_mae']:.4f}" if "beta_mae" in row else "")
                  + f"  {row['kind']} {row['span'][0]}-{row['span'][1]}  "
                  f"single-shot frames found {row['single_shot_frames_found']}  "
                  f"{row['seconds']:.1f} s", flush=True)
            if args.per_frame:
                print("  per frame (weight: dB) A " + profile(row["per_frame"], "alpha", "a")
                      + "\n                        B " + profile(row["per_frame"], "beta", "b"), flush=True)
    print(f"\ntransition at --max-side {rows[0]['max_side']} --iters {rows[0]['max_iters']} on {rows[0]['device']}, "
          f"{rows[0]['frames']} frames at {rows[0]['size']}; PSNR over frames with 0.05 < alpha < 0.95")
    columns = [("A dB", "psnr_a", ".2f"), ("B dB", "psnr_b", ".2f"), ("frm A", "frame_mean_a", ".2f"),
               ("frm B", "frame_mean_b", ".2f"), ("mid A", "middle_a", ".2f"), ("mid B", "middle_b", ".2f"),
               ("triv A", "trivial_a", ".2f"),
               ("triv B", "trivial_b", ".2f"), ("best A", "ceiling_a", ".2f"), ("best B", "ceiling_b", ".2f"),
               ("a MAE", "alpha_mae", ".4f"), ("s", "seconds", ".1f")]
    print(f"{'clip':<31}" + "".join(f"{title:>8}" for title, _, _ in columns))
    cell = lambda value, fmt: f"{value:>8{fmt}}" if value is not None else f"{'-':>8}"
    for r in rows:
        print(f"{r['pair'] + ' ' + r['shape']:<31}" + "".join(cell(r[key], fmt) for _, key, fmt in columns))
    means = {key: _mean([r[key] for r in rows]) for _, key, _ in columns}
    print(f"{'mean':<31}" + "".join(cell(means[key], fmt) for _, key, fmt in columns))
    print("(A dB, B dB: pooled over the frames with 0.05 < weight < 0.95; frm: the mean of those frames' own\n"
          " PSNR; mid: pooled over the frames with 0.2 <= weight <= 0.8; triv: the input as both shots;\n"
          " best: perfect shots at the working size, see the doc)")
    if args.json:
        write_json(args, rows, means)


def _mean(values: list) -> float | None:
    """The mean of the values given (None: a clip without such frames)."""
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def profile(per_frame: list[dict], weight: str, key: str) -> str:
    """Every third frame where that shot mixes, as weight: PSNR."""
    frames = [p for p in per_frame if p[key] is not None][::3]
    return " ".join(f"{p[weight]:.2f}: {p[key]:.1f}" for p in frames)


def write_json(args, rows: list[dict], means: dict | None = None) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, rows=rows,
                                         means=means, complete=means is not None), indent=2))


if __name__ == "__main__":
    main()
