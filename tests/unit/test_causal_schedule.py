"""Causal few-step schedule (Self-Forcing's warped timesteps) and the chunk layout of a causal video."""

import pytest

from rtv.sampling.causal_schedule import (
    TRAINED_CONTEXT_LATENTS,
    cache_capacity,
    causal_sigmas,
    parse_timesteps,
    pixel_frames,
    plan_causal_chunks,
)


def test_self_forcing_timesteps_warp_to_its_sigmas():
    # FlowMatchScheduler(shift=5, extra_one_step=True), warp_denoising_step: [1000, 937.5, 833.3, 625]
    sigmas = causal_sigmas("1000,750,500,250", 5.0)
    assert sigmas == pytest.approx([1.0, 0.9375, 2.5 / 3, 0.625, 0.0])


def test_shift_one_is_linear_and_spaces_and_semicolons_are_accepted():
    assert causal_sigmas(" 1000 ; 500 ", 1.0) == pytest.approx([1.0, 0.5, 0.0])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("1000,abc", "cannot read 'abc'"),
        ("1000,1200", "outside"),
        ("0", "outside"),
        ("500,750", "decrease"),
        ("500,500", "decrease"),
    ],
)
def test_bad_timesteps_say_what_to_change(text, says):
    with pytest.raises(ValueError, match=says) as err:
        parse_timesteps(text)
    assert "1000,750,500,250" in str(err.value)


def test_shift_must_be_positive():
    with pytest.raises(ValueError, match="shift"):
        causal_sigmas("1000", 0.0)


def test_81_frames_are_7_chunks_of_3_latents_and_frames_add_up():
    plan = plan_causal_chunks(81, 3, seed=10)
    assert plan.total_latents == 21 and len(plan.chunks) == 7 and plan.adjustments == ()
    assert [c.first_latent for c in plan.chunks] == [0, 3, 6, 9, 12, 15, 18]
    assert [c.seed for c in plan.chunks] == list(range(10, 17))
    assert [c.first_frame for c in plan.chunks] == [0, 9, 21, 33, 45, 57, 69]
    assert [c.frames for c in plan.chunks] == [9] + [12] * 6
    assert sum(c.frames for c in plan.chunks) == 81
    assert not plan.rolling and plan.cache_frames == 21


def test_uneven_last_chunk_and_totals_round_up_to_4k_plus_1():
    plan = plan_causal_chunks(30, 3)
    assert plan.total_frames == 33 and plan.total_latents == 9
    assert "total_frames 30 -> 33" in plan.describe()
    plan = plan_causal_chunks(41, 4)
    assert [c.latents for c in plan.chunks] == [4, 4, 3]
    assert pixel_frames(8, 3) == (29, 12)
    assert plan_causal_chunks(1, 3).total_latents == 1


def test_rolling_window_capacity_and_validation():
    plan = plan_causal_chunks(241, 3, kv_window_frames=21, sink_frames=3)
    assert plan.rolling and plan.cache_frames == 21 and plan.sink_frames == 3
    assert "rolling KV cache of 21" in plan.describe()
    assert cache_capacity(30, 0, 3, total_latents=21) == 21  # a window longer than the video keeps everything
    with pytest.raises(ValueError, match="use at least 5"):
        plan_causal_chunks(81, 3, kv_window_frames=4, sink_frames=2)
    with pytest.raises(ValueError, match="sink_frames"):
        cache_capacity(21, -1, 3, 21)


def test_keeping_every_frame_of_a_long_video_is_flagged():
    plan = plan_causal_chunks(4 * 40 + 1, 3)
    assert plan.total_latents > TRAINED_CONTEXT_LATENTS
    assert any("memory grows with length" in a for a in plan.adjustments)


@pytest.mark.parametrize(("total", "chunk"), [(0, 3), (81, 0)])
def test_sizes_below_one_are_rejected(total, chunk):
    with pytest.raises(ValueError):
        plan_causal_chunks(total, chunk)
