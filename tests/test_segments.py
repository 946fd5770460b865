"""Long clips in segments: the plan, the streamed reading, the on-disk store, the
blending across seams with the camera path chained, and fgbg over segments."""
import numpy as np
import pytest
import torch

import ddip_video.segments as segments
from ddip_video.analysis.cuts import thumbnails
from ddip_video.segments import FrameRange, FrameStore, SeamBlender, plan_segments, read_segments, read_thumbnails
from ddip_video.tasks.fgbg.options import FgbgOptions
from ddip_video.tasks.fgbg.separate import segment_iters, separate_segments
from ddip_video.video import probe, read_video


@pytest.mark.parametrize("count, cuts", [(10, []), (150, []), (151, []), (280, []), (281, []), (300, []),
                                          (400, []), (1700, []), (3000, []), (400, [120, 130])])
def test_plan_covers_each_shot_with_overlapping_segments_of_at_most_the_length(count, cuts):
    plan = plan_segments(count, cuts, length=150, overlap=20)
    shots = [0, *cuts, count]
    for shot, (a, b) in enumerate(zip(shots, shots[1:])):
        own = [s for s in plan if s.shot == shot]
        assert own[0].first == a and own[-1].end == b and own[0].overlap == 0
        for before, after in zip(own, own[1:]):
            assert before.end - after.first == after.overlap == 20
        assert all(s.length <= 150 for s in own)
        assert len(own) == max(1, -(-(b - a - 20) // 130))  # as few as the length allows
        assert all(s.length == 150 for s in own[:-2])  # full segments, then the last two share the rest
        assert abs(own[-1].length - own[-2].length) <= 1 if len(own) > 1 else own[0].length == b - a
        assert all(s.length >= (150 + 20) // 2 for s in own) or len(own) == 1
    assert [s.index for s in plan] == list(range(len(plan)))
    if count <= 150 and not cuts:
        assert len(plan) == 1


def test_streamed_segments_and_thumbnails_are_the_frames_read_whole(sample_clip):
    whole, info = read_video(sample_clip, max_side=96)
    size = (whole.shape[-1], whole.shape[-2])
    plan = plan_segments(info.num_frames, [17], length=9, overlap=3)
    seen = [(s.first, s.end) for s, frames in read_segments(sample_clip, plan, size)
            if torch.equal(frames, whole[s.first:s.end])]
    assert seen == [(s.first, s.end) for s in plan]
    assert np.array_equal(read_thumbnails(sample_clip, info.num_frames, size), thumbnails(whole))


def test_frame_store_keeps_frames_on_disk_in_chunks(tmp_path):
    values = torch.rand(11, 1, 6, 8)
    store = FrameStore(tmp_path / "s", "masks")
    for a, b in [(0, 4), (4, 5), (5, 11)]:
        store.append(values[a:b])
    assert len(store) == 11 and store.shape == (11, 1, 6, 8) and len(list((tmp_path / "s").iterdir())) == 3
    assert torch.allclose(store[:], values, atol=1e-3)  # float16
    assert torch.allclose(store[-1], values[10], atol=1e-3) and torch.allclose(store[2:7], values[2:7], atol=1e-3)
    with pytest.raises(IndexError):
        store[11]


def test_frame_range_reads_a_part_of_a_store_exactly_and_inverted(tmp_path):
    values = torch.rand(9, 3, 4, 5)
    store = FrameStore(tmp_path / "s", "frames", dtype=np.float32)
    store.append(values[:5])
    store.append(values[5:])
    frames = FrameRange(store)
    assert frames.shape == (9, 3, 4, 5) and torch.equal(frames[:], values)  # float32: exact
    part = frames.part(3, 8)
    assert len(part) == 5 and torch.equal(part[1:3], values[4:6]) and torch.equal(part[-1], values[7])
    assert torch.equal(part.part(2)[:], values[5:8]) and part.part(4, 2)[:].shape == (0, 3, 4, 5)
    assert torch.equal(part.invert()[0], 1.0 - values[3]) and torch.equal(part.invert().invert()[0], values[3])
    assert torch.equal(torch.stack(list(FrameRange(values, 2, 4))), values[2:4])  # a tensor too
    with pytest.raises(IndexError):
        part[5]


def translation(x: float) -> np.ndarray:
    return np.array([[1.0, 0, x], [0, 1, 0], [0, 0, 1]])


def test_seams_are_blended_linearly_and_the_camera_path_chained():
    count, plan = 30, plan_segments(30, [], length=12, overlap=4)
    to_first = np.stack([translation(2.0 * t + 0.1 * t * t) for t in range(count)])  # the true path
    got: dict[str, list] = {"value": []}
    blender = SeamBlender(plan, lambda name, value: got[name].append(value))
    for s in plan:
        # each segment sees its frames' path to its own first frame, and a constant of its own
        local = np.linalg.inv(to_first[s.first]) @ to_first[s.first:s.end]
        blender.add(s, {"value": torch.full((s.length, 1), float(s.index))}, local)
    value = torch.cat(got["value"])[:, 0]
    assert len(value) == count
    assert np.allclose(blender.camera_path(), to_first)
    second = plan[1]
    ramp = value[second.first:second.first + second.overlap]
    assert torch.allclose(ramp, torch.tensor([0.2, 0.4, 0.6, 0.8]))  # from segment 0's value to segment 1's
    assert torch.all(value[plan[0].first:second.first] == 0)


def test_the_blender_holds_the_overlap_alone():
    # a slice of the segment's results would keep all of them alive until the next
    # segment: with long clips, a segment's layers more than the peak needs
    plan = plan_segments(30, [], length=12, overlap=4)
    blender = SeamBlender(plan, lambda name, value: None)
    blender.add(plan[0], {"value": torch.rand(plan[0].length, 3, 8, 8)}, np.stack([np.eye(3)] * plan[0].length))
    held = blender.tail["value"]
    assert held.shape == (4, 3, 8, 8) and held.untyped_storage().nbytes() == held.numel() * held.element_size()


def test_a_long_shots_steps_grow_in_proportion_to_its_frames():
    """A shot of one segment runs the full schedule; a longer one's segments, the
    first (cold) as the later ones, steps in proportion to their length: the steps a
    frame are the same at 300 frames (segments of 150, 95 and 95) as at 1700 (11 of
    150, 2 of 145)."""
    opts = FgbgOptions(iters=300)
    assert [segment_iters(opts, plan_segments(150), s) for s in plan_segments(150)] == [300]
    with_cut = plan_segments(400, [100])
    assert [segment_iters(opts, with_cut, s) for s in with_cut] == [300, 60, 38, 38]
    per_frame = []
    for frames in (300, 1700):
        plan = plan_segments(frames)
        steps = [segment_iters(opts, plan, s) for s in plan]
        assert steps == [round(opts.segment_iters * opts.iters * s.length / 150) for s in plan]
        per_frame.append(sum(steps) / frames)
    assert abs(per_frame[0] / per_frame[1] - 1) < 0.1


def test_fgbg_over_segments_keeps_length_and_is_the_same_from_disk(sample_clip, tmp_path):
    frames, info = read_video(sample_clip, max_side=96)
    plan = plan_segments(info.num_frames, [], length=14, overlap=4)
    assert len(plan) == 3
    opts = FgbgOptions(device="cpu", max_side=64, iters=8, eval_every=4, window=4, progress=False)

    def run(store):
        source = ((s, frames[s.first:s.end]) for s in plan)
        return separate_segments(source, plan, opts, store=store)
    memory, disk = run(None), run(tmp_path / "store")
    assert memory.masks.shape == (30, 1, 36, 64) and disk.masks.shape == (30, 1, 36, 64)
    assert torch.allclose(disk.masks[:], memory.masks, atol=1e-3)
    assert torch.allclose(disk.background[:], memory.background, atol=1e-3)
    assert memory.segments == 3 and memory.cuts == []
    assert memory.iterations == sum(segment_iters(opts, plan, s) for s in plan)
    assert memory.hints.homographies.shape == (30, 3, 3) and np.allclose(memory.hints.homographies[0], np.eye(3))
    assert np.array_equal(np.stack(list(disk.hints.fg_mask)), memory.hints.fg_mask)


def test_fgbg_cli_on_a_clip_longer_than_a_segment(sample_clip, tmp_path, monkeypatch, capsys):
    from ddip_video.tasks.fgbg.outputs import run_fgbg

    monkeypatch.setattr(segments, "SEGMENT_FRAMES", 14)
    monkeypatch.setattr(segments, "SEGMENT_OVERLAP", 4)
    opts = FgbgOptions(device="cpu", max_side=64, iters=6, eval_every=3, window=4, mask_png=True)
    result = run_fgbg(sample_clip, tmp_path / "out", opts)
    bars = capsys.readouterr().err
    assert "fgbg: segments" in bars and "fgbg segment 3/3: motion hints" in bars  # one bar over all segments
    info = probe(sample_clip)
    assert result.separation.segments == 3 and result.num_frames == info.num_frames
    assert len(list((tmp_path / "out" / "masks").glob("*.png"))) == info.num_frames
    for name in ("background.mp4", "mask.mp4", "foreground.mp4"):
        out = probe(tmp_path / "out" / name)
        assert (out.num_frames, out.width, out.height, out.fps) == (info.num_frames, info.width, info.height,
                                                                    info.fps)
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []
