"""The model's pieces: shapes, ranges, time-correlated codes, the panorama's
geometry, and determinism of a whole (tiny) optimisation on the CPU."""
import math

import numpy as np
import pytest
import torch

from ddip_video.codes import FrameCodes
from ddip_video.fit import BestState, ParamGroup, Schedule, fit, frame_windows
from ddip_video.analysis.motion import MotionHints
from ddip_video.tasks.fgbg.model import FgbgModel, PanoramaBackground, panorama_geometry
from ddip_video.nets import SkipNet, TemporalMix, smallest_side


@pytest.mark.parametrize("size", [(32, 48), (37, 53), (17, 17)])
def test_skip_net_any_size_output_in_unit_range(size):
    net = SkipNet(4, 3, channels=(8, 16, 16))
    y = net(torch.randn(2, 4, *size))
    assert y.shape == (2, 3, *size)
    assert 0 <= y.min() and y.max() <= 1


@pytest.mark.parametrize("levels", [3, 5])
def test_smallest_side_is_the_smallest_a_skip_net_takes(levels):
    # batch 1 in training mode, as the panorama's canvas runs: the hardest case
    net = SkipNet(2, 3, channels=(4,) * levels)
    side = smallest_side(levels)
    assert net(torch.randn(1, 2, side, side + 7)).shape == (1, 3, side, side + 7)
    with pytest.raises((RuntimeError, ValueError)):
        net(torch.randn(1, 2, side - 1, side + 7))


def test_temporal_net_mixes_neighbouring_frames():
    torch.manual_seed(0)
    net = SkipNet(3, 1, channels=(8, 8), temporal=True)
    for module in net.modules():
        if isinstance(module, TemporalMix):
            torch.nn.init.normal_(module.conv.weight, std=0.5)
    net.eval()  # fixed statistics, so only the temporal mixing links the frames
    x = torch.rand(5, 3, 16, 16)
    y = net(x)
    x2 = x.clone()
    x2[4] = torch.rand(3, 16, 16)  # change the last frame only
    y2 = net(x2)
    # each of the two levels mixes one frame further: frame 4 reaches frames 3 and 2
    assert torch.allclose(y[:2], y2[:2])
    assert not torch.allclose(y[2], y2[2]) and not torch.allclose(y[3], y2[3])


def test_frame_codes_are_correlated_in_time_and_perturbed():
    codes = FrameCodes(40, 4, 32, 32, correlation=0.9, generator=torch.Generator().manual_seed(0))
    z = codes.codes.flatten(1)
    corr = lambda a, b: torch.corrcoef(torch.stack([z[a], z[b]]))[0, 1].item()
    assert corr(10, 11) == pytest.approx(0.9, abs=0.03)
    assert abs(corr(0, 39)) < 0.1
    idx = torch.tensor([3, 4])
    assert torch.equal(codes(idx, perturb=False), codes.codes[idx])
    assert not torch.equal(codes(idx), codes(idx))


def test_panorama_geometry_identity_and_shift():
    h, w = 20, 30
    shift = np.eye(3)
    shift[0, 2] = 10.0  # frame 1 sees the scene 10 pixels to the right of frame 0
    geom = panorama_geometry(np.stack([np.eye(3), shift]), h, w)
    assert (geom.width, geom.height) == (w + 10, h)
    canvas = torch.arange(geom.width, dtype=torch.float32).expand(1, 1, geom.height, geom.width)
    sampled = torch.nn.functional.grid_sample(canvas.expand(2, -1, -1, -1), geom.grids, align_corners=False)
    assert torch.allclose(sampled[0, 0, 0], torch.arange(w, dtype=torch.float32), atol=1e-4)
    assert torch.allclose(sampled[1, 0, 0], torch.arange(w, dtype=torch.float32) + 10, atol=1e-4)


def test_panorama_background_follows_the_camera():
    h, w = 16, 24
    shift = np.eye(3)
    shift[0, 2] = 8.0
    bg = PanoramaBackground(panorama_geometry(np.stack([np.eye(3), shift]), h, w), channels=(8, 8),
                            generator=torch.Generator().manual_seed(0))
    frames = bg(torch.tensor([0, 1]), perturb=False)
    assert frames.shape == (2, 3, h, w)
    # the same scene pixels, 8 columns apart
    assert torch.allclose(frames[0, :, :, 8:], frames[1, :, :, :-8], atol=1e-5)


def test_frame_windows_cover_the_clip():
    windows = frame_windows(10, 4)
    assert [w.tolist() for w in windows] == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert [w.tolist() for w in frame_windows(3, 8)] == [[0, 1, 2]]
    assert len(frame_windows(10, 4, overlap=2)) == 4


def test_best_state_keeps_the_lowest_and_stops():
    module = torch.nn.Linear(1, 1)
    best = BestState(module, patience=2)
    for step, score in enumerate([math.nan, 3.0, 2.0]):
        module.weight.data.fill_(score)
        assert not best.update(score, step)
    module.weight.data.fill_(9.0)
    assert not best.update(2.5, 3)
    assert best.update(2.1, 4)  # two checks without improvement
    best.restore()
    assert module.weight.item() == 2.0 and best.best_step == 2


class CountedChecks:
    """A one-weight task that counts the engine's checks of its score."""

    def __init__(self):
        self.model = torch.nn.Linear(1, 1)
        self.checks = 0

    def param_groups(self):
        return [ParamGroup(list(self.model.parameters()), 0.1)]

    def loss_terms(self, idx, step):
        return {"square": (self.model(idx.float()[:, None]) ** 2).mean()}

    def score(self, idx):
        self.checks += 1
        return (self.model(idx.float()[:, None]) ** 2).mean()


@pytest.mark.parametrize("steps, checked", [(5, False), (12, True)])
def test_fit_skips_a_lone_check_at_the_last_step(steps, checked):
    """With eval_every 10, a 5-step fit's only check would be its last step's: it could
    only keep the last state, so it is not run; a 12-step fit checks at 10 and 12."""
    task = CountedChecks()
    report = fit(task, 4, Schedule(steps, 2, 10, 3), torch.device("cpu"), torch.Generator().manual_seed(0),
                 "test", progress=False)
    assert report.steps == steps
    assert (task.checks > 0) == checked
    if not checked:
        assert report.best_step == steps - 1


def test_the_mask_alone_is_the_models_mask():
    """predict infers the masks through the mask net alone: the same as the whole model's."""
    t, h, w = 6, 40, 48
    frames = torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(1))
    prob = np.zeros((t, h, w), np.float32)
    prob[:, 10:20, 10:30] = 0.9
    hints = MotionHints(prob, prob > 0.5, np.tile(np.eye(3), (t, 1, 1)), True, False)
    model = FgbgModel(frames, hints, torch.Generator().manual_seed(0))
    hint, idx = torch.from_numpy(prob)[:, None], torch.arange(1, 5)
    with torch.no_grad():
        assert torch.equal(model.mask(idx, frames, hint, perturb=False), model(idx, frames, hint, perturb=False)[0])
