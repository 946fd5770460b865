"""Object removal with exact ground truth: the hole and rest PSNR of `fgbg`'s
background.mp4 (its clean plate, with its own masks), beside three references
that are handed the true masks, per clip.

    python -m benchmarks.eval_removal [--tools ../shared/tools/removal.py] [--data DIR]
                                      [--device D] [--max-side N] [--iters N] [--seed S]
                                      [--clips NAME ...] [--no-baselines] [--json F]

The clips come from the shared tool removal.py (`make`: a real DAVIS object pasted
over another DAVIS clip, the clip under it kept as the truth), made in a temporary
folder and coded as it codes them, on one encoder thread so that they are the same
every run. fgbg runs through the CLI's own code path (run_fgbg, every output written).
hole: PSNR over the pixels the paste covered (the clip's own object, dilated, left
out); rest: over the pixels no object touched. cover: the share of those hole pixels
where fgbg's mask is above one half (what the mask kept of the pasted object).
plate s/frame: the clean plate's own seconds (the plates and every frame's fill) per
frame. References (removal.py `baselines`, true masks dilated 4 px): the input, Telea
inpainting per frame, and the classic clean plate (each hole pixel from the nearest
frame in time that sees it, aligned by a homography).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from benchmarks.overrides import option_overrides
from ddip_video.tasks.fgbg.options import FgbgOptions
from ddip_video.tasks.fgbg.outputs import run_fgbg

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TOOL = REPO.parent / "shared" / "tools" / "removal.py"


def load_tool(path: Path):
    """removal.py, which lives beside the project, as a module."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (removal.py; --tools says where it is)")
    spec = importlib.util.spec_from_file_location("removal", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_clips(tool, data: Path, out: Path, only: list[str] | None) -> list[Path]:
    """The tool's clips (removal.py make), written under `out`."""
    clips = []
    for bg, obj, frac, direction in tool.PAIRS:
        name = f"{bg}+{obj}"
        if only and name not in only:
            continue
        background, own = tool.load(str(data), bg)
        pasted, pasted_mask = tool.load(str(data), obj)
        frames, paste = tool.paste_object(background, pasted, pasted_mask, frac, direction)
        folder = out / name
        folder.mkdir(parents=True)
        write_clip(folder / "input.mp4", frames)
        np.savez_compressed(folder / "truth.npz", bg=background, paste=paste, own=own)
        clips.append(folder)
    return clips


def write_clip(path: Path, frames: np.ndarray, fps: int = 24) -> None:
    """The clip, H.264 4:4:4 lossless (removal.py writes CRF 4). x264 coded the same frames
    differently from one clip to the next even on one thread (the decoded frames 45.818-45.820
    dB from the frames, run to run), and fgbg's masks follow such differences: its hole PSNR
    moved by up to 0.5 dB a clip between runs of the same code (benchmarks/notes/fgbg.md).
    Lossless, every run decodes the same frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        stream.options = {"qp": "0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def evaluate_clip(tool, clip: Path, opts: FgbgOptions, baselines: bool) -> dict:
    truth = dict(np.load(clip / "truth.npz"))
    row = {"clip": clip.name}
    with tempfile.TemporaryDirectory() as outdir:
        start = time.perf_counter()
        result = run_fgbg(clip / "input.mp4", outdir, opts)
        row["seconds"] = time.perf_counter() - start
        background = tool.read_video(str(Path(outdir) / "background.mp4"))
        mask = tool.read_video(str(Path(outdir) / "mask.mp4"))[..., 0] > 127
    row["hole"], row["rest"] = tool.score(background, truth)
    hole, _ = tool.regions(truth["paste"], truth["own"])
    row["cover"] = float(mask[hole].mean())
    row["plate_per_frame"] = result.plate_seconds / result.num_frames
    if baselines:
        frames = tool.read_video(str(clip / "input.mp4"))
        for name, (hole_psnr, rest_psnr) in tool.baselines(frames, truth).items():
            row[name.split(" ")[0]] = [hole_psnr, rest_psnr]
    return row


def print_table(rows: list[dict]) -> None:
    refs = [name for name in ("input", "telea", "temporal") if name in rows[0]]
    head = f"{'clip':24} {'hole':>6} {'rest':>6} {'cover':>6} {'plate s/fr':>10} {'s':>6}"
    head += "".join(f" {name + ' hole/rest':>18}" for name in refs)
    print(head)
    for row in rows:
        line = (f"{row['clip']:24} {row['hole']:6.2f} {row['rest']:6.2f} {row['cover']:6.3f}"
                f" {row['plate_per_frame']:10.3f} {row['seconds']:6.1f}")
        line += "".join(f" {row[name][0]:8.2f} /{row[name][1]:7.2f}" for name in refs)
        print(line)
    mean = {key: np.mean([row[key] for row in rows]) for key in ("hole", "rest", "cover", "plate_per_frame", "seconds")}
    line = (f"{'mean':24} {mean['hole']:6.2f} {mean['rest']:6.2f} {mean['cover']:6.3f}"
            f" {mean['plate_per_frame']:10.3f} {mean['seconds']:6.1f}")
    line += "".join(f" {np.mean([r[name][0] for r in rows]):8.2f} /{np.mean([r[name][1] for r in rows]):7.2f}"
                    for name in refs)
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", type=Path, default=DEFAULT_TOOL, help="removal.py")
    parser.add_argument("--data", type=Path, default=None, help="DAVIS data (default: the tool's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-side", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--iters", type=int, default=None, help="default: fgbg's for the device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips", nargs="+", help="only these clips (e.g. dog+car-shadow)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the three references")
    parser.add_argument("--json", type=Path, help="write the per-clip figures here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an FgbgOptions field to change (a trial)")
    args = parser.parse_args()
    tool = load_tool(args.tools)
    data = args.data or args.tools.resolve().parent.parent / "data" / "davis2016"
    opts = FgbgOptions(device=args.device, max_side=args.max_side, iters=args.iters, seed=args.seed,
                       progress=False, **option_overrides(FgbgOptions, args.set))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for clip in make_clips(tool, data, Path(work), args.clips):
            rows.append(evaluate_clip(tool, clip, opts, not args.no_baselines))
            row = rows[-1]
            print(f"{row['clip']}: hole {row['hole']:.2f} dB, rest {row['rest']:.2f} dB, cover {row['cover']:.3f}, "
                  f"{row['seconds']:.1f} s", flush=True)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
