"""`transition`'s unmixing: from the frames to both shots and alpha_t.

A dissolve mixes two shots, I_t = alpha_t * A_t + (1 - alpha_t) * B_t, with A
the shot visible at the start and alpha_t falling from 1 to 0. The classic
analysis (analysis.dissolve) locates the transition and estimates alpha_t; the
model (model.py) runs on that stretch and some frames of each shot alone either
side, through the engine (ddip_video.fit): a long clip's single-shot stretches
pass through untouched, and a hard cut needs no optimisation at all.
A fade is a dissolve with a black shot: a black first (last) frame makes shot
A (B) exactly black, and the other shot is all the model fits. A dip to black
(shot A fades out, black, shot B fades in) is two fades, split at the black
frames and unmixed one after the other; there the weight of shot B is not
1 - alpha_t and is reported beside it. A white matte (a fade from or to white,
a dip to white) is the same with the frames inverted: 1 - I_t is then a fade
of black. A clip that holds no transition at all is reported as such and
passes through as shot A; one that changes shot more than once is refused
(refuse_more_changes).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
import torch

from ...analysis.dissolve import (ClassicView, black_gap, changes_beside, classic_alpha, classic_view, cut_within,
                                  is_black, locate_transition, looks_like_one_shot, matte_of, single_shot_ends,
                                  whole_clip_alpha)
from ...errors import InputError
from ...fit import FitReport, ParamGroup, Schedule, fit, total_loss, windowed_mean
from ...nets import smallest_side
from ...segments import Checkpoints, FrameRange
from ...runtime import LOADED_BYTES, MemoryNeed, available_memory, check_working_size, device_label, seed_everything, \
    with_device_defaults
from ...video import VideoInfo, resize_frames, working_size
from .model import TransitionModel, loss_terms
from .options import DEFAULTS, TransitionOptions


def resolve_options(opts: TransitionOptions) -> tuple[TransitionOptions, torch.device]:
    """The options with the device's defaults filled in, and the device."""
    return with_device_defaults(opts, DEFAULTS)


# The memory of the frames the model runs on, per pixel of a frame at the working size:
# measured peaks (CPU, 854x480 dissolves of 100, 200 and 400 frames at --max-side 160
# and 320, all of them modelled, benchmarks/notes/memory.md) grow by 124-156 bytes (the
# frames, both shots' codes and outputs). On a GPU the host keeps the frames and both
# shots as they come back, 36 bytes (counted from those tensors; not measured: no GPU was
# lent). The check counts the high end, as fgbg's does. The other frames stay on disk
# (FrameRange): the analysis keeps a few kB of each (its thumbnails, block energies), not counted.
BYTES_PER_PIXEL = {"cpu": 156, "cuda": 36}
MODELLED_FRAMES_CHECKED = 150  # counted before reading (check_clip's frames_held): a transition and its
                               # anchors of up to 5 s; a longer one is checked once located


def memory_need(info: VideoInfo, opts: TransitionOptions, device: torch.device) -> MemoryNeed:
    """About the host memory transition takes per frame it models, for the clip `info` describes."""
    w, h = working_size(info.width, info.height, opts.max_side)
    return MemoryNeed(LOADED_BYTES, BYTES_PER_PIXEL[device.type] * w * h)


def check_modelled_memory(num_frames: int, height: int, width: int, device: torch.device) -> None:
    """Stops with an InputError, before the model is made, where the frames it runs on
    (a transition longer than memory_need counted) do not fit in the free memory."""
    if num_frames <= MODELLED_FRAMES_CHECKED:
        return
    need = LOADED_BYTES + num_frames * BYTES_PER_PIXEL[device.type] * width * height
    available = available_memory()
    if available is not None and need > available:
        raise InputError(f"the transition and its anchors, {num_frames} frames, need about {need / 2**30:.1f} "
                         f"GiB of memory and {available / 2**30:.1f} GiB is free: lower --max-side")


class Kind(Enum):
    """What a clip holds. A fade's and a dip's solid shot (its matte) is black or white."""
    DISSOLVE = "dissolve"
    FADE_FROM = "fade from"      # shot A is the solid shot
    FADE_TO = "fade to"          # shot B is
    DIP = "dip to"               # shot A fades out, then shot B in
    HARD_CUT = "hard cut"
    NO_TRANSITION = "no transition"

    def label(self, matte: str = "black") -> str:
        """How it is called: "dissolve", "fade from white", ..."""
        return f"{self.value} {matte}" if self in (Kind.FADE_FROM, Kind.FADE_TO, Kind.DIP) else self.value


class ShotFrames:
    """One shot over the whole clip at the working size, not yet split, without
    holding it: the nets' shot over the frames the model ran on (`modelled`, from
    frame `start`), the input where the shot is alone (before those frames for
    shot A, after them for shot B) and 0 where it is not seen. Indexing gives
    tensors, as the T x 3 x h x w tensor it stands for would. Once a dissolve is carried
    (outputs.carried), the modelled frames are the carried ones at the carry's size, so
    a frame is read one at a time (as write_shots does), enlarged to the output's size."""

    def __init__(self, frames, modelled: torch.Tensor, start: int, alone_before: bool):
        self.frames, self.modelled, self.start, self.alone_before = frames, modelled, start, alone_before

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.frames.shape)

    def moved(self, frames, offset: int) -> "ShotFrames":
        """The same shot in a longer clip `frames` where this one's frame 0 is frame
        `offset`: its modelled frames moved there, the shot alone on the same side of
        them (all of that side of the longer clip) and not seen on the other."""
        return ShotFrames(frames, self.modelled, self.start + offset, self.alone_before)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            ts = range(*key.indices(len(self)))
            return torch.stack([self[t] for t in ts]) if len(ts) else torch.empty(0, *self.shape[1:])
        t = int(key) + (len(self) if int(key) < 0 else 0)
        if not 0 <= t < len(self):
            raise IndexError(f"frame {key} of {len(self)}")
        end = self.start + len(self.modelled)
        if self.start <= t < end:
            return self.modelled[t - self.start]
        alone = t < self.start if self.alone_before else t >= end
        return self.frames[t] if alone else torch.zeros(self.shape[1:])


@dataclass
class Unmixing:
    alpha: np.ndarray          # T: the weight of shot A per frame (1 and 0 exact where one shot is alone)
    shot_a: ShotFrames         # T x 3 x h x w at the working size, not yet split: the nets' shots where
                               # modelled, elsewhere the input (its shot alone) or 0 (not seen)
    shot_b: ShotFrames
    kind: Kind
    first: int                 # the first frame that mixes both shots (for a cut: the first frame of B;
                               # for a dip: the first frame of A's fade-out)
    last: int                  # the last frame that mixes both shots (for a cut: the last frame of A;
                               # for a dip: the last frame of B's fade-in)
    seconds: float
    device: str
    options: TransitionOptions  # as run: the device's defaults filled in
    classic_alpha: np.ndarray = field(default_factory=lambda: np.zeros(0))
    timings: dict = field(default_factory=dict)
    dip: tuple[int, int] | None = None       # a dip to black (white): its first and last black (white) frame
    dip_weight_b: np.ndarray | None = None   # a dip: the weight of shot B per frame
    fits: list = field(default_factory=list)  # (what, iterations, best iteration) per optimisation:
                                              # none, one, or a dip's two
    carry_note: str = ""  # whether the shots were carried from their clear frames (carry.py), and if not why
    carried_size: tuple[int, int] | None = None  # the carried shots' width and height; None: not carried
    matte: str = "black"  # a fade's solid shot. "white": the shots and the solid one are held inverted
                          # (1 - x), as the frames were unmixed (see unmix)

    @property
    def label(self) -> str:
        """The kind as the summary line and alpha.png call it ("fade from white", ...)."""
        return self.kind.label(self.matte)

    @property
    def iterations(self) -> int:
        """Over all optimisations."""
        return sum(count for _, count, _ in self.fits)

    @property
    def best_iteration(self) -> int:
        """Of the last optimisation (-1: none ran)."""
        return self.fits[-1][2] if self.fits else -1

    @property
    def black(self) -> tuple[bool, bool]:
        """Whether shot A, shot B is the solid shot (black in the frames as unmixed)."""
        return self.kind is Kind.FADE_FROM, self.kind is Kind.FADE_TO

    @property
    def weight_b(self) -> np.ndarray:
        """The weight of shot B per frame: 1 - alpha but in a dip."""
        return self.dip_weight_b if self.dip is not None else 1.0 - self.alpha

    def mix_at(self, t: int) -> tuple[float, tuple[bool, bool]]:
        """Frame t as split_residual takes it: the weight of shot A and which shot is black."""
        if self.dip is None:
            return float(self.alpha[t]), self.black
        if t < self.dip[1]:  # shot A fading out (or black)
            return float(self.alpha[t]), (False, True)
        return 1.0 - float(self.dip_weight_b[t]), (True, False)

    def work_text(self) -> str:
        """What the optimisation did, for the summary line."""
        if not self.fits:
            return "no optimisation needed"
        whats, counts, bests = zip(*self.fits)
        text = " + ".join(map(str, counts)) + " iterations"
        if len(self.fits) > 1:
            text += f" ({', '.join(whats)})"
        text = f"{text} at --max-side {self.options.max_side}, best at {' and '.join(str(b + 1) for b in bests)}"
        return f"{text}; {self.carry_note}" if self.carry_note else text


def unmix(frames: torch.Tensor | FrameRange, opts: TransitionOptions, fits: Checkpoints | None = None) -> Unmixing:
    """Runs the model on frames (T x 3 x h x w in [0, 1]: a tensor of any size, the
    model working at opts.max_side; or a FrameRange already at that size, read a few
    frames at a time: only the frames the model runs on are held). fits: where each
    finished fit is kept, and taken from on --resume (Checkpoints)."""
    start = time.perf_counter()
    if len(frames) < 2:
        raise InputError(f"a transition needs at least 2 frames, the input has {len(frames)}")
    opts, device = resolve_options(opts)
    generator = seed_everything(opts.seed)
    size = working_size(frames.shape[-1], frames.shape[-2], opts.max_side)
    check_working_size((frames.shape[-1], frames.shape[-2]), size, smallest_side())
    if isinstance(frames, torch.Tensor):
        frames = FrameRange(resize_frames(frames.float(), size))
    elif size != (frames.shape[-1], frames.shape[-2]):
        raise ValueError(f"a FrameRange must be at the working size {size}, not {tuple(frames.shape[-2:])}")
    if matte_of(frames, opts.black_level) == "white":
        unmixing = unmix_matte_black(frames.invert(), opts, device, generator, start, fits, "white")
        return replace(unmixing, matte="white")
    return unmix_matte_black(frames, opts, device, generator, start, fits)


def unmix_matte_black(frames: FrameRange, opts: TransitionOptions, device: torch.device,
                      generator: torch.Generator, start: float, fits: Checkpoints | None = None,
                      matte: str = "black") -> Unmixing:
    """unmix of frames (at the working size) whose solid shot, if any, is black
    (matte: what it is in the input, for the error message)."""
    black = [is_black(frame, opts.black_level) for frame in frames]
    if black[0] and black[-1]:
        raise InputError(f"the first and the last frames are both {matte}: no shot to recover")
    gap = None if black[0] or black[-1] else black_gap(black)
    if gap is not None:
        return unmix_dip(frames, gap, opts, device, generator, start, fits)
    view = classic_view(frames)
    whole = whole_clip_alpha(view)  # what the one-shot test's thresholds were measured on
    if not (black[0] or black[-1]) and looks_like_one_shot(view, whole):
        return one_shot(frames, opts, device, whole, time.perf_counter() - start)
    refuse_more_changes(view, (black[0], black[-1]))
    part = unmix_transition(frames, (black[0], black[-1]), opts, device, generator, view, whole, fits=fits)
    kind, first, last = describe(part.alpha, black[0], black[-1])
    return Unmixing(alpha=part.alpha, shot_a=part.shot_a, shot_b=part.shot_b, kind=kind, first=first, last=last,
                    seconds=time.perf_counter() - start, device=device_label(device), options=opts,
                    classic_alpha=part.prior, timings=dict(optimize=part.seconds), fits=part.records)


def refuse_more_changes(view: ClassicView, black: tuple[bool, bool] = (False, False), offset: int = 0) -> None:
    """Stops with an InputError where the clip `view` (its first frame being
    frame `offset` of the input; black: whether shot A, shot B is black)
    changes shot besides its one transition: the model has two shots, and a
    third would be smeared into them."""
    first, last = locate_transition(view)
    beside, within = changes_beside(view, first, last, black), cut_within(view.thumbs, first, last)
    if not beside and within is None:
        return
    frames = lambda ts: ("frame " if len(ts) == 1 else "frames ") + ", ".join(str(t + offset) for t in ts)
    span = f"frames {first + offset}-{last + offset}"
    found = [f"a cut at frame {within + offset} inside what fits as a transition over {span}"] if within is not None \
        else [f"a cut at frame {first + offset}" if first > last else f"a transition over {span}"]
    if beside:
        found.append(f"and another change near {frames(beside)}")
    raise InputError(f"the clip changes shot more than once ({' '.join(found)}): trim it to one transition")


@dataclass
class FittedShots:
    """What one optimisation gives: the curve and both shots of the frames it ran on."""
    alpha: np.ndarray     # snapped
    shot_a: torch.Tensor  # on the CPU
    shot_b: torch.Tensor
    report: FitReport


@dataclass
class Part:
    """One transition unmixed: see unmix_transition."""
    alpha: np.ndarray
    shot_a: ShotFrames
    shot_b: ShotFrames
    prior: np.ndarray            # the classic estimate
    fitted: FittedShots | None   # None: a cut, nothing to optimise
    label: str                   # what the optimisation was called

    @property
    def records(self) -> list[tuple[str, int, int]]:
        """[(what, iterations, best iteration)], Unmixing.fits' entry, or [] for a cut."""
        if self.fitted is None:
            return []
        return [(self.label, self.fitted.report.steps, self.fitted.report.best_step)]

    @property
    def seconds(self) -> float:
        """Spent optimising."""
        return 0.0 if self.fitted is None else self.fitted.report.seconds


def unmix_transition(frames: FrameRange, black: tuple[bool, bool], opts: TransitionOptions,
                     device: torch.device, generator: torch.Generator, view: ClassicView | None = None,
                     whole: np.ndarray | None = None, label: str = "transition", fits: Checkpoints | None = None,
                     fit_index: int = 0) -> Part:
    """One dissolve or fade in frames (at the working size), from shot A alone in
    the first frame to shot B alone in the last: the classic estimate locates
    it, the model runs there, and each shot alone is the input elsewhere (the
    other one 0: not seen). Where the classic estimate mixes no frame (a hard
    cut), there is nothing to unmix and the model does not run: on 40 cuts
    between DAVIS shots it was exactly right for 24 and mixed a few frames of
    the other 16 a little (those the model gets), and it made none of 60
    dissolves a cut (benchmarks/notes/transition.md, "A hard cut")."""
    prior = classic_alpha(frames, view, whole)
    if not np.any((prior > 0) & (prior < 1)):
        cut = int(np.sum(prior == 1))
        none = torch.empty(0, *frames.shape[1:])
        return Part(prior, ShotFrames(frames, none, cut, True), ShotFrames(frames, none, cut, False), prior, None,
                    label)
    lo, hi = modelled_span(prior, opts.anchor_frames)
    check_modelled_memory(hi + 1 - lo, frames.shape[-2], frames.shape[-1], device)
    fitted = optimise(frames[lo:hi + 1], prior[lo:hi + 1], black, opts, device, generator, label, fits, fit_index)
    alpha = np.r_[np.ones(lo), fitted.alpha, np.zeros(len(frames) - hi - 1)]
    return Part(alpha, ShotFrames(frames, fitted.shot_a, lo, True), ShotFrames(frames, fitted.shot_b, lo, False),
                prior, fitted, label)


def unmix_dip(frames: FrameRange, gap: tuple[int, int], opts: TransitionOptions, device: torch.device,
              generator: torch.Generator, start: float, fits: Checkpoints | None = None) -> Unmixing:
    """A dip to black: shot A fades to black by the gap's first frame, shot B
    fades in from its last; two fades, unmixed one after the other."""
    first_black, last_black = gap
    n = len(frames)
    parts = frames.part(0, first_black + 1), frames.part(last_black)
    views = classic_view(parts[0]), classic_view(parts[1])
    refuse_more_changes(views[0], (False, True))
    refuse_more_changes(views[1], (True, False), offset=last_black)
    fade_out = unmix_transition(parts[0], (False, True), opts, device, generator, views[0], label="fade out",
                                fits=fits, fit_index=0)
    fade_in = unmix_transition(parts[1], (True, False), opts, device, generator, views[1], label="fade in",
                               fits=fits, fit_index=1)
    alpha = np.r_[fade_out.alpha, np.zeros(n - first_black - 1)]
    weight_b = np.r_[np.zeros(last_black), 1.0 - fade_in.alpha]
    shot_a, shot_b = fade_out.shot_a.moved(frames, 0), fade_in.shot_b.moved(frames, last_black)
    first = int(np.argmax(alpha < 1))
    last = int(n - 1 - np.argmax(weight_b[::-1] < 1))
    return Unmixing(alpha=alpha, shot_a=shot_a, shot_b=shot_b, kind=Kind.DIP, first=first, last=last,
                    seconds=time.perf_counter() - start, device=device_label(device), options=opts,
                    classic_alpha=np.r_[fade_out.prior, np.zeros(n - first_black - 1)],
                    timings=dict(optimize=fade_out.seconds + fade_in.seconds), dip=gap, dip_weight_b=weight_b,
                    fits=fade_out.records + fade_in.records)


def modelled_span(prior: np.ndarray, anchor: int) -> tuple[int, int]:
    """(lo, hi): the frames the model runs on: those the classic estimate
    `prior` mixes, with `anchor` frames of each shot alone either side (or
    as many as there are)."""
    last_a, first_b = single_shot_ends(prior, 1.0, 0, len(prior) - 1)
    return max(0, last_a - anchor), min(len(prior) - 1, first_b + anchor)


class TransitionFit:
    """`transition` as the engine (ddip_video.fit) runs it: the shots' nets train
    from the start, the curve once they are no longer crude (alpha_start)."""

    def __init__(self, model: TransitionModel, frames: torch.Tensor, opts: TransitionOptions, alpha_start: int):
        self.model, self.frames, self.opts, self.alpha_start = model, frames, opts, alpha_start

    def param_groups(self) -> list[ParamGroup]:
        shots = [p for name, p in self.model.named_parameters() if not name.startswith("alpha.")]
        return [ParamGroup(shots, self.opts.lr), ParamGroup(list(self.model.alpha.parameters()),
                                                            self.opts.alpha_lr, self.alpha_start)]

    def loss_terms(self, idx: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return loss_terms(self.opts, self.model, *self.model(idx), self.frames[idx])

    def score(self, idx: torch.Tensor) -> torch.Tensor:
        return total_loss(loss_terms(self.opts, self.model, *self.model(idx, perturb=False), self.frames[idx]))


def optimise(frames: torch.Tensor, prior: np.ndarray, black: tuple[bool, bool], opts: TransitionOptions,
             device: torch.device, generator: torch.Generator, label: str = "transition",
             fits: Checkpoints | None = None, index: int = 0) -> FittedShots:
    """The Double-DIP optimisation on frames (at the working size) that start
    with shot A alone and end with shot B alone, from the classic estimate `prior`.
    With `fits`, the result is kept there as fit number `index`, or taken from there
    where an interrupted run had finished it on the same frames (the same curve to
    start from; the random generators then left as that run left them, so that a
    later fit draws what it drew)."""
    saved = fits.load(index) if fits is not None else None
    if saved is not None and saved["label"] == label and np.array_equal(saved["prior"], prior):
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        return saved["fitted"]
    num_frames, _, h, w = frames.shape
    model = TransitionModel(num_frames, h, w, prior, *black, generator).to(device)
    frames = frames.to(device)
    # while the shot nets are crude, a moving alpha soaks up their errors: it waits, and
    # the fit may not stop before it has had its turn
    alpha_start = max(int(opts.alpha_warmup * opts.iters), opts.alpha_warmup_min)
    schedule = Schedule(opts.iters, opts.window, opts.eval_every, opts.patience, stop_from=alpha_start)
    report = fit(TransitionFit(model, frames, opts, alpha_start), num_frames, schedule, device, generator, label,
                 opts.progress)
    window = min(opts.window, num_frames)
    shot_a, shot_b = windowed_mean(num_frames, window, device, lambda idx: model(idx, perturb=False)[1:])
    with torch.no_grad():
        alpha = model.alpha().double().cpu().numpy()
    fitted = FittedShots(snap_alpha(alpha, opts.pure_tolerance), shot_a.cpu(), shot_b.cpu(), report)
    if fits is not None:
        fits.save(index, dict(fitted=fitted, label=label, prior=prior, generator=generator.get_state(),
                              torch_rng=torch.get_rng_state(),
                              cuda_rng=torch.cuda.get_rng_state_all() if device.type == "cuda" else None))
    return fitted


def one_shot(frames: FrameRange, opts: TransitionOptions, device: torch.device, prior: np.ndarray,
             seconds: float) -> Unmixing:
    """The answer for a clip that holds no transition: shot A is the input
    throughout, shot B is never seen; no optimisation runs."""
    none, n = torch.empty(0, *frames.shape[1:]), len(frames)
    return Unmixing(alpha=np.ones(n), shot_a=ShotFrames(frames, none, n, True),
                    shot_b=ShotFrames(frames, none, n, False),
                    kind=Kind.NO_TRANSITION, first=len(frames), last=len(frames) - 1, seconds=seconds,
                    device=device_label(device), options=opts, classic_alpha=prior, timings=dict(optimize=0.0))


def snap_alpha(alpha: np.ndarray, tolerance: float) -> np.ndarray:
    """Values within `tolerance` of 1 (0) become exactly 1 (0): one shot alone."""
    alpha = np.clip(np.asarray(alpha, dtype=np.float64), 0.0, 1.0)
    alpha[alpha >= 1 - tolerance] = 1.0
    alpha[alpha <= tolerance] = 0.0
    return alpha


def describe(alpha: np.ndarray, black_a: bool, black_b: bool) -> tuple[Kind, int, int]:
    """(kind, first, last) of a snapped alpha curve; see Unmixing."""
    fade = Kind.FADE_FROM if black_a else Kind.FADE_TO if black_b else None
    mixed = np.nonzero((alpha > 0) & (alpha < 1))[0]
    if len(mixed):
        return fade or Kind.DISSOLVE, int(mixed[0]), int(mixed[-1])
    a_frames = np.nonzero(alpha == 1)[0]
    if len(a_frames) and len(a_frames) < len(alpha):
        cut = int(a_frames[-1]) + 1
        return fade or Kind.HARD_CUT, cut, cut - 1
    return Kind.NO_TRANSITION, len(alpha), len(alpha) - 1
