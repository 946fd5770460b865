"""The evaluation scripts' own logic, where a figure depends on it."""
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bound_transition  # noqa: E402
import eval_transition  # noqa: E402
from ddip_video.video import read_video  # noqa: E402


def test_option_overrides_take_each_fields_type():
    assert eval_transition.option_overrides(["exclusion_weight=0", "window=4", "progress=no"]) == dict(
        exclusion_weight=0.0, window=4, progress=False)
    for bad in (["nonsense=1"], ["window"], ["max_side=64"]):
        with pytest.raises(SystemExit):
            eval_transition.option_overrides(bad)


def still_shot(path: Path, frames: int) -> torch.Tensor:
    first = read_video(path, max_side=64)[0][:1]
    return first.repeat(frames, 1, 1, 1)


def test_bound_recovers_still_shots_from_their_flow(sample_clip, second_clip):
    """Two still shots dissolved: with no motion, frames of different alpha
    pin both shots down, and the bound must find them; without the temporal
    term each frame is a separate, ambiguous unmixing. (Measured at 400 steps:
    78.2 / 78.4 dB with it, 17.2 / 17.2 without; 39.4 with it at 200 steps.)"""
    shot_a = still_shot(sample_clip, 6)
    shot_b = still_shot(second_clip, 6)
    args = Namespace(steps=400, temporal=1.0, tv=0.0, exclusion=0.0)
    with_motion = bound_transition.bound_clip(shot_a, shot_b, "whole", args)
    args.temporal = 0.0
    without = bound_transition.bound_clip(shot_a, shot_b, "whole", args)
    assert min(with_motion["psnr_a"], with_motion["psnr_b"]) > 35
    assert max(without["psnr_a"], without["psnr_b"]) < 30
    assert [p["frame"] for p in with_motion["per_frame"]] == [1, 2, 3, 4]
    assert np.all(np.isfinite([p["a"] for p in with_motion["per_frame"]]))
