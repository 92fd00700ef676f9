"""Chunk plans: Wan's 4a+1 / 4m+1 alignment, exact totals, latent bookkeeping."""

import pytest

from rtv.sampling.chunk_plan import TEMPORAL_STRIDE, plan_chunks


@pytest.mark.parametrize(("total", "chunk", "overlap"), [(81, 33, 9), (241, 81, 17), (33, 33, 5), (17, 9, 5),
                                                         (101, 21, 1), (481, 81, 21)])
def test_chunks_tile_the_video_exactly_and_latents_line_up(total, chunk, overlap):
    plan = plan_chunks(total, chunk, overlap, seed=7)
    a, m = plan.chunk_latents - 1, plan.overlap_latents
    assert plan.total_frames >= total and (plan.total_frames - 1) % TEMPORAL_STRIDE == 0
    assert plan.chunks[-1].first_frame + plan.chunk_frames == plan.total_frames
    new_latents = sum(c.new_latents[1] - c.new_latents[0] for c in plan.chunks)
    assert new_latents == plan.total_latents
    for prev, cur in zip(plan.chunks, plan.chunks[1:]):
        assert cur.first_latent - prev.first_latent == a - m
        assert cur.first_frame - prev.first_frame == TEMPORAL_STRIDE * (a - m)
        assert cur.pinned_latents == m and cur.new_latents == (m + 1, a + 1)
        assert cur.seed == prev.seed + 1


def test_lengths_are_snapped_with_a_message_saying_what_changed():
    plan = plan_chunks(100, 30, 8)
    assert plan.chunk_frames == 29 and plan.overlap_frames == 9
    text = plan.describe()
    assert "chunk_frames 30 -> 29" in text and "overlap_frames 8 -> 9" in text and "total_frames 100 ->" in text


def test_overlap_is_kept_below_the_chunk_length():
    plan = plan_chunks(41, 9, 9)
    assert plan.overlap_frames == 5


def test_single_chunk_when_total_fits():
    plan = plan_chunks(20, 33, 9)
    assert len(plan.chunks) == 1 and plan.total_frames == 33


def test_nonsense_lengths_raise():
    with pytest.raises(ValueError, match="at least 1"):
        plan_chunks(0, 33, 9)
