"""The classic analysis `transition` runs before its optimisation, on clips with
exact ground truth: the alpha estimate it starts from, and whether it calls a
clip one shot (no transition).

    python -m benchmarks.eval_classic_alpha DATA_DIR [--side N] [--singles PATH ...] [--h264 CRF] [--twice]
        [--fades] [--json F]

DATA_DIR holds DAVIS-format sequences (<seq>/frames/*.jpg), like
../shared/data/davis2016. Every sequence is read at --side pixels on the longer
side (160: the CPU default working size), and clips are mixed there and
rounded to 8 bits:
  short    every ordered pair of sequences, their first 40 frames, mixed "whole"
           (alpha falls linearly over the clip) and "middle" (10 frames of A, a
           20-frame dissolve, 10 of B)
  cut      the same pairs, a hard cut after frame 3 and after frame 20
  long     four pairs, each sequence played forwards and backwards to length, as
           long shots around a short dissolve (before+mixed+after frames)
  single   every sequence alone, its first 40 frames and whole, and each --singles
           clip (a video file or a folder of frames)
  twice    with --twice, clips that change shot twice, every ordered triple of
           sequences A, B, C (first 40 frames): two cuts (12 frames of A, 14
           of B, 14 of C), a cut then a dissolve (10 A, 10 B, a 20-frame
           dissolve to C, 10 C) and a dissolve then a cut (10 A, a 20-frame
           dissolve to B, 10 B, 10 C)
  fade     with --fades, every ordered pair of sequences (first 40 frames) as
           a fade from black (B fading in over the whole clip), a fade to
           black (A fading out) and eval_transition's dip to black; only
           whether `transition` refuses them (it must not), from `unmix`
           itself with one optimisation step, black frames and all
Per clip: the mean absolute error of the whole-clip estimate (whole_clip_alpha)
and of the located one the model starts from (classic_alpha); how many frames
that show one shot alone each leaves mixed (not exactly 1 or 0); whether the
clip is called one shot (looks_like_one_shot, as `transition` decides it);
whether a clip not called one shot is refused for changing shot more than once
(refuse_more_changes, as `transition` decides it; the right answer is yes for
the "twice" clips and no for all others); whether the located estimate mixes no
frame at all (a step: `transition` then takes the clip as a hard cut and runs
no optimisation), and whether that step is the true alpha.
With --h264 CRF every clip is first encoded as H.264 at that CRF (23 is
libx264's default, higher is lossier) and decoded again, as a user's rendered
video comes: at --side, so the coding noise weighs more than on a full-size
video shrunk to the working size afterwards.
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


from ddip_video.errors import InputError
from ddip_video.analysis.dissolve import classic_alpha, classic_view, looks_like_one_shot, whole_clip_alpha
from ddip_video.tasks.transition.options import TransitionOptions
from ddip_video.tasks.transition.unmix import refuse_more_changes, unmix
from benchmarks.eval_transition import back_and_forth, ramp, shot_weights
from ddip_video.video import StreamingWriter, frames_to_uint8, read_video

LONG_PAIRS = [("blackswan", "car-shadow"), ("dog", "kite-surf"), ("breakdance", "blackswan"), ("car-shadow", "dog")]
LONG_LAYOUTS = [(100, 12, 100), (200, 25, 200), (60, 50, 60), (10, 8, 200), (150, 1, 150)]


def layout(before: int, mixed: int, after: int) -> np.ndarray:
    return np.r_[np.ones(before), np.linspace(1.0, 0.0, mixed + 2)[1:-1], np.zeros(after)]


def mix(a: torch.Tensor, b: torch.Tensor, alpha: np.ndarray, beta: np.ndarray | None = None) -> torch.Tensor:
    """alpha * a + beta * b per frame, rounded to 8 bits; beta 1 - alpha unless given (a dip)."""
    beta = 1 - alpha if beta is None else beta
    w_a, w_b = (torch.from_numpy(np.asarray(w)).float().view(-1, 1, 1, 1) for w in (alpha, beta))
    return torch.round((w_a * a + w_b * b) * 255) / 255


def clips(sequences: dict[str, torch.Tensor], singles: dict[str, torch.Tensor], twice: bool = False,
          fades: bool = False):
    """(group, name, frames, true alpha or None for a single shot or a clip
    that changes shot twice)."""
    names = sorted(sequences)
    for a, b in itertools.permutations(names, 2):
        n = min(40, len(sequences[a]), len(sequences[b]))
        for shape in ("whole", "middle"):
            alpha = ramp(n, shape)
            yield "short", f"{a}:{b} {shape}", mix(sequences[a][:n], sequences[b][:n], alpha), alpha
    for a, b in itertools.permutations(names, 2):
        n = min(40, len(sequences[a]), len(sequences[b]))
        for cut in (3, 20):
            alpha = layout(cut + 1, 0, n - cut - 1)
            yield "cut", f"{a}:{b} cut after {cut}", mix(sequences[a][:n], sequences[b][:n], alpha), alpha
    for (a, b), parts in itertools.product(LONG_PAIRS, LONG_LAYOUTS):
        if a in sequences and b in sequences:
            alpha = layout(*parts)
            frames = mix(back_and_forth(sequences[a], len(alpha)), back_and_forth(sequences[b], len(alpha)), alpha)
            yield "long", f"{a}:{b} {'+'.join(map(str, parts))}", frames, alpha
    for name in names:
        yield "single", f"{name} first 40", sequences[name][:40], None
        yield "single", f"{name} whole", sequences[name], None
    for name, frames in singles.items():
        yield "single", name, frames, None
    if twice:
        yield from twice_clips(sequences)
    if fades:
        yield from fade_clips(sequences)


def twice_clips(sequences: dict[str, torch.Tensor]):
    """The "twice" group (see the doc): clips with two changes of shot."""
    for a, b, c in itertools.permutations(sorted(sequences), 3):
        if min(len(sequences[s]) for s in (a, b, c)) < 40:
            continue
        shot_a, shot_b, shot_c = (sequences[s][:40] for s in (a, b, c))
        dissolve = layout(0, 20, 0)
        yield "twice", f"{a}|{b}|{c} two cuts", torch.cat([shot_a[:12], shot_b[12:26], shot_c[26:40]]), None
        yield "twice", f"{a}|{b}|{c} cut, dissolve", torch.cat(
            [shot_a[:10], shot_b[:10], mix(shot_b[10:30], shot_c[10:30], dissolve), shot_c[30:40]]), None
        yield "twice", f"{a}|{b}|{c} dissolve, cut", torch.cat(
            [shot_a[:10], mix(shot_a[10:30], shot_b[10:30], dissolve), shot_b[30:40], shot_c[:10]]), None


def fade_clips(sequences: dict[str, torch.Tensor]):
    """The "fade" group (see the doc): fades and dips to black, true alpha None."""
    for a, b in itertools.permutations(sorted(sequences), 2):
        n = min(40, len(sequences[a]), len(sequences[b]))
        shot_a, shot_b = sequences[a][:n], sequences[b][:n]
        black = torch.zeros_like(shot_a)
        for shape, (first, second) in (("fade from black", (black, shot_b)), ("fade to black", (shot_a, black)),
                                       ("dip", (shot_a, shot_b))):
            alpha, beta = shot_weights(n, "dip" if shape == "dip" else "whole")
            yield "fade", f"{a}:{b} {shape}", mix(first, second, alpha, beta), None


def refused_by_unmix(frames: torch.Tensor) -> bool:
    """Whether `transition` refuses the clip as changing shot more than once."""
    try:
        unmix(frames, TransitionOptions(device="cpu", max_side=max(frames.shape[-2:]), iters=1, progress=False))
    except InputError as error:
        if "more than once" in str(error):
            return True
        raise
    return False


def h264_round_trip(frames: torch.Tensor, crf: int) -> torch.Tensor:
    """The frames encoded as H.264 (an .mp4, the project's own writer) and decoded again."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        with StreamingWriter(path, Fraction(24), (frames.shape[-1], frames.shape[-2]), "rgb", quality=crf) as writer:
            for frame in frames_to_uint8(frames):
                writer.write(frame)
        return read_video(path)[0]


def score(frames: torch.Tensor, alpha: np.ndarray | None) -> dict:
    start = time.perf_counter()
    view = classic_view(frames)
    whole = whole_clip_alpha(view)
    located = classic_alpha(frames, view, whole)
    row = dict(frames=len(frames), one_shot=bool(looks_like_one_shot(view, whole)), refused=False,
               step=not bool(np.any((located > 0) & (located < 1))), seconds=time.perf_counter() - start)
    if not row["one_shot"]:
        try:
            refuse_more_changes(view)
        except InputError:
            row["refused"] = True
    if alpha is not None:
        pure = (alpha == 0) | (alpha == 1)
        row.update(pure=int(pure.sum()),
                   whole_mae=float(np.abs(whole - alpha).mean()), located_mae=float(np.abs(located - alpha).mean()),
                   whole_left_mixed=int((whole[pure] != alpha[pure]).sum()),
                   located_left_mixed=int((located[pure] != alpha[pure]).sum()),
                   exact_step=row["step"] and bool(np.array_equal(located, alpha)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--side", type=int, default=160, help="longer side the clips are mixed at (default 160)")
    parser.add_argument("--singles", nargs="*", type=Path, default=[], help="more single-shot clips")
    parser.add_argument("--h264", type=int, metavar="CRF", help="round-trip every clip through H.264 at this CRF")
    parser.add_argument("--twice", action="store_true", help="also the clips that change shot twice")
    parser.add_argument("--fades", action="store_true", help="also fades and dips to black (refusal only)")
    parser.add_argument("--json", type=Path, help="write the per-clip figures here")
    args = parser.parse_args()
    folders = sorted(p for p in args.data_dir.iterdir() if (p / "frames").is_dir())
    if not folders:
        raise SystemExit(f"no DAVIS-format sequences (<seq>/frames) in {args.data_dir}")
    sequences = {p.name: read_video(p / "frames", max_side=args.side)[0] for p in folders}
    singles = {p.name: read_video(p, max_side=args.side)[0] for p in args.singles}
    rows = []
    for group, name, frames, alpha in clips(sequences, singles, args.twice, args.fades):
        if args.h264 is not None:
            frames = h264_round_trip(frames, args.h264)
        if group == "fade":
            rows.append(dict(group=group, clip=name, frames=len(frames), refused=refused_by_unmix(frames)))
            print(f"{group:<7}{name:<46}{len(frames):>5} frames  refused: {rows[-1]['refused']}", flush=True)
            continue
        row = dict(group=group, clip=name, **score(frames, alpha))
        rows.append(row)
        if alpha is None:
            print(f"{group:<7}{name:<46}{row['frames']:>5} frames  one shot: {row['one_shot']}  "
                  f"refused: {row['refused']}", flush=True)
        else:
            print(f"{group:<7}{name:<46}{row['frames']:>5} frames  MAE whole {row['whole_mae']:.4f} located "
                  f"{row['located_mae']:.4f}  single-shot frames left mixed {row['whole_left_mixed']} / "
                  f"{row['located_left_mixed']} of {row['pure']}  one shot: {row['one_shot']}  "
                  f"refused: {row['refused']}  step: {row['step']}", flush=True)
    coding = f", H.264 at CRF {args.h264}" if args.h264 is not None else ""
    print(f"\nat {args.side} px{coding}; per group: mean (max) alpha error of the whole-clip / located estimate, "
          "single-shot frames left mixed, clips called one shot, clips refused as changing shot more than once, "
          "clips whose located estimate is a step (and exact)")
    for group in ("short", "cut", "long", "single", "twice", "fade"):
        rs = [r for r in rows if r["group"] == group]
        if not rs:
            continue
        if group == "fade":
            print(f"{group:<7}{len(rs):>3} clips  refused {sum(r['refused'] for r in rs)} of {len(rs)}")
            continue
        called, refused = sum(r["one_shot"] for r in rs), sum(r["refused"] for r in rs)
        if group in ("single", "twice"):
            print(f"{group:<7}{len(rs):>3} clips  called one shot {called} of {len(rs)}  "
                  f"refused {refused} of {len(rs)}")
            continue
        mae = lambda key: f"{np.mean([r[key] for r in rs]):.4f} ({np.max([r[key] for r in rs]):.4f})"
        left = lambda key: sum(r[key] for r in rs)
        print(f"{group:<7}{len(rs):>3} clips  MAE {mae('whole_mae')} / {mae('located_mae')}  left mixed "
              f"{left('whole_left_mixed')} / {left('located_left_mixed')} of {left('pure')}  "
              f"called one shot {called} of {len(rs)}  refused {refused} of {len(rs)}  "
              f"a step (no optimisation) {left('step')} of {len(rs)}, exact {left('exact_step')}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(side=args.side, h264=args.h264, rows=rows), indent=2))


if __name__ == "__main__":
    main()
