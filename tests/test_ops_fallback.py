"""Without ddip_video._C (a failed build) the package still imports, says so,
and every loss falls back to the pure-PyTorch reference with one warning."""
import os
import subprocess
import sys
import textwrap

# Runs in a fresh interpreter where importing ddip_video._C fails, as it does
# when the extension did not build.
SCRIPT = textwrap.dedent("""
    import importlib.abc, sys, warnings

    class NoExtension(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "ddip_video._C":
                raise ImportError("simulated: the extension was not built")
            return None

    sys.meta_path.insert(0, NoExtension())
    import torch
    import ddip_video
    from ddip_video import ops
    from ddip_video.cli import main

    assert not ops.KERNELS_BUILT and not ops.CUDA_KERNELS_BUILT
    assert "not built" in ops.LOAD_ERROR
    g = torch.Generator().manual_seed(0)
    a, b, target = (torch.rand(2, 3, 16, 20, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(2, 1, 16, 20, generator=g, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            excl = ops.exclusion_loss(a, b)
            comp = ops.composite_recon_loss(mask, a, b, target, 2)
    assert torch.equal(excl, ops.exclusion_loss_reference(a, b))
    assert torch.equal(comp, ops.composite_recon_loss_reference(mask, a, b, target, 2))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "not built" in messages[0] and "pure-PyTorch reference" in messages[0], messages
    sys.exit(main(["info"]))
""")


def test_without_the_extension_the_reference_takes_over_with_one_warning():
    env = dict(os.environ, DDIP_VIDEO_REFERENCE="0")
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "C++ kernels: NOT built (ImportError: simulated: the extension was not built)" in result.stdout
    assert "CUDA kernels: not built" in result.stdout
