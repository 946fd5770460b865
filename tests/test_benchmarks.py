"""The evaluation scripts' own logic, where a figure depends on it."""
from argparse import Namespace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmarks import baselines, eval_classic_alpha, oracle_flow_transition
from benchmarks.metrics import mean_jaccard
from benchmarks.overrides import option_overrides
from ddip_video.tasks.fgbg.options import FgbgOptions
from ddip_video.tasks.transition.options import TransitionOptions
from ddip_video.video import read_video


def test_option_overrides_take_each_fields_type():
    assert option_overrides(TransitionOptions, ["exclusion_weight=0", "window=4", "progress=no"]) == dict(
        exclusion_weight=0.0, window=4, progress=False)
    assert option_overrides(FgbgOptions, ["hint_floor=0.3", "progress=false"]) == dict(hint_floor=0.3, progress=False)
    for bad in (["nonsense=1"], ["window"], ["max_side=64"]):
        with pytest.raises(SystemExit):
            option_overrides(TransitionOptions, bad)


def still_shot(path: Path, frames: int) -> torch.Tensor:
    first = read_video(path, max_side=64)[0][:1]
    return first.repeat(frames, 1, 1, 1)


def test_oracle_flow_recovers_still_shots_from_their_flow(sample_clip, second_clip):
    """Two still shots dissolved: with no motion, frames of different alpha
    pin both shots down, and the oracle-flow solver must find them; without the temporal
    term each frame is a separate, ambiguous unmixing. (Measured at 400 steps:
    78.2 / 78.4 dB with it, 17.2 / 17.2 without; 39.4 with it at 200 steps.)"""
    shot_a = still_shot(sample_clip, 6)
    shot_b = still_shot(second_clip, 6)
    args = Namespace(steps=400, temporal=1.0, tv=0.0, exclusion=0.0)
    with_motion = oracle_flow_transition.solve_clip(shot_a, shot_b, "whole", args)
    args.temporal = 0.0
    without = oracle_flow_transition.solve_clip(shot_a, shot_b, "whole", args)
    assert min(with_motion["psnr_a"], with_motion["psnr_b"]) > 35
    assert max(without["psnr_a"], without["psnr_b"]) < 30
    assert [p["frame"] for p in with_motion["per_frame"]] == [1, 2, 3, 4]
    assert np.all(np.isfinite([p["a"] for p in with_motion["per_frame"]]))


def test_twice_clips_change_shot_where_their_names_say():
    """eval_classic_alpha's "twice" group: per ordered triple, two cuts, a cut
    then a dissolve, a dissolve then a cut, each shot where the doc puts it."""
    shots = {name: torch.full((40, 3, 2, 2), level) for name, level in (("a", 0.2), ("b", 0.5), ("c", 0.8))}
    clips = list(eval_classic_alpha.twice_clips(shots))
    assert len(clips) == 6 * 3 and all(group == "twice" and alpha is None for group, _, _, alpha in clips)
    levels = {name: frames[:, 0, 0, 0].numpy() for _, name, frames, _ in clips}
    dissolve = 0.8 + (0.5 - 0.8) * np.linspace(1, 0, 22)[1:-1]
    np.testing.assert_allclose(levels["a|b|c two cuts"], np.r_[[0.2] * 12, [0.5] * 14, [0.8] * 14])
    np.testing.assert_allclose(levels["a|b|c cut, dissolve"], np.r_[[0.2] * 10, [0.5] * 10, dissolve, [0.8] * 10],
                               atol=0.5 / 255)
    np.testing.assert_allclose(levels["a|b|c dissolve, cut"],
                               np.r_[[0.2] * 10, 0.5 + (0.2 - 0.5) * np.linspace(1, 0, 22)[1:-1], [0.5] * 10,
                                     [0.8] * 10], atol=0.5 / 255)


def test_fade_clips_are_fades_and_dips_to_black():
    shots = {name: torch.full((40, 3, 2, 2), level) for name, level in (("a", 0.4), ("b", 0.8))}
    clips = {name: frames[:, 0, 0, 0].numpy() for _, name, frames, _ in eval_classic_alpha.fade_clips(shots)}
    assert sorted(clips) == sorted(f"{p} {s}" for p in ("a:b", "b:a")
                                   for s in ("fade from black", "fade to black", "dip"))
    ramp = np.linspace(1, 0, 40)
    np.testing.assert_allclose(clips["a:b fade from black"], (1 - ramp) * 0.8, atol=0.5 / 255)
    np.testing.assert_allclose(clips["a:b fade to black"], ramp * 0.4, atol=0.5 / 255)
    dip = clips["a:b dip"]
    assert dip[0] == dip[9] == 0.4 and dip[-1] == 0.8 and (dip == 0).sum() == 2  # a quarter of A, 2 black


def test_scene_method_finds_what_moves_over_a_still_scene():
    """eval_hints' "scene" column (a sharp background plate's evidence alone) on a
    textured still scene with a square crossing it: the square, not the texture."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3)).astype(np.uint8), (0, 0), 2)
    frames, truth = [], []
    for t in range(16):
        frame, mask = scene.copy(), np.zeros((96, 128), bool)
        x = 10 + 6 * t
        frame[40:64, x:x + 24] = (230, 40, 40)
        mask[40:64, x:x + 24] = True
        frames.append(frame)
        truth.append(mask)
    found = baselines.scene_method(np.stack(frames))
    assert found.shape == (16, 96, 128)
    assert mean_jaccard(list(found), truth)[0] > 0.7


def test_eval_transition_rows_are_json(sample_clip, second_clip, tmp_path):
    """A row of eval_transition goes into its --json file (a run of six clips once ended
    in a TypeError at the first write: the kind was an enum)."""
    import json

    from benchmarks import eval_transition

    opts = TransitionOptions(device="cpu", max_side=64, iters=2, progress=False)
    row = eval_transition.evaluate_clip(still_shot(sample_clip, 8), still_shot(second_clip, 8), "whole", opts,
                                        tmp_path)
    assert json.loads(json.dumps(row))["kind"] == row["kind"] and isinstance(row["kind"], str)


def test_shot_scores_pool_average_and_take_the_middle():
    """eval_transition's three figures per shot: pooled over the mixed frames, the mean of
    per-frame PSNRs, and pooled over the frames weighted 0.2 to 0.8."""
    from benchmarks.eval_transition import psnr, shot_scores
    truth = np.full((5, 4, 4, 3), 100, np.uint8)
    got = truth.copy()
    got[1] += 10  # off by 10 everywhere: 28.13 dB
    got[3] += 1   # off by 1: 48.13 dB
    weight = np.array([1.0, 0.9, 0.5, 0.1, 0.0])  # frames 1-3 mixed, frame 2 the middle
    scores = shot_scores(got, truth, weight)
    assert scores["pooled"] == pytest.approx(10 * np.log10(255 ** 2 / ((100 + 0 + 1) / 3)))
    assert scores["frame_mean"] == pytest.approx((psnr(got[1], truth[1]) + 100 + psnr(got[3], truth[3])) / 3)
    assert scores["middle"] == 100  # frame 2 is exact (capped at 100 dB)
    assert shot_scores(got, truth, np.array([1.0, 0.95, 0.9, 0.1, 0.0]))["middle"] is None


def test_oracle_removal_finds_what_moves_and_fills_from_other_frames():
    from benchmarks.oracle_removal import moving_background, oracle_fill, renderer_fill
    from ddip_video.tasks.fgbg.plate import CameraPath

    rng = np.random.default_rng(0)
    count, h, w = 8, 48, 64
    scene = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    background = np.repeat(scene[None], count, 0)
    background[:, 30:40, 5:15] = rng.integers(0, 256, (count, 10, 10, 3), dtype=np.uint8)  # water
    path = CameraPath(np.repeat(np.eye(3)[None], count, 0))  # a still camera

    moving = moving_background(background, path, level=25, grow=0)
    assert moving[:, 31:39, 6:14].mean() > 0.8 and not moving[:, :, 20:].any()

    masks = np.zeros((count, h, w), bool)
    frames = background.copy()
    for t in range(count):  # an object crossing the still part of the scene
        masks[t, 5:20, 20 + 4 * t:32 + 4 * t] = True
        frames[t][masks[t]] = 255
    for fill in (oracle_fill(frames, masks, path, background), renderer_fill(frames, masks, path)):
        assert np.abs(fill[masks].astype(int) - background[masks]).max() <= 1


def test_priors_transition_tells_a_coherent_shot_from_a_flickering_one():
    """priors_transition's terms: a texture panning one pixel a frame agrees with itself
    along its own flow (0.004 measured); the same with fresh noise in every frame does not
    (46); a blurred frame has the sparser gradients; values go to the bands of their weights."""
    from benchmarks.priors_transition import band_means, coherence, sparsity

    rng = np.random.default_rng(0)
    count, h, w = 6, 48, 64
    scene = cv2.GaussianBlur(rng.random((h, w + count, 3)).astype(np.float32), (0, 0), 1.5)
    panning = np.stack([scene[:, t:t + w] for t in range(count)])
    flickering = np.clip(panning + rng.normal(0, 0.05, panning.shape).astype(np.float32), 0, 1)
    seen = np.ones(count, bool)
    steps, still = coherence(panning, seen)
    _, noisy = coherence(flickering, seen)
    assert len(steps) == 2 * (count - 1) and sorted(steps) == sorted(list(range(count - 1)) + list(range(1, count)))
    assert still.mean() < 1 and noisy.mean() > 20  # x 1000; read without the flow, the panning scores 18
    assert sparsity(cv2.GaussianBlur(panning[0], (0, 0), 2)) < sparsity(panning[0])
    means = band_means(np.array([0.1, 0.15, 0.3, 0.9, 1.0]), np.array([1.0, 3.0, 5.0, 7.0, 9.0]))
    assert means == [2.0, 5.0, None, 8.0]
