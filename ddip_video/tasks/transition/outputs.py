"""`transition`'s outputs: both shots at the input's full size (each frame's
residual shared between them so that they mix back into it exactly), the curve
as alpha.csv and alpha.png, and the contact sheet; and the whole job, from the
input file to OUTDIR."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from ...errors import InputError
from ...outputs import layer_writer, sample_frames, write_contact_sheet
from ...progress import progress_bar
from ...runtime import available_memory, check_clip
from ...segments import Checkpoints, FrameRange, FrameStore, run_manifest
from ...video import StagedOutputDir, VideoInfo, frame_to_tensor, iter_frames, resize_frames, save_png, working_size
from ...video.reader import store_frame
from .options import TransitionOptions
from .carry import CARRY_SIDE, ROUNDS as CARRY_ROUNDS, SETTLE_PASSES, carry_from_clear_frames
from .unmix import (MODELLED_FRAMES_CHECKED, Kind, ShotFrames, Unmixing, describe, memory_need, resolve_options,
                    snap_alpha, unmix)


def split_residual(image: torch.Tensor, alpha: float, shot_a: torch.Tensor, shot_b: torch.Tensor,
                   black: tuple[bool, bool] = (False, False), fade_damping: float = 0.002,
                   detail: tuple[torch.Tensor, torch.Tensor] | None = None):
    """Both shots of one frame, adjusted so that alpha * A + (1 - alpha) * B is
    the image: the residual r = image - (alpha * A + (1 - alpha) * B) is shared
    by the least-norm correction (A += alpha r / n, B += (1 - alpha) r / n,
    n = alpha^2 + (1 - alpha)^2), or, given each shot's `detail` (H x W, see
    detail_energy), by the correction least in each shot's norm divided by it
    (A += alpha w_A r / n, B += (1 - alpha) w_B r / n, n = alpha^2 w_A + (1 - alpha)^2 w_B).
    A black shot stays black, and the other one takes r / weight, damped where its
    weight is small (quantisation noise)."""
    a, b = float(alpha), 1.0 - float(alpha)
    residual = image - (a * shot_a + b * shot_b)
    if black[0]:
        return torch.zeros_like(image), (shot_b + b / (b * b + fade_damping * (b < 1)) * residual).clamp(0, 1)
    if black[1]:
        return (shot_a + a / (a * a + fade_damping * (a < 1)) * residual).clamp(0, 1), torch.zeros_like(image)
    weight_a, weight_b = detail if detail is not None else (1.0, 1.0)
    norm = a * a * weight_a + b * b * weight_b
    return (shot_a + a * weight_a / norm * residual).clamp(0, 1), (shot_b + b * weight_b / norm * residual).clamp(0, 1)


# Once the shots are carried, the detail the carry's size lacks goes more to the shot whose
# own detail is stronger there: its local energy, a high-pass of DETAIL_SIGMA squared and
# averaged over a Gaussian of DETAIL_WINDOW (both in pixels of the carried shots), plus
# DETAIL_FLOOR. Measured on the six dev dissolves (notes/transition.md): +0.08 / +0.07 dB
# over the least-norm split, no shot worse; on the model's own shots it lost 0.2-0.3 dB.
DETAIL_SIGMA, DETAIL_WINDOW, DETAIL_FLOOR = 1.7, 2.25, 1e-4


def detail_energy(shot: torch.Tensor, scale: float) -> torch.Tensor:
    """The local energy of a shot's (3 x H x W, enlarged `scale` times from the carried
    shot) fine detail, H x W, as split_residual weighs it."""
    grey = cv2.cvtColor(np.ascontiguousarray(shot.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2GRAY)
    high = grey - cv2.GaussianBlur(grey, (0, 0), DETAIL_SIGMA * scale)
    return torch.from_numpy(cv2.GaussianBlur(high * high, (0, 0), DETAIL_WINDOW * scale) + DETAIL_FLOOR)


@dataclass
class TransitionResult:
    unmixing: Unmixing
    outputs: list[Path]
    size: tuple[int, int]
    num_frames: int
    fps: Fraction
    seconds: float  # the whole job: reading, unmixing, writing every output

    def span_text(self) -> str:
        u, fps = self.unmixing, float(self.fps)
        if u.kind is Kind.NO_TRANSITION:
            return "no transition found (shot A throughout)" if u.alpha[0] == 1 else \
                "no transition found (shot B throughout)"
        if u.last < u.first:  # a cut
            what = u.label if u.kind is Kind.HARD_CUT else f"{u.label} (a cut)"
            return f"{what} at frame {u.first} ({u.first / fps:.2f} s)"
        return (f"{u.label} over frames {u.first}-{u.last} "
                f"({u.first / fps:.2f}-{(u.last + 1) / fps:.2f} s)")


OUTPUTS = ("shot_a.mp4", "shot_b.mp4", "alpha.csv", "alpha.png", "preview.png")

# The shots are the input itself outside the transition, and an editor cuts them in for
# it: coded, like fgbg's clean plate, to keep the input's detail. True shots of the dev
# dissolves coded as they are score 37.1-38.5 dB at the other layers' CRF 18, 42.1-43.5 at
# CRF 10, which caps a recovered shot's best frames (benchmarks/README.md); the files
# are 2.2-2.6x larger.
SHOT_QUALITY = 10


def run_transition(input_path, outdir, opts: TransitionOptions) -> TransitionResult:
    """The whole `ddip-video transition` job: read, unmix, write every output."""
    start = time.perf_counter()
    opts, device = resolve_options(opts)
    manifest = run_manifest(input_path, opts, device)
    resume = (lambda folder: Checkpoints.matches(folder / f".{FITS_FOLDER}", manifest)) if opts.resume else None
    with StagedOutputDir(outdir, input_path, resume) as out:  # first: a bad OUTDIR fails before the work
        out.check_outputs(OUTPUTS)
        info = check_clip(input_path, opts.max_side, opts.fps, memory=lambda info: memory_need(info, opts, device),
                          frames_held=MODELLED_FRAMES_CHECKED,
                          held_text="the {held} frames its model may run on (lower --max-side) need")
        if info.num_frames < 2:
            raise InputError(f"{info.path.name}: a transition needs at least 2 frames, "
                             f"the input has {info.num_frames}")
        frames = read_to_disk(input_path, info, opts, out.scratch("frames"))
        fits = Checkpoints(out.scratch(FITS_FOLDER), manifest, on_save=lambda: setattr(out, "keep_for_resume", True))
        unmixing = carried(input_path, info, unmix(frames, opts, fits), opts)
        write_shots(input_path, info, unmixing, out, opts)
        write_alpha_csv(out.path("alpha.csv"), unmixing.alpha, info.fps,
                        unmixing.weight_b if unmixing.dip is not None else None)
        write_alpha_plot(out.path("alpha.png"), unmixing, info.fps)
        outputs = out.commit()
    return TransitionResult(unmixing, outputs, (info.width, info.height), info.num_frames,
                            info.fps, time.perf_counter() - start)


FITS_FOLDER = "fits"  # in the staging folder: each finished fit, for --resume

READ_CHUNK = 64  # frames shrunk and written to disk at a time


def read_to_disk(input_path, info: VideoInfo, opts: TransitionOptions, folder: Path) -> FrameRange:
    """The clip at the working size, kept on disk (exactly, as float32) and read back a
    few frames at a time: a clip of any length is held as a few frames."""
    width, height = working_size(info.width, info.height, opts.max_side)
    store = FrameStore(folder, "frames", dtype=np.float32)
    chunk, count = torch.empty(READ_CHUNK, 3, height, width), 0
    for frame in iter_frames(input_path, fps=opts.fps):
        if count < info.num_frames:
            store_frame(chunk[count % READ_CHUNK], frame)
            if count % READ_CHUNK == READ_CHUNK - 1 or count == info.num_frames - 1:
                store.append(chunk[:count % READ_CHUNK + 1])
        count += 1
    if count != info.num_frames:
        raise InputError(f"{info.path.name}: the input changed while it was being read")
    return FrameRange(store)


# Host memory the carry takes per pixel of a carried frame, measured (peak resident size,
# 40 frames at 480x270): the rounds some 165 bytes, the settling after them (its links,
# L-BFGS's history) some 170 more; and a margin.
CARRY_BYTES_PER_PIXEL = 400


def carried(input_path, info: VideoInfo, unmixing: Unmixing, opts: TransitionOptions) -> Unmixing:
    """A dissolve's curve and shots carried from the frames where each shot is clear
    (carry.py), at CARRY_SIDE (or the working size if larger): the mixed frames and the
    one clear frame of each shot either side of them. A fade, a dip or a cut is as it
    was (a fade's one shot is the frame over its weight); so is a dissolve whose frames
    do not fit in the free memory, which the summary says."""
    if unmixing.kind is not Kind.DISSOLVE or not len(unmixing.shot_a.modelled):
        return unmixing
    start = time.perf_counter()
    modelled_from, modelled = unmixing.shot_a.start, len(unmixing.shot_a.modelled)
    lo, hi = max(modelled_from, unmixing.first - 1), min(modelled_from + modelled - 1, unmixing.last + 1)
    width, height = working_size(info.width, info.height, max(CARRY_SIDE, opts.max_side))
    need = (hi + 1 - lo) * width * height * CARRY_BYTES_PER_PIXEL
    available = available_memory()
    if available is not None and need > available:
        return replace(unmixing, carry_note=f"not carried from the clear frames ({need / 2**30:.1f} GiB "
                                            f"needed, {available / 2**30:.1f} GiB free)")
    frames = np.empty((hi + 1 - lo, height, width, 3), np.float32)
    for t, frame in enumerate(iter_frames(input_path, fps=opts.fps)):
        if t > hi:
            break
        if t >= lo:
            frames[t - lo] = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) / np.float32(255)
    if unmixing.matte == "white":  # the shots are held inverted
        frames = 1.0 - frames
    alpha = unmixing.alpha[lo:hi + 1]
    shots = [resize_frames(s.modelled[lo - modelled_from:hi + 1 - modelled_from], (width, height))
             for s in (unmixing.shot_a, unmixing.shot_b)]
    pairs = [split_residual(torch.from_numpy(frames[t]).permute(2, 0, 1), float(alpha[t]), shots[0][t], shots[1][t])
             for t in range(len(frames))]
    shot_a, shot_b = (np.stack([pair[k].permute(1, 2, 0).numpy() for pair in pairs]) for k in (0, 1))
    with progress_bar("transition: carrying", "round", opts.progress, total=CARRY_ROUNDS + SETTLE_PASSES) as bar:
        alpha, shot_a, shot_b = carry_from_clear_frames(frames, alpha, shot_a, shot_b, CARRY_ROUNDS,
                                                        tick=lambda: bar.update())
    curve = unmixing.alpha.copy()
    curve[lo:hi + 1] = snap_alpha(alpha, opts.pure_tolerance)
    kind, first, last = describe(curve, False, False)
    to_tensor = lambda shots: torch.from_numpy(np.ascontiguousarray(shots)).permute(0, 3, 1, 2)
    return replace(unmixing, alpha=curve, kind=kind, first=first, last=last,
                   shot_a=ShotFrames(unmixing.shot_a.frames, to_tensor(shot_a), lo, True),
                   shot_b=ShotFrames(unmixing.shot_b.frames, to_tensor(shot_b), lo, False),
                   timings=dict(unmixing.timings, carry=time.perf_counter() - start),
                   carry_note=f"carried from the clear frames at {width}x{height}", carried_size=(width, height))


def write_shots(input_path, info, unmixing: Unmixing, out: StagedOutputDir, opts: TransitionOptions) -> None:
    """shot_a.mp4, shot_b.mp4 and preview.png. Where a shot is not visible
    (A after the transition, B before it) it holds its nearest visible frame;
    a shot never visible is black, the solid shot of a fade its colour."""
    size = (info.width, info.height)
    alpha, weight_b = unmixing.alpha, unmixing.weight_b
    inverted = unmixing.matte == "white"  # the shots are held inverted: split the inverted frame

    def shots_at(t: int, image: torch.Tensor):
        up = [resize_frames(s[t:t + 1], size)[0] for s in (unmixing.shot_a, unmixing.shot_b)]
        weight_a, black = unmixing.mix_at(t)
        detail = None
        # where one shot is alone it takes the whole residual whatever the weights: none computed
        if unmixing.carried_size is not None and not any(black) and 0 < weight_a < 1:
            scale = max(1.0, size[0] / unmixing.carried_size[0])
            detail = tuple(detail_energy(shot, scale) for shot in up)
        shots = split_residual(1.0 - image if inverted else image, weight_a, up[0], up[1], black, detail=detail)
        return tuple(1.0 - shot for shot in shots) if inverted else shots

    first_b = int(np.argmax(weight_b > 0)) if (weight_b > 0).any() else None
    held_b = None  # shot B's first visible frame, held before it
    if first_b is not None and first_b > 0:
        for t, frame in enumerate(iter_frames(input_path, fps=opts.fps)):
            if t == first_b:
                held_b = shots_at(t, frame_to_tensor(frame))[1]
                break
    held_a = None  # shot A's latest visible frame, held after it
    preview_at = set(preview_frames(unmixing, info.num_frames))
    preview_rows = []
    audio = input_path if info.has_audio else None
    with contextlib.ExitStack() as stack:  # every writer closed, or on an error every one aborted
        writers = [stack.enter_context(layer_writer(out.path(name), info, "rgb", audio, quality=SHOT_QUALITY))
                   for name in ("shot_a.mp4", "shot_b.mp4")]
        frames = progress_bar("transition: writing", "frame", opts.progress, iter_frames(input_path, fps=opts.fps),
                              len(alpha))
        for t, frame in enumerate(frames):
            if t >= len(alpha):
                break
            image = frame_to_tensor(frame)
            shot_a, shot_b = shots_at(t, image)
            if alpha[t] > 0:
                held_a = shot_a
            else:
                shot_a = held_a if held_a is not None else torch.zeros_like(image)
            if weight_b[t] == 0:
                shot_b = held_b if held_b is not None else torch.zeros_like(image)
            writers[0].write(shot_a)
            writers[1].write(shot_b)
            if t in preview_at:
                preview_rows.append([image, shot_a, shot_b])
    write_contact_sheet(out.path("preview.png"), preview_rows, ["input", "shot A", "shot B"],
                        pixel_aspect=info.pixel_aspect, colour=info.colour)


def preview_frames(unmixing: Unmixing, num_frames: int, count: int = 4) -> list[int]:
    """Frames for the contact sheet: spread over the transition (one frame
    either side of it included), or over the clip when there is none."""
    if unmixing.last < unmixing.first:
        return sample_frames(num_frames, count)
    lo, hi = max(0, unmixing.first - 1), min(num_frames - 1, unmixing.last + 1)
    return [lo + i for i in sample_frames(hi - lo + 1, count)]


def write_alpha_csv(path: Path, alpha: np.ndarray, fps: Fraction, weight_b: np.ndarray | None = None) -> None:
    """frame,time_s,alpha; and weight_b, the weight of shot B, where it is not
    1 - alpha (a dip to black or white)."""
    columns = {"alpha": alpha} if weight_b is None else {"alpha": alpha, "weight_b": weight_b}
    lines = [",".join(["frame", "time_s", *columns])]
    lines += [",".join([str(t), f"{float(t / fps):.6f}", *(f"{c[t]:.6f}" for c in columns.values())])
              for t in range(len(alpha))]
    path.write_text("\n".join(lines) + "\n")


def write_alpha_plot(path: Path, unmixing: Unmixing, fps: Fraction, width: int = 800, height: int = 400) -> None:
    """The alpha curve drawn with OpenCV: weight of shot A against time (and of
    shot B in a dip), the transition shaded."""
    alpha = unmixing.alpha
    n = len(alpha)
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 60, 20, 36, 50
    pw, ph = width - left - right, height - top - bottom

    def xy(t: float, a: float) -> tuple[int, int]:
        x = left + (t / max(1, n - 1)) * pw
        return int(round(x)), int(round(top + (1 - a) * ph))

    if unmixing.last >= unmixing.first:
        x0, _ = xy(unmixing.first, 0)
        x1, _ = xy(unmixing.last, 0)
        cv2.rectangle(img, (x0, top), (max(x1, x0 + 1), top + ph), (235, 225, 205), -1)
    gray, black = (200, 200, 200), (0, 0, 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for a in (0.0, 0.25, 0.5, 0.75, 1.0):
        _, y = xy(0, a)
        cv2.line(img, (left, y), (left + pw, y), gray, 1)
        cv2.putText(img, f"{a:.2f}", (8, y + 5), font, 0.45, black, 1, cv2.LINE_AA)
    step = max(1, nice_step(n / 8))
    for t in range(0, n, step):
        x, _ = xy(t, 0)
        cv2.line(img, (x, top + ph), (x, top + ph + 5), black, 1)
        label = f"{t}"
        cv2.putText(img, label, (x - 4 * len(label), top + ph + 20), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), black, 1)
    curves = [(alpha, (200, 80, 0))]  # BGR: blue
    if unmixing.dip is not None:
        curves.append((unmixing.weight_b, (0, 120, 230)))  # orange
    for curve, colour in curves:
        points = np.array([xy(t, a) for t, a in enumerate(curve)], np.int32)
        cv2.polylines(img, [points], False, colour, 2, cv2.LINE_AA)
        for p in points if n <= 120 else []:
            cv2.circle(img, tuple(int(v) for v in p), 3, colour, -1, cv2.LINE_AA)
    duration = n / float(fps)
    title = ("weight of shot A (blue) and of shot B (orange)" if unmixing.dip is not None
             else "alpha (weight of shot A)")
    cv2.putText(img, f"{title}: {unmixing.label}", (left, 24), font, 0.55, black, 1, cv2.LINE_AA)
    cv2.putText(img, f"frame ({float(fps):g} fps, {duration:.2f} s)", (left + pw // 2 - 80, height - 12), font,
                0.45, black, 1, cv2.LINE_AA)
    save_png(path, img)  # drawn in BGR


def nice_step(raw: float) -> int:
    """1, 2, 5, 10, 20, 50, ... at least raw."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return int(m * power)
    return int(10 * power)