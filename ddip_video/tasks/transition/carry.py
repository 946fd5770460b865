"""Carrying each shot of a dissolve from the frames that see it clearly (issue 28).

The model's shots are coarse (its working size) and ghosted where a shot is faint:
there a shot is a tenth of the picture, and any error in the other one enters it
ninefold. A shot is clear at its own end of the dissolve, and the frames in between
see it more or less faintly; what each frame knows is carried to the others along the
shot's own motion and fused per pixel by how much it is to be trusted:

- each shot's optical flow (DIS) is measured on its current estimate, with a
  forward-backward check: a pixel whose flow does not come back (occluded, newly
  revealed, or the flow wrong) carries nothing;
- a Kalman-like pass forward and one backward carry the estimate from frame to frame,
  each frame's own estimate fused in by its variance (a shot's error grows as its
  weight falls), each link adding some (more where the check was loose); where the
  carried and the frame's own value disagree beyond their variances the less certain
  one is discounted (a robust mean). The two passes together are the shot's prior at
  each frame from every other frame;
- the curve is refitted per frame from the two priors (least squares, then made
  non-increasing), and each frame is split between its two priors by their variances,
  so that the shots mix back into the frame exactly;
- and again, the flows measured on the better estimates (ROUNDS times);
- then the two shots are settled together (`settle_together`): the passes carry one
  shot at a time, the other held fixed, where the frames tie them together; a
  correction that keeps every frame's mix is chosen so that both shots agree with
  themselves along their own flows at once (a robust penalty, L-BFGS); three times, the
  flows measured again on the settled shots.

It works at CARRY_SIDE (longer side): on the six dev dissolves of eval_transition that
scored better than the full 854x480, and took 2.5x less time (benchmarks/notes/transition.md).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...analysis.dissolve import decreasing_fit
from ...analysis.flow import fb_error, lands_inside, pixel_grid
from ...analysis.motion import dense_flows
from ...video import working_size

CARRY_SIDE = 480      # the longer side the shots are carried at
FLOW_SIDE = 427       # the longer side their flows are measured at
ROUNDS = 6            # flows measured and shots carried again, each time on the better shots
SOURCE_SD = 0.2       # a frame's own estimate of a shot, where both shots weigh the same: its error
                      # (as a standard deviation in [0, 1] units); it grows as the shot's weight falls
LINK_VARIANCE = 1e-4  # added by each frame-to-frame step (resampling, flow error)
FB_VARIANCE = 2e-3    # and per squared pixel the forward-backward check missed by
FB_LIMIT = 1.0        # pixels: beyond this the step carries nothing there
AGREEMENT = 0.02      # values this far apart (beyond their variances) start to be discounted
UNKNOWN = np.inf
SETTLE_SIDE = 320     # the longer side the shots are settled together at (the correction is enlarged)
SETTLE_ITERS = 60     # L-BFGS iterations
SETTLE_PASSES = 3     # settlings, each on flows measured on the shots the one before settled
SETTLE_EPS = 3e-3     # the robust penalty's scale: differences beyond it count about linearly
SETTLE_DAMPING = 1e-3 # keeps the correction small where no link constrains it
LINKS_AT_ONCE = 8     # the penalty's links differentiated together (its memory)


def shot_flows(shots: np.ndarray, side: int = FLOW_SIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(forward, backward, forward error, backward error) of T x H x W x 3 shots:
    forward[t] the flow t -> t+1, backward[t] the flow t+1 -> t (in pixels of the
    shots), measured at `side` and enlarged; each one's forward-backward error."""
    num, h, w, _ = shots.shape
    scale = min(1.0, side / max(h, w))
    size = working_size(w, h, side)
    gray = [cv2.resize(cv2.cvtColor(to_uint8(shot), cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
            for shot in shots]
    enlarged = lambda flows: np.stack([cv2.resize(flow, (w, h)) / scale for flow in flows]).astype(np.float32)
    forward, backward = map(enlarged, dense_flows(gray))
    grid = pixel_grid(h, w)
    error = lambda there, back: np.nan_to_num(fb_error(there, back, grid), nan=UNKNOWN)
    return (forward, backward, np.stack([error(f, b) for f, b in zip(forward, backward)]),
            np.stack([error(b, f) for f, b in zip(forward, backward)]))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def fuse(value1, var1, value2, var2):
    """Two estimates of an image (H x W x 3) with per-pixel variances (H x W, inf:
    unknown) as one: their inverse-variance mean, the less certain one discounted
    where they disagree beyond their variances (a robust mean)."""
    disagreement = ((value1 - value2) ** 2).mean(-1)
    discount = 1.0 / (1.0 + disagreement / (var1 + var2 + AGREEMENT ** 2))
    weight1 = np.where(np.isfinite(var1), 1.0 / np.maximum(var1, 1e-8), 0.0)
    weight2 = np.where(np.isfinite(var2), 1.0 / np.maximum(var2, 1e-8), 0.0)
    first_less_certain = var1 > var2
    weight1 = np.where(first_less_certain, weight1 * discount, weight1)
    weight2 = np.where(first_less_certain, weight2, weight2 * discount)
    total = weight1 + weight2
    known = total > 0
    value = (weight1[..., None] * np.nan_to_num(value1) + weight2[..., None] * np.nan_to_num(value2)) \
        / np.maximum(total, 1e-12)[..., None]
    value = np.where(known[..., None], value, np.nan_to_num(value2))
    return value.astype(np.float32), np.where(known, 1.0 / np.maximum(total, 1e-12), UNKNOWN).astype(np.float32)


def moved(value, var, flow, fb_error):
    """An estimate (value, variance) of one frame read where `flow` (from the frame it
    is wanted in) leads, its variance grown by the step; unknown where the step fails
    its forward-backward check or leaves the frame."""
    grid = pixel_grid(*var.shape)
    at = grid + flow
    value = cv2.remap(value, at[..., 0], at[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    var = cv2.remap(np.minimum(var, 1e6), at[..., 0], at[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    ok = lands_inside(flow, grid) & (fb_error < FB_LIMIT) & (var < 1e5)
    return value, np.where(ok, var + LINK_VARIANCE + FB_VARIANCE * fb_error ** 2, UNKNOWN).astype(np.float32)


def carried(shots: np.ndarray, var: np.ndarray, weight: np.ndarray, flows) -> tuple[np.ndarray, np.ndarray]:
    """Each mixed frame's prior of a shot from every other frame (T x H x W x 3, and
    its variance T x H x W; unknown where no frame reaches): a pass forward and one
    backward, each frame's estimate (shots, var) fused in where the shot is seen
    (weight > 0)."""
    forward, backward, forward_error, backward_error = flows
    num = len(shots)
    own = lambda t: (shots[t], var[t] if weight[t] > 0 else np.full(var[t].shape, UNKNOWN, np.float32))
    from_before, from_after = [None] * num, [None] * num
    running = own(0)
    for t in range(1, num):
        from_before[t] = moved(*running, backward[t - 1], backward_error[t - 1])
        running = fuse(*from_before[t], *own(t))
    running = own(num - 1)
    for t in range(num - 2, -1, -1):
        from_after[t] = moved(*running, forward[t], forward_error[t])
        running = fuse(*from_after[t], *own(t))
    prior = shots.copy()
    prior_var = np.full(var.shape, UNKNOWN, np.float32)
    for t in range(num):
        parts = [part for part in (from_before[t], from_after[t]) if part is not None]
        prior[t], prior_var[t] = fuse(*parts[0], *parts[1]) if len(parts) == 2 else parts[0]
    return prior, prior_var


def refit_alpha(frames, alpha, prior_a, var_a, prior_b, var_b, min_known: float = 0.2) -> np.ndarray:
    """Per mixed frame the weight of shot A that best explains the frame from the two
    priors (least squares, each pixel weighted by how well the priors are known there;
    kept where under `min_known` of the frame is), then made non-increasing."""
    alpha = np.asarray(alpha, np.float64).copy()
    mixed = np.nonzero((alpha > 0) & (alpha < 1))[0]
    for t in mixed:
        known = np.isfinite(var_a[t]) & np.isfinite(var_b[t])
        if known.mean() < min_known:
            continue
        a = alpha[t]
        trust = (1.0 / (a * a * var_a[t] + (1 - a) ** 2 * var_b[t] + 1e-6))[known][:, None]
        apart, explained = (prior_a[t] - prior_b[t])[known], (frames[t] - prior_b[t])[known]
        alpha[t] = np.clip((trust * apart * explained).sum() / max((trust * apart * apart).sum(), 1e-9), 0, 1)
    alpha[mixed] = np.clip(decreasing_fit(alpha[mixed]), 0, 1)
    return alpha


def split_by_variance(frames, alpha, prior_a, var_a, prior_b, var_b):
    """Each frame shared between its two priors so that alpha A + (1 - alpha) B is the
    frame: the residual goes to each shot by its weight and its variance (the most
    likely pair given the priors). Returns both shots and their variances."""
    a = alpha.reshape(-1, 1, 1).astype(np.float32)
    b = 1 - a
    var_a, var_b = np.minimum(var_a, 1.0), np.minimum(var_b, 1.0)
    residual = frames - a[..., None] * prior_a - b[..., None] * prior_b
    norm = a * a * var_a + b * b * var_b + 1e-9
    shot_a = np.clip(prior_a + (a * var_a / norm)[..., None] * residual, 0, 1)
    shot_b = np.clip(prior_b + (b * var_b / norm)[..., None] * residual, 0, 1)
    return shot_a, var_a * b * b * var_b / norm, shot_b, var_b * a * a * var_a / norm


def carry_from_clear_frames(frames: np.ndarray, alpha: np.ndarray, shot_a: np.ndarray, shot_b: np.ndarray,
                            rounds: int = ROUNDS, tick=lambda: None,
                            settle_passes: int = SETTLE_PASSES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, shot A, shot B) of a dissolve's frames (T x H x W x 3 float32 in [0, 1],
    from shot A alone to shot B alone or part of it), from the model's curve and shots
    (the shots split so that they mix back into the frames). tick() after each round
    and each settling."""
    frames = frames.astype(np.float32)
    alpha = np.asarray(alpha, np.float64)
    a, b = alpha, 1 - alpha
    shape = frames.shape[:3]
    own_var = lambda w_self, w_other: np.broadcast_to(
        (SOURCE_SD ** 2 * w_other ** 2 / (w_self ** 2 + w_other ** 2)).reshape(-1, 1, 1), shape).astype(np.float32)
    var_a, var_b = own_var(a, b), own_var(b, a)
    for _ in range(rounds):
        prior_a, prior_var_a = carried(shot_a, var_a, alpha, shot_flows(shot_a))
        prior_b, prior_var_b = carried(shot_b, var_b, 1 - alpha, shot_flows(shot_b))
        for prior, prior_var, shot, var in ((prior_a, prior_var_a, shot_a, var_a),
                                            (prior_b, prior_var_b, shot_b, var_b)):
            unknown = ~np.isfinite(prior_var)  # no frame reaches there: the shot's own estimate
            prior[unknown] = shot[unknown]
            prior_var[unknown] = np.maximum(var[unknown], 1e-4)
        clear_a, clear_b = alpha >= 1, alpha <= 0
        prior_a[clear_a], prior_var_a[clear_a] = frames[clear_a], 0
        prior_b[clear_b], prior_var_b[clear_b] = frames[clear_b], 0
        alpha = refit_alpha(frames, alpha, prior_a, prior_var_a, prior_b, prior_var_b)
        shot_a, var_a, shot_b, var_b = split_by_variance(frames, alpha, prior_a, prior_var_a, prior_b, prior_var_b)
        clear_a, clear_b = alpha >= 1, alpha <= 0
        shot_a[clear_a], var_a[clear_a] = frames[clear_a], 0
        shot_b[clear_b], var_b[clear_b] = frames[clear_b], 0
        tick()
    for _ in range(settle_passes):
        shot_a, shot_b = settle_together(alpha, shot_a, shot_b)
        tick()
    return alpha, shot_a, shot_b


def settle_together(alpha: np.ndarray, shot_a: np.ndarray, shot_b: np.ndarray,
                    iters: int = SETTLE_ITERS, side: int = SETTLE_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Shots A and B (T x H x W x 3, mixing into the frames by alpha) corrected
    together: A + (1 - alpha) d and B - alpha d leave every frame's mix as it is, and
    d (found at `side`, then enlarged) makes each shot agree with itself along its own
    flow, forward and backward, where the flow passes its forward-backward check."""
    num, h, w, _ = shot_a.shape
    size = working_size(w, h, side)
    small = lambda shots: np.stack([cv2.resize(shot, size, interpolation=cv2.INTER_AREA) for shot in shots])
    a = torch.from_numpy(np.asarray(alpha, np.float32)).view(-1, 1, 1, 1)
    small_a, small_b = small(shot_a), small(shot_b)
    links_a, links_b = self_links(small_a, alpha > 0), self_links(small_b, alpha < 1)
    start_a, start_b = (torch.from_numpy(shot).permute(0, 3, 1, 2).contiguous() for shot in (small_a, small_b))
    correction = torch.zeros(start_a.shape, requires_grad=True)
    pixels = num * correction[0, 0].numel()
    shots = ((start_a, 1 - a, links_a), (start_b, -a, links_b))

    def closure() -> torch.Tensor:  # the penalty, its gradient accumulated a few links at a time
        optimiser.zero_grad()
        damping = SETTLE_DAMPING * (correction ** 2).mean()
        damping.backward()
        total = damping.item()
        for start, share, (source, target, grid, trust) in shots:
            if grid is None:  # no two neighbouring frames see this shot
                continue
            for chunk in torch.arange(len(source)).split(LINKS_AT_ONCE):
                there, here = source[chunk], target[chunk]
                seen = F.grid_sample(start[there] + share[there] * correction[there], grid[chunk],
                                     mode="bilinear", padding_mode="border", align_corners=True)
                differ = seen - start[here] - share[here] * correction[here]
                part = (trust[chunk] * torch.sqrt(differ ** 2 + SETTLE_EPS ** 2)).sum() / pixels
                part.backward()
                total += part.item()
        return torch.tensor(total)

    optimiser = torch.optim.LBFGS([correction], lr=1, max_iter=iters, history_size=10, line_search_fn="strong_wolfe")
    optimiser.step(closure)
    settled_a, settled_b = np.empty_like(shot_a), np.empty_like(shot_b)
    small_d = correction.detach().permute(0, 2, 3, 1).numpy()
    for t, weight in enumerate(np.asarray(alpha, np.float32)):
        d = cv2.resize(np.ascontiguousarray(small_d[t]), (w, h), interpolation=cv2.INTER_LINEAR)
        # d is held where either shot would leave [0, 1], so the mix stays exact
        if weight < 1:
            d = np.clip(d, -shot_a[t] / (1 - weight), (1 - shot_a[t]) / (1 - weight))
        if weight > 0:
            d = np.clip(d, (shot_b[t] - 1) / weight, shot_b[t] / weight)
        settled_a[t] = np.clip(shot_a[t] + (1 - weight) * d, 0, 1)
        settled_b[t] = np.clip(shot_b[t] - weight * d, 0, 1)
    return settled_a, settled_b


def self_links(shots: np.ndarray, seen: np.ndarray):
    """Each step between neighbouring frames that both see the shot (T x h x w x 3),
    both ways: (source frames, target frames, where each target pixel is in its source
    as a grid_sample grid, 1 where the step passes its forward-backward check)."""
    num, h, w, _ = shots.shape
    forward, backward, forward_error, backward_error = shot_flows(shots, side=max(h, w))
    grid = pixel_grid(h, w)
    to_unit = np.array([2 / max(w - 1, 1), 2 / max(h - 1, 1)], np.float32)
    source, target, grids, trust = [], [], [], []
    for t in range(num - 1):
        if not (seen[t] and seen[t + 1]):
            continue
        for there, here, flow, error in ((t, t + 1, backward[t], backward_error[t]),
                                         (t + 1, t, forward[t], forward_error[t])):
            source.append(there)
            target.append(here)
            grids.append((grid + flow) * to_unit - 1)
            trust.append(lands_inside(flow, grid) & (error < FB_LIMIT))
    if not source:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), None, None
    return (torch.tensor(source), torch.tensor(target), torch.from_numpy(np.stack(grids).astype(np.float32)),
            torch.from_numpy(np.stack(trust).astype(np.float32))[:, None])
