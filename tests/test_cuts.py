"""Hard cuts (ddip_video.analysis.cuts) on real frames."""
import torch

from ddip_video.analysis.cuts import hard_cuts, largest_step_ratio, thumbnails
from ddip_video.video import read_video


def test_hard_cuts_between_real_shots_and_none_within_one(sample_clip, second_clip):
    a = read_video(sample_clip, max_side=160)[0]
    b = read_video(second_clip, max_side=160)[0]
    assert hard_cuts(thumbnails(a)) == [] and hard_cuts(thumbnails(b)) == []
    assert hard_cuts(thumbnails(torch.cat([a[:10], b[10:20], a.flip(-2)[20:30]]))) == [10, 20]
    assert hard_cuts(thumbnails(torch.cat([a[:1], b[1:12]]))) == [1]  # a shot of one frame
    assert hard_cuts(thumbnails(a[:2])) == []  # two frames: no median to stand out from


def test_a_flash_is_no_cut(sample_clip):
    a = read_video(sample_clip, max_side=160)[0][:20].clone()
    a[8] = 1.0  # one white frame, and the shot goes on
    thumbs = thumbnails(a)
    assert largest_step_ratio(thumbs) > 8  # the steps into and out of it stand out
    assert hard_cuts(thumbs) == []
