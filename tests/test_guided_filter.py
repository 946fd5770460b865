"""The guided filter that enlarges fgbg's masks: against its definition, and on an edge."""
import numpy as np
import pytest
import torch

from ddip_video.guided_filter import box_mean, guided_coefficients, guided_upsample
from ddip_video.video import resize_frames


def window(h, w, y, x, r):
    return slice(max(0, y - r), min(h, y + r + 1)), slice(max(0, x - r), min(w, x + r + 1))


@pytest.mark.parametrize("radius", [1, 2, 5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # float32 on the CPU: OpenCV's box filter
def test_box_mean_is_the_mean_over_the_clipped_window(radius, dtype):
    x = torch.rand(2, 3, 5, 7, dtype=dtype, generator=torch.Generator().manual_seed(0))
    expected = torch.empty_like(x)
    for y in range(5):
        for c in range(7):
            rows, cols = window(5, 7, y, c, radius)
            expected[..., y, c] = x[..., rows, cols].mean((-2, -1))
    torch.testing.assert_close(box_mean(x, radius), expected)


def ridge_fit(guide, source, rows, cols, eps):
    """The window's least-squares fit source ~ a . guide + b with eps |a|^2 per pixel
    (the guided filter's definition), solved as an augmented least-squares problem."""
    colours = guide[:, rows, cols].reshape(3, -1).T
    values = source[0, rows, cols].reshape(-1)
    n = len(values)
    design = np.vstack([np.hstack([colours, np.ones((n, 1))]),
                        np.hstack([np.sqrt(n * eps) * np.eye(3), np.zeros((3, 1))])])
    solution = np.linalg.lstsq(design, np.concatenate([values, np.zeros(3)]), rcond=None)[0]
    return solution[:3], solution[3]


def test_coefficients_are_window_ridge_fits_averaged():
    rng = np.random.default_rng(1)
    guide, source = rng.random((3, 6, 5)), rng.random((1, 6, 5))
    radius, eps = 1, 1e-2
    a_fit = np.zeros((6, 5, 3))
    b_fit = np.zeros((6, 5))
    for y in range(6):
        for x in range(5):
            a_fit[y, x], b_fit[y, x] = ridge_fit(guide, source, *window(6, 5, y, x, radius), eps)
    expected_a = np.zeros((3, 6, 5))
    expected_b = np.zeros((6, 5))
    for y in range(6):  # each pixel averages the fits of the windows holding it
        for x in range(5):
            rows, cols = window(6, 5, y, x, radius)
            expected_a[:, y, x] = a_fit[rows, cols].reshape(-1, 3).mean(0)
            expected_b[y, x] = b_fit[rows, cols].mean()
    a, b = guided_coefficients(torch.from_numpy(guide)[None], torch.from_numpy(source)[None], radius, eps)
    np.testing.assert_allclose(a[0].numpy(), expected_a, atol=1e-10)
    np.testing.assert_allclose(b[0, 0].numpy(), expected_b, atol=1e-10)


@pytest.mark.parametrize("offset", [-4, -2, 2, 4])
def test_upsampled_mask_snaps_to_the_image_edge(offset):
    """A coarse mask whose edge is a few pixels off the object's (as a mask found at
    a sixth of the size is), enlarged 6x: bilinear enlargement keeps the error,
    the guided filter puts the edge where the image has it."""
    height, width, edge = 60, 96, 40  # the object fills columns >= 40
    image = torch.full((1, 3, height, width), 0.2)
    image[..., edge:] = torch.tensor([0.9, 0.5, 0.1])[:, None, None]
    truth = torch.zeros(height, width, dtype=torch.bool)
    truth[:, edge:] = True
    found = torch.zeros(1, 1, height, width)
    found[..., edge + offset:] = 1
    coarse_mask = resize_frames(found, (16, 10))
    bilinear = resize_frames(coarse_mask, (width, height))[0, 0] > 0.5
    guided = guided_upsample(coarse_mask, image, (32, 20), 3)
    assert guided.shape == (1, 1, height, width)
    assert 0 <= guided.min() and guided.max() <= 1
    assert bilinear.ne(truth).sum() == abs(offset) * height
    assert guided[0, 0].gt(0.5).eq(truth).all()


def test_flat_image_gives_the_smooth_enlargement():
    """With nothing in the guide to follow, the filter cannot invent edges: the
    result stays close to a smooth enlargement of the mask."""
    mask = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    image = torch.full((1, 3, 40, 40), 0.5)
    guided = guided_upsample(mask, image, (16, 16), 1)
    smooth = resize_frames(box_mean(box_mean(resize_frames(mask, (16, 16)), 1), 1), (40, 40))
    torch.testing.assert_close(guided, smooth.clamp(0, 1), atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (fgbg enlarges its masks there)")
def test_full_size_mask_on_cuda_matches_cpu():
    """fgbg runs the enlargement on the model's device: a GPU must give the CPU's mask."""
    from ddip_video.tasks.fgbg.outputs import full_size_mask
    generator = torch.Generator().manual_seed(3)
    mask, image = torch.rand(1, 24, 40, generator=generator), torch.rand(3, 120, 200, generator=generator)
    on_gpu = full_size_mask(mask.cuda(), image.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), full_size_mask(mask, image), atol=1e-4, rtol=0)
