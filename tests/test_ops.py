"""The fused operators against their pure-PyTorch references, forward and
backward, on every backend built here (CUDA cases skip, visibly, without a GPU)."""
import pytest
import torch

from ddip_video import ops

CUDA = torch.cuda.is_available() and ops.CUDA_KERNELS_BUILT
NO_CUDA_REASON = ("needs a CUDA device and the CUDA kernels "
                  f"(cuda available: {torch.cuda.is_available()}, CUDA kernels built: {ops.CUDA_KERNELS_BUILT})")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason=NO_CUDA_REASON))]

pytestmark = pytest.mark.skipif(not ops.KERNELS_BUILT, reason=f"C++ kernels not built: {ops.LOAD_ERROR}")

composite = torch.ops.ddip_video.composite_recon_loss if ops.KERNELS_BUILT else None
exclusion = torch.ops.ddip_video.exclusion_loss if ops.KERNELS_BUILT else None

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=1e-7)}


def _inputs(shape, mask_shape, dtype, device, contiguous=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda s: torch.rand(s, generator=g, dtype=torch.float64)
    mask, y1, y2, target = make(mask_shape), make(shape), make(shape), make(shape)
    if not contiguous:  # same values, transposed storage
        flip = lambda t: t.transpose(2, 3).contiguous().transpose(2, 3)
        mask, y1, y2, target = flip(mask), flip(y1), flip(y2), flip(target)
        assert not y1.is_contiguous()
    conv = lambda t: t.to(device=device, dtype=dtype).requires_grad_()
    return conv(mask), conv(y1), conv(y2), target.to(device=device, dtype=dtype)


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


def _assert_close_to_reference(fused, reference, inputs, dtype):
    tol = TOL[dtype]
    torch.testing.assert_close(fused, reference, **tol)
    for got, want in zip(_grads(fused, inputs), _grads(reference, inputs)):
        torch.testing.assert_close(got, want, **tol)


# ---- composite_recon_loss -------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("per_pixel", [True, False])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 16, 24), (1, 3, 7, 5), (3, 3, 33, 65)])
def test_composite_matches_reference(device, dtype, p, per_pixel, contiguous, shape):
    n, _, h, w = shape
    mask_shape = (n, 1, h, w) if per_pixel else (n, 1, 1, 1)
    mask, y1, y2, target = _inputs(shape, mask_shape, dtype, device, contiguous)
    fused = composite(mask, y1, y2, target, p)
    reference = ops.composite_recon_loss_reference(mask, y1, y2, target, p)
    _assert_close_to_reference(fused, reference, (mask, y1, y2), dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_composite_target_gradient(device):
    mask, y1, y2, target = _inputs((2, 3, 8, 8), (2, 1, 8, 8), torch.float64, device)
    target.requires_grad_()
    got = _grads(composite(mask, y1, y2, target, 2), (target,))[0]
    want = _grads(ops.composite_recon_loss_reference(mask, y1, y2, target, 2), (target,))[0]
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("per_pixel", [True, False])
@pytest.mark.parametrize("p", [1, 2])
def test_composite_gradcheck(device, per_pixel, p):
    mask, y1, y2, target = _inputs((2, 3, 5, 6), (2, 1, 5, 6) if per_pixel else (2, 1, 1, 1),
                                   torch.float64, device)
    assert torch.autograd.gradcheck(lambda m, a, b: composite(m, a, b, target, p), (mask, y1, y2))


@pytest.mark.parametrize("device", DEVICES)
def test_composite_opcheck(device):
    for mask_shape in ((2, 1, 6, 7), (2, 1, 1, 1)):
        mask, y1, y2, target = _inputs((2, 3, 6, 7), mask_shape, torch.float32, device)
        torch.library.opcheck(torch.ops.ddip_video.composite_recon_loss.default, (mask, y1, y2, target, 1))
        torch.library.opcheck(torch.ops.ddip_video.composite_recon_loss_backward.default,
                              (torch.tensor(1.0, device=device), mask.detach(), y1.detach(), y2.detach(), target, 2))


@pytest.mark.parametrize("device", DEVICES)
def test_composite_rejects_bad_arguments(device):
    mask, y1, y2, target = _inputs((2, 3, 6, 7), (2, 1, 6, 7), torch.float32, device)
    with pytest.raises(RuntimeError, match="p must be 1 or 2"):
        composite(mask, y1, y2, target, 3)
    with pytest.raises(RuntimeError, match="mask must be 2 x 1 x 6 x 7 or 2 x 1 x 1 x 1"):
        composite(mask[:, :, :3], y1, y2, target, 1)
    with pytest.raises(RuntimeError, match="same shape"):
        composite(mask, y1, y2[:, :, :3], target, 1)
    with pytest.raises(RuntimeError, match="one dtype"):
        composite(mask, y1.double(), y2, target, 1)


def test_composite_public_function_broadcasts_and_falls_back():
    mask, y1, y2, target = _inputs((2, 3, 6, 7), (1, 1, 6, 7), torch.float64, "cpu")
    got = ops.composite_recon_loss(mask, y1, y2, target, 1)  # shared mask: expanded for the kernel
    torch.testing.assert_close(got, ops.composite_recon_loss_reference(mask, y1, y2, target, 1))
    per_channel = torch.rand(2, 3, 6, 7, dtype=torch.float64)  # no kernel: the reference
    got = ops.composite_recon_loss(per_channel, y1, y2, target, 2)
    torch.testing.assert_close(got, ops.composite_recon_loss_reference(per_channel, y1, y2, target, 2))
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        ops.composite_recon_loss(mask, y1, y2, target, 0)


# ---- exclusion_loss -----------------------------------------------------------

EXCLUSION_SHAPES = [(2, 3, 16, 24), (1, 3, 17, 23), (3, 3, 9, 13), (1, 3, 4, 4), (2, 3, 64, 40)]


def _layers(shape, dtype, device, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    # spread > 1 puts some differences outside [-1, 1], the kernels' other branch
    a = (torch.rand(shape, generator=g, dtype=torch.float64) * spread).to(device=device, dtype=dtype)
    b = torch.rand(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    return a.requires_grad_(), b.requires_grad_()


def _levels_for(shape):
    return [l for l in (1, 2, 3) if min(shape[2], shape[3]) >> (l - 1) >= 2]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", EXCLUSION_SHAPES)
@pytest.mark.parametrize("spread", [1.0, 4.0])
def test_exclusion_matches_reference(device, dtype, shape, spread):
    for levels in _levels_for(shape):
        a, b = _layers(shape, dtype, device, spread=spread)
        fused = exclusion(a, b, levels)
        reference = ops.exclusion_loss_reference(a, b, levels)
        tol = TOL[dtype] if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(fused, reference, **tol)
        for got, want in zip(_grads(fused, (a, b)), _grads(reference, (a, b))):
            torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize("device", DEVICES)
def test_exclusion_forward_means(device):
    a, b = _layers((2, 3, 12, 20), torch.float64, device)
    _, means, pyramid_a, _ = torch.ops.ddip_video.exclusion_loss_forward(a, b, 3)
    torch.testing.assert_close(means, ops.exclusion_means_reference(a, b, 3))
    assert pyramid_a.numel() == 2 * 3 * (6 * 10 + 3 * 5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_exclusion_gradcheck(device, levels):
    a, b = _layers((2, 3, 9, 12), torch.float64, device)
    assert torch.autograd.gradcheck(lambda x, y: exclusion(x, y, levels), (a, b))


@pytest.mark.parametrize("device", DEVICES)
def test_exclusion_opcheck(device):
    a, b = _layers((2, 3, 12, 17), torch.float32, device)
    torch.library.opcheck(torch.ops.ddip_video.exclusion_loss_forward.default, (a, b, 3))
    torch.library.opcheck(torch.ops.ddip_video.exclusion_loss.default, (a, b, 2))
    _, means, pa, pb = torch.ops.ddip_video.exclusion_loss_forward(a, b, 3)
    torch.library.opcheck(torch.ops.ddip_video.exclusion_loss_backward.default,
                          (torch.tensor(1.0, device=device), a.detach(), b.detach(), means, pa, pb, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_exclusion_too_small_is_a_clear_error(device):
    a, b = _layers((1, 3, 7, 20), torch.float32, device)
    message = "a 7 x 20 input is too small for 3 levels"
    with pytest.raises(RuntimeError, match=message):
        exclusion(a, b, 3)
    with pytest.raises(ValueError, match=message):
        ops.exclusion_loss_reference(a, b, 3)
    exclusion(a, b, 2)  # 7 x 20 -> 3 x 10: still fine
    with pytest.raises(RuntimeError, match="N x 3 x H x W"):
        exclusion(a[:, :2], b[:, :2], 1)
    with pytest.raises(RuntimeError, match="levels must be in 1..16"):
        exclusion(a, b, 0)


# ---- the fake kernels check what the kernels check ------------------------------

BAD_CALLS = {  # (operator, arguments) -> the kernel's message
    "composite p": (lambda m, y1, y2, t, a, b: composite(m, y1, y2, t, 3), "p must be 1 or 2"),
    "composite mask": (lambda m, y1, y2, t, a, b: composite(m[:, :, :3], y1, y2, t, 1), "mask must be 2 x 1 x 6 x 7"),
    "composite shape": (lambda m, y1, y2, t, a, b: composite(m, y1, y2[:, :, :3], t, 1), "same shape"),
    "composite dtype": (lambda m, y1, y2, t, a, b: composite(m, y1.double(), y2, t, 1), "one dtype"),
    "exclusion channels": (lambda m, y1, y2, t, a, b: exclusion(a[:, :2], b[:, :2], 1), "N x 3 x H x W"),
    "exclusion shape": (lambda m, y1, y2, t, a, b: exclusion(a, b[:, :, :4], 1), "same shape"),
    "exclusion levels": (lambda m, y1, y2, t, a, b: exclusion(a, b, 0), "levels must be in 1..16"),
    "exclusion too small": (lambda m, y1, y2, t, a, b: exclusion(a, b, 3), "a 6 x 7 input is too small for 3 levels"),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_fake_kernels_reject_what_the_kernels_reject(case):
    """torch.compile traces with the fake kernels: a call the kernel refuses must be
    refused there too, with the kernel's words, not traced into a graph that fails later."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    call, message = BAD_CALLS[case]
    mask, y1, y2, target = (t.detach() for t in _inputs((2, 3, 6, 7), (2, 1, 6, 7), torch.float32, "cpu"))
    a, b = y1.clone(), y2.clone()
    with pytest.raises(RuntimeError, match=message):  # the kernel
        call(mask, y1, y2, target, a, b)
    with FakeTensorMode() as mode:
        fake = [mode.from_tensor(t) for t in (mask, y1, y2, target, a, b)]
        with pytest.raises(RuntimeError, match=message):  # its fake
            call(*fake)


# ---- both, under torch.compile --------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph_over_both_operators(device):
    torch._dynamo.reset()

    def step(mask, y1, y2, target):
        return composite(mask, y1, y2, target, 1) + 0.1 * exclusion(y1, y2, 3)

    mask, y1, y2, target = _inputs((2, 3, 16, 20), (2, 1, 16, 20), torch.float32, device)
    compiled = torch.compile(step, fullgraph=True)
    got = compiled(mask, y1, y2, target)
    want = step(mask, y1, y2, target)
    torch.testing.assert_close(got, want)
    for g_got, g_want in zip(_grads(got, (mask, y1, y2)), _grads(want, (mask, y1, y2))):
        torch.testing.assert_close(g_got, g_want)


# ---- CUDA-only dtypes -----------------------------------------------------------

@pytest.mark.skipif(not CUDA, reason=NO_CUDA_REASON)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_accumulates_in_float(dtype):
    a, b = _layers((4, 3, 64, 96), torch.float32, "cuda")
    mask = torch.rand(4, 1, 64, 96, device="cuda")
    target = torch.rand(4, 3, 64, 96, device="cuda")
    low = [t.detach().to(dtype).requires_grad_() for t in (mask, a, b)]
    # reference: the same (rounded) values in float32
    high = [t.detach().float().requires_grad_() for t in low]
    tol = dict(rtol=2e-2, atol=1e-3)
    got = composite(*low, target.to(dtype), 2)
    want = ops.composite_recon_loss_reference(*high, target.to(dtype).float(), 2)
    torch.testing.assert_close(got.float(), want, **tol)
    for g, w in zip(_grads(got, low), _grads(want, high)):
        torch.testing.assert_close(g.float(), w, **tol)
    got = exclusion(low[1], low[2], 3)
    want = ops.exclusion_loss_reference(high[1], high[2], 3)
    torch.testing.assert_close(got.float(), want, **tol)
    for g, w in zip(_grads(got, low[1:]), _grads(want, high[1:])):
        torch.testing.assert_close(g.float(), w, rtol=2e-2, atol=2e-2 * w.abs().max().item())


@pytest.mark.skipif(not CUDA, reason=NO_CUDA_REASON)
def test_cuda_large_frame_matches_cpu():
    a, b = _layers((2, 3, 240, 427), torch.float32, "cpu", seed=3)
    ga = [t.detach().cuda().requires_grad_() for t in (a, b)]
    cpu_loss = exclusion(a, b, 3)
    cuda_loss = exclusion(*ga, 3)
    torch.testing.assert_close(cuda_loss.cpu(), cpu_loss, rtol=1e-4, atol=1e-7)
    for g, w in zip(_grads(cuda_loss, ga), _grads(cpu_loss, (a, b))):
        torch.testing.assert_close(g.cpu(), w, rtol=1e-4, atol=1e-9)
