"""Forward+backward time of each fused operator against its pure-PyTorch
reference, eager and under torch.compile, measured in one run.

    python -m benchmarks.bench_ops [--device cuda|cpu] [--json out.json]

CUDA: CUDA events, warm-up, median of repeats; the effective bandwidth of each
variant (the fewest bytes the op must move: inputs read once forward and once
backward, gradients written once) and its fraction of a device-to-device copy
measured in the same run. CPU: wall-clock medians at smaller shapes.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from ddip_video import ops

CUDA_SHAPES = [(1, 3, 480, 854), (16, 3, 480, 854), (16, 3, 1080, 1920)]
CPU_SHAPES = [(1, 3, 240, 428), (4, 3, 240, 428)]


def timer(device: str):
    """Returns time_ms(fn) for the device: median over repeats after warm-up."""
    def cuda_time(fn, repeats, warmup):
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)

    def cpu_time(fn, repeats, warmup):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return cuda_time if device == "cuda" else cpu_time


def graphed(step):
    """The step captured in a CUDA graph: replays time the GPU work alone,
    without the CPU's per-kernel launch cost."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def copy_bandwidth_gbs(device: str, time_ms) -> float:
    """Device-to-device copy of 1 GiB (CPU: 256 MiB), bytes read + written per second."""
    numel = (1 << 28) if device == "cuda" else (1 << 26)
    src = torch.rand(numel, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), repeats=20, warmup=3)
    return 2 * src.numel() * src.element_size() / (ms * 1e-3) / 1e9


def exclusion_case(shape, device, dtype):
    a = torch.rand(shape, device=device, dtype=dtype, requires_grad=True)
    b = torch.rand(shape, device=device, dtype=dtype, requires_grad=True)
    size = a.numel() * a.element_size()
    variants = {
        "eager": lambda x, y: ops.exclusion_loss_reference(x, y, 3),
        "compiled": torch.compile(lambda x, y: ops.exclusion_loss_reference(x, y, 3)),
        "fused": lambda x, y: torch.ops.ddip_video.exclusion_loss(x, y, 3),
    }
    # forward reads a, b; backward reads a, b and writes both gradients
    return variants, (a, b), (a, b), 6 * size


def composite_case(shape, device, dtype):
    n, _, h, w = shape
    mask = torch.rand((n, 1, h, w), device=device, dtype=dtype, requires_grad=True)
    y1 = torch.rand(shape, device=device, dtype=dtype, requires_grad=True)
    y2 = torch.rand(shape, device=device, dtype=dtype, requires_grad=True)
    target = torch.rand(shape, device=device, dtype=dtype)
    size, msize = y1.numel() * y1.element_size(), mask.numel() * mask.element_size()
    variants = {
        "eager": lambda m, a, b: ops.composite_recon_loss_reference(m, a, b, target, 1),
        "compiled": torch.compile(lambda m, a, b: ops.composite_recon_loss_reference(m, a, b, target, 1)),
        "fused": lambda m, a, b: torch.ops.ddip_video.composite_recon_loss(m, a, b, target, 1),
    }
    # forward reads mask, y1, y2, target; backward reads them again and writes 3 gradients
    return variants, (mask, y1, y2), (mask, y1, y2), 3 * msize + 8 * size


def run(device: str, shapes, repeats: int, dtype=torch.float32) -> dict:
    time_ms = timer(device)
    copy_gbs = copy_bandwidth_gbs(device, time_ms)
    rows = []
    for op, case in (("exclusion_loss", exclusion_case), ("composite_recon_loss", composite_case)):
        for shape in shapes:
            variants, args, wrt, min_bytes = case(shape, device, dtype)
            for name, fn in variants.items():
                step = lambda: torch.autograd.grad(fn(*args), wrt)
                ms = time_ms(step, repeats=repeats, warmup=3)
                # GPU time: the same step replayed from a CUDA graph
                graph_ms = time_ms(graphed(step), repeats=repeats, warmup=3) if device == "cuda" else ms
                gbs = min_bytes / (graph_ms * 1e-3) / 1e9
                rows.append(dict(op=op, shape=list(shape), variant=name, ms=ms, graph_ms=graph_ms,
                                 gbs=gbs, copy_fraction=gbs / copy_gbs))
                print(f"  {op:21s} {str(shape):18s} {name:9s} {ms:9.3f} ms  graph {graph_ms:9.3f} ms",
                      flush=True)
            if device == "cuda":
                torch.cuda.empty_cache()
    return dict(device=device_name(device), torch=torch.__version__, dtype=str(dtype),
                copy_gbs=copy_gbs, rows=rows)


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def print_table(result: dict) -> None:
    print(f"\n{result['device']} | torch {result['torch']} | {result['dtype']} | "
          f"device-to-device copy {result['copy_gbs']:.0f} GB/s (read + write)")
    print("per call: events around one eager call (CPU launch cost included); GPU: the same step "
          "replayed from a CUDA graph (on the CPU both are wall-clock); GB/s and speed-ups from GPU times")
    print(f"{'op':21s} {'shape':19s} {'variant':9s} {'per call ms':>11s} {'GPU ms':>9s} {'GB/s':>7s} "
          f"{'of copy':>8s} {'vs eager':>9s} {'vs compiled':>12s}")
    by_key = {(r["op"], tuple(r["shape"]), r["variant"]): r for r in result["rows"]}
    for r in result["rows"]:
        key = (r["op"], tuple(r["shape"]))
        eager, compiled = by_key[key + ("eager",)]["graph_ms"], by_key[key + ("compiled",)]["graph_ms"]
        print(f"{r['op']:21s} {str(tuple(r['shape'])):19s} {r['variant']:9s} {r['ms']:11.3f} "
              f"{r['graph_ms']:9.3f} {r['gbs']:7.0f} {100 * r['copy_fraction']:7.1f}% "
              f"{eager / r['graph_ms']:8.1f}x {compiled / r['graph_ms']:11.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    reason = ops.kernel_unavailable_reason("benchmark", torch.empty(0, device=args.device))
    if reason:
        raise SystemExit(f"bench_ops: {reason}")
    shapes = CUDA_SHAPES if args.device == "cuda" else CPU_SHAPES
    repeats = args.repeats or (50 if args.device == "cuda" else 7)
    result = run(args.device, shapes, repeats)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
