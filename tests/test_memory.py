"""The memory check that refuses, before any work, a clip the machine cannot hold
(instead of the process being killed without a word), and its figures."""
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from ddip_video.errors import InputError
from ddip_video import runtime
from ddip_video.runtime import LOADED_BYTES, MemoryNeed, available_memory, cgroup_room, check_memory
from ddip_video.tasks.fgbg import separate as fgbg
from ddip_video.tasks.transition import unmix as transition
from ddip_video.tasks.transition.options import TransitionOptions
from ddip_video.video import VideoInfo

GIB = 2**30


def clip_info(num_frames: int, width: int = 854, height: int = 480) -> VideoInfo:
    return VideoInfo(Path("clip.mp4"), width, height, Fraction(24), num_frames, 0, False, False)


def test_check_memory_refuses_only_what_does_not_fit(monkeypatch):
    need = MemoryNeed(base=1 * GIB, per_frame=10 * 2**20)  # 10 MiB a frame
    check_memory(clip_info(300), need, available=4 * GIB)  # 3.9 GiB: fits
    monkeypatch.setattr(runtime, "available_memory", lambda: None)
    check_memory(clip_info(10**6), need)  # unknown (not Linux): not refused
    with pytest.raises(InputError) as error:
        check_memory(clip_info(500), need, available=4 * GIB)  # 5.9 GiB
    assert str(error.value) == ("clip.mp4: its 500 frames need about 5.9 GiB of memory and 4.0 GiB is free; "
                                "split the clip into parts of at most 307 frames")


def test_a_task_that_streams_segments_is_refused_only_where_a_segment_does_not_fit():
    need = MemoryNeed(base=1 * GIB, per_frame=10 * 2**20)
    check_memory(clip_info(5000), need, available=4 * GIB, frames_held=150)  # 2.5 GiB at a time: fits
    with pytest.raises(InputError) as error:
        check_memory(clip_info(5000), need, available=2 * GIB, frames_held=150)
    assert str(error.value) == ("clip.mp4: a segment of 150 of its frames needs about 2.5 GiB of memory and "
                                "2.0 GiB is free")


def test_transition_is_refused_only_where_its_model_frames_do_not_fit():
    need = transition.memory_need(clip_info(5000), TransitionOptions(max_side=160), torch.device("cpu"))
    text = "the {held} frames its model may run on (lower --max-side) need"
    check_memory(clip_info(5000), need, available=1 * GIB, frames_held=150, held_text=text)  # 0.56 GiB
    with pytest.raises(InputError) as error:
        check_memory(clip_info(5000), need, available=0.5 * GIB, frames_held=150, held_text=text)
    assert str(error.value) == ("clip.mp4: the 150 frames its model may run on (lower --max-side) need about 0.6 GiB "
                                "of memory and 0.5 GiB is free")


def test_the_tasks_needs_grow_with_the_frames_and_the_working_size():
    # 52 bytes a pixel at the hints' 427x240, whatever the device or --max-side
    # (benchmarks/notes/memory.md)
    assert fgbg.memory_need(clip_info(1)) == MemoryNeed(LOADED_BYTES, 52 * 427 * 240)
    assert fgbg.memory_need(clip_info(1, 320, 240)) == MemoryNeed(LOADED_BYTES, 52 * 320 * 240)
    cpu = transition.memory_need(clip_info(1), TransitionOptions(max_side=160), torch.device("cpu"))
    assert cpu == MemoryNeed(LOADED_BYTES, 156 * 160 * 90)
    gpu = transition.memory_need(clip_info(1), TransitionOptions(max_side=427), torch.device("cuda"))
    assert gpu == MemoryNeed(LOADED_BYTES, 36 * 427 * 240)


def test_available_memory_is_at_most_the_kernels_figure():
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        pytest.skip("no /proc/meminfo (not Linux): the check is off")
    line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
    free = int(line.split()[1]) * 1024
    assert 0 < available_memory() <= free * 1.1  # memory moves between the two reads


def write_tree(root: Path, files: dict) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cgroup_room_reads_v1_and_v2_limits(tmp_path):
    proc = tmp_path / "cgroup"
    root = tmp_path / "sys"
    proc.write_text("0::/job\n")
    write_tree(root, {"job/memory.max": "8000\n", "job/memory.current": "3000\n",
                      "job/memory.stat": "anon 2000\ninactive_file 500\n"})
    assert cgroup_room(proc, root) == 8000 - (3000 - 500)  # droppable page cache does not count
    (root / "job/memory.max").write_text("max\n")
    assert cgroup_room(proc, root) is None  # no limit
    proc.write_text("12:cpu,cpuacct:/x\n4:memory:/box\n")
    write_tree(root, {"memory/box/memory.limit_in_bytes": "9000\n", "memory/box/memory.usage_in_bytes": "1000\n",
                      "memory/box/memory.stat": "cache 10\ntotal_inactive_file 100\n"})
    assert cgroup_room(proc, root) == 9000 - 900
    (root / "memory/box/memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")  # v1's "no limit"
    assert cgroup_room(proc, root) is None
    proc.write_text("4:memory:/not-visible-here\n")
    assert cgroup_room(proc, root) is None
    assert cgroup_room(tmp_path / "missing", root) is None
