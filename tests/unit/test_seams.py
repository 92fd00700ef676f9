"""Seam alignment (issue 7 item 2): two clips whose overlap disagrees by a known shift and colour
gain are joined so that the seam is as consistent as the inside of the clips, better than the plain
crossfade (KJNodes ``ImageBatchExtendWithOverlap``); a jump inside a joined video is pulled back and
released; colour statistics transfer; the pieces' bookkeeping (lengths, untouched frames).

Scenes: ``synthetic_scenes.SinusoidTexture`` panning at a constant velocity, rendered analytically
at every frame (128 x 128 to keep the module fast on two shared cores).
"""

from __future__ import annotations

import functools
import statistics

import pytest
import torch
from synthetic_scenes import SinusoidTexture

from rtv.kernels.seams import (
    HOLD,
    SeamSettings,
    align_joined_video,
    blend_weights,
    color_statistics,
    join_back_to_back,
    join_clips,
    joined_seams,
    lab_to_srgb,
    morph_pairs,
    release_weights,
    split_back_to_back,
    srgb_to_lab,
    transfer_color,
)
from rtv.kernels.temporal_metrics import measure_pairs, summarize

SIZE = 128
VELOCITY = (1.5, -0.75)  # px per frame, the clips' own motion
SHIFT = (8.0, 0.0)  # the second clip's misalignment over the overlap
GAIN = 1.10  # and its colour gain
CLIP_FRAMES, OVERLAP = 12, 5
SEAM_BOUND = 1.25  # seam pairs vs the clips' own pairs (issue 7 Must-show), default mean/std colour
# Lab statistics transfer cannot undo an RGB gain exactly (L is a cube root): measured 1.31x.
SEAM_BOUND_LAB = 1.4
HOLD_BOUND = 1.25
# A fading colour correction spreads the gain over the release frames: each pair then changes by
# about gain * sigma / correction_frames, which the warp error sees (measured ~1.45x at 24 frames).
RELEASE_BOUND = 1.75


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def render(texture: SinusoidTexture, t: float, shift=(0.0, 0.0), gain: float = 1.0) -> torch.Tensor:
    offset = (t * VELOCITY[0] + shift[0], t * VELOCITY[1] + shift[1])
    return (texture.render_shifted(offset, SIZE) * gain).clamp(0.0, 1.0)


@functools.cache
def clips(following_frames: int = CLIP_FRAMES) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip A (frames 0..11) and clip B (frames 7..) shifted by 8 px and 10 % brighter."""
    texture = SinusoidTexture.random(3)
    a = torch.stack([render(texture, t) for t in range(CLIP_FRAMES)])
    start = CLIP_FRAMES - OVERLAP
    b = torch.stack([render(texture, t, SHIFT, GAIN) for t in range(start, start + following_frames)])
    return a, b


@functools.cache
def within_clip_error() -> float:
    a, b = clips()
    return statistics.fmean(measure_pairs(a).warp_error + measure_pairs(b).warp_error)


def seam_pairs(errors: list[float]) -> list[float]:
    """Pairs from the last frame before the overlap to the first frame after it."""
    return errors[CLIP_FRAMES - OVERLAP - 1 : CLIP_FRAMES]


@functools.cache
def joined(method: str, color: str, correction_frames: int = 24) -> tuple[torch.Tensor, list[float]]:
    a, b = clips(CLIP_FRAMES + 20)
    settings = SeamSettings(method=method, color_correction=color, correction_frames=correction_frames)
    out, _ = join_clips(a, b, OVERLAP, settings)
    return out, measure_pairs(out).warp_error


@pytest.mark.parametrize(("color", "bound"), [("mean_std", SEAM_BOUND), ("lab", SEAM_BOUND_LAB)])
def test_seam_with_8px_shift_and_10pct_gain_is_as_consistent_as_the_clips(color: str, bound: float) -> None:
    """Issue 7 Must-show: the warp error across the seam is within 1.25x of the within-clip error,
    and lower than a plain crossfade's."""
    _, errors = joined("flow_blend", color)
    _, crossfade = joined("crossfade", color)
    within = within_clip_error()
    ours, theirs = max(seam_pairs(errors)), max(seam_pairs(crossfade))
    print(
        f"{color}: within-clip {within:.3f}, seam max {ours:.3f} ({ours / within:.2f}x), crossfade {theirs:.3f}"
    )
    assert ours <= bound * within
    assert ours < theirs / 10


def test_colour_release_and_hold() -> None:
    """After the overlap the colour correction fades over correction_frames (each pair changes a
    little) or is held (the second clip keeps the first clip's colours)."""
    within = within_clip_error()
    released = joined("flow_blend", "mean_std", 24)[1][CLIP_FRAMES : CLIP_FRAMES + 24]
    held = joined("flow_blend", "mean_std", HOLD)[1][CLIP_FRAMES:]
    print(f"release max {max(released) / within:.2f}x, hold max {max(held) / within:.2f}x")
    assert max(released) <= RELEASE_BOUND * within
    assert max(held) <= HOLD_BOUND * within


def test_without_colour_correction_the_gain_lands_in_the_overlap() -> None:
    """Flow alignment alone removes the ghosting; the colour step is then spread over the overlap."""
    _, plain = joined("crossfade", "none")
    _, aligned = joined("flow_blend", "none")
    assert max(seam_pairs(aligned)) < max(seam_pairs(plain)) / 3


def test_lengths_and_untouched_frames() -> None:
    a, b = clips(CLIP_FRAMES + 20)
    out, report = join_clips(a, b, OVERLAP, SeamSettings(correction_frames=6))
    assert out.shape == (a.shape[0] + b.shape[0] - OVERLAP, 3, SIZE, SIZE)
    assert torch.equal(out[: CLIP_FRAMES - OVERLAP], a[:-OVERLAP])
    assert torch.equal(out[CLIP_FRAMES + 6 :], b[OVERLAP + 6 :])
    assert not torch.equal(out[CLIP_FRAMES], b[OVERLAP])  # colour correction still fading there
    assert report.frame == CLIP_FRAMES
    assert report.jump_px == pytest.approx(8.0, abs=0.3)
    assert report.color_shift[0] == pytest.approx(-0.05, abs=0.01)  # mean of A minus mean of B


def test_crossfade_with_linear_weights_is_the_kjnodes_linear_blend() -> None:
    a, b = clips()
    out, _ = join_clips(
        a, b, OVERLAP, SeamSettings(method="crossfade", color_correction="none", curve="linear")
    )
    for i in range(OVERLAP):
        t = (i + 1) / (OVERLAP + 1)
        expected = a[CLIP_FRAMES - OVERLAP + i] * (1 - t) + b[i] * t
        assert torch.allclose(out[CLIP_FRAMES - OVERLAP + i], expected, atol=1e-6)
    cut, _ = join_clips(a, b, OVERLAP, SeamSettings(method="none", color_correction="none"))
    assert torch.equal(cut, torch.cat((a[:-OVERLAP], b)))


def test_strength_zero_is_a_plain_crossfade() -> None:
    a, b = clips()
    zero, _ = join_clips(a, b, OVERLAP, SeamSettings(strength=0.0))
    plain, _ = join_clips(a, b, OVERLAP, SeamSettings(method="crossfade", color_correction="none"))
    assert torch.equal(zero, plain)


def test_weights_are_eased_and_strictly_inside() -> None:
    w = blend_weights(5)
    assert torch.all((w > 0) & (w < 1)) and torch.all(w[1:] > w[:-1])
    assert torch.allclose(w + w.flip(0), torch.ones(5))  # symmetric about the middle
    assert torch.allclose(release_weights(5), 1 - w)
    assert blend_weights(3, "linear").tolist() == pytest.approx([0.25, 0.5, 0.75])


def test_unrelated_renditions_fall_back_to_the_crossfade() -> None:
    a = SinusoidTexture.random(5).render_shifted((0.0, 0.0), 96).unsqueeze(0)
    b = SinusoidTexture.random(77).render_shifted((0.0, 0.0), 96).unsqueeze(0)
    from rtv.kernels.flow import bidirectional_flow

    flow_ab, flow_ba = bidirectional_flow(a, b)
    w = torch.tensor([0.3])
    assert torch.allclose(morph_pairs(a, b, w, flow_ab, flow_ba), 0.7 * a + 0.3 * b, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------------


def test_lab_round_trip_and_reference_colours() -> None:
    rgb = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=2e-4)
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    assert srgb_to_lab(white).flatten().tolist() == pytest.approx([100.0, 0.0, 0.0], abs=0.05)
    assert srgb_to_lab(black).flatten().tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-3)


@pytest.mark.parametrize("space", ["mean_std", "lab"])
def test_transfer_matches_statistics_and_amount_zero_is_identity(space: str) -> None:
    texture = SinusoidTexture.random(9)
    reference = texture.render_shifted((0.0, 0.0), 64).unsqueeze(0)
    brighter = (reference * GAIN).clamp(0, 1)
    source, target = color_statistics(brighter, space), color_statistics(reference, space)
    out = transfer_color(torch.cat((brighter, brighter)), source, target, torch.tensor([1.0, 0.0]))
    matched = color_statistics(out[:1], space)
    assert torch.allclose(matched.mean, target.mean, atol=0.01 * float(target.std.max()))
    assert torch.allclose(matched.std, target.std, rtol=0.02)
    assert torch.equal(out[1], brighter[0])


# --------------------------------------------------------------------------------------------------
# A seam inside a joined video
# --------------------------------------------------------------------------------------------------

JOINED_CHUNK, JOINED_OVERLAP = 13, 5  # seams at frames 13 and 21
JUMP = (6.0, -2.0)
JUMP_GAIN = 0.08


@functools.cache
def jumpy_video() -> torch.Tensor:
    """29 frames panning steadily; each new chunk jumps by (6, -2) px and gets 8 % brighter."""
    texture = SinusoidTexture.random(3)
    seams = joined_seams(29, JOINED_CHUNK, JOINED_OVERLAP)
    frames = []
    for t in range(29):
        k = sum(t >= s for s in seams)
        frames.append(render(texture, t, (JUMP[0] * k, JUMP[1] * k), 1.0 + JUMP_GAIN * k))
    return torch.stack(frames)


def test_joined_seams_are_where_each_chunk_starts_showing_new_frames() -> None:
    assert joined_seams(29, 13, 5) == [13, 21]
    assert joined_seams(241, 81, 17) == [81, 145, 209]
    assert joined_seams(81, 81, 17) == []
    with pytest.raises(ValueError, match="overlap_frames < chunk_frames"):
        joined_seams(100, 9, 9)


def test_joined_seam_jump_and_colour_are_pulled_back_and_released() -> None:
    video = jumpy_video()
    raw = summarize(measure_pairs(video), JOINED_CHUNK, JOINED_OVERLAP)
    settings = SeamSettings(correction_frames=8)
    aligned_video, reports = align_joined_video(video, JOINED_CHUNK, JOINED_OVERLAP, settings)
    aligned = summarize(measure_pairs(aligned_video), JOINED_CHUNK, JOINED_OVERLAP)
    assert [r.frame for r in reports] == [13, 21]
    assert all(r.jump_px == pytest.approx(6.32, abs=0.3) for r in reports)
    for before, after in zip(raw["seams"], aligned["seams"]):
        print(
            f"seam {before['frame']}: warp error {before['warp_error']:.1f} -> {after['warp_error']:.1f}, "
            f"jump {before['motion_change_px']:.2f} -> {after['motion_change_px']:.2f} px, "
            f"flicker {before['flicker']:.2f} -> {after['flicker']:.2f}"
        )
        assert after["warp_error"] < before["warp_error"] / 10
        assert after["motion_change_px"] < before["motion_change_px"] / 3
        assert after["flicker"] < before["flicker"] / 3
    assert torch.equal(aligned_video[:13], video[:13])  # the first chunk is never touched
    assert torch.equal(aligned_video[13 + 8 : 21], video[13 + 8 : 21])  # released before the next seam


def test_a_cut_is_not_warped() -> None:
    """A seam between unrelated content has no reliable flow: colour is matched, nothing is moved."""
    first = SinusoidTexture.random(1).render_shifted((0.0, 0.0), 64)
    second = SinusoidTexture.random(2).render_shifted((0.0, 0.0), 64)
    video = torch.stack([first] * 6 + [second] * 6)
    out, (report,) = align_joined_video(video, 6, 0, SeamSettings(color_correction="none"))
    assert report.note.startswith("flow unreliable") and report.jump_px == 0.0
    assert torch.equal(out, video)


# --------------------------------------------------------------------------------------------------
# Chunks laid end to end
# --------------------------------------------------------------------------------------------------


def test_back_to_back_chunks_join_like_successive_pairs() -> None:
    a, b = clips()
    c = b.flip(0)[: CLIP_FRAMES - 2]  # a shorter last chunk is fine
    settings = SeamSettings(method="crossfade", correction_frames=4)
    out, reports = join_back_to_back(torch.cat((a, b, c)), CLIP_FRAMES, OVERLAP, settings)
    first, _ = join_clips(a, b, OVERLAP, settings)
    expected, _ = join_clips(first, c, OVERLAP, settings)
    assert torch.equal(out, expected)
    assert [r.frame for r in reports] == [CLIP_FRAMES, 2 * CLIP_FRAMES - OVERLAP]


def test_back_to_back_layout_errors_say_what_to_change() -> None:
    with pytest.raises(ValueError, match="Check chunk_frames"):
        split_back_to_back(torch.zeros(14, 3, 4, 4), 12, 5)
    a, b = clips()
    with pytest.raises(ValueError, match="same frame size"):
        join_clips(a, b[..., :64], OVERLAP, SeamSettings())
    with pytest.raises(ValueError, match="shorter clip"):
        join_clips(a, b[:3], OVERLAP, SeamSettings())
