"""Temporal metrics (issue 7 item 3): warp error per pair, the MAWE-style score, seam jumps against
the within-chunk baseline, flicker; batching and working resolution do not change the answer."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from synthetic_scenes import SinusoidTexture

from rtv.kernels.temporal_metrics import (
    MAWE_C,
    MIN_MOTION_PX,
    PairMeasures,
    baseline_pairs,
    mawe_score,
    mean_luma,
    measure_pairs,
    seam_windows,
    summarize,
)

SIZE = 96
VELOCITY = (2.0, 1.0)


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@functools.cache
def pan(frames: int = 10, size: int = SIZE) -> torch.Tensor:
    texture = SinusoidTexture.random(4)
    return torch.stack(
        [texture.render_shifted((t * VELOCITY[0], t * VELOCITY[1]), size) for t in range(frames)]
    )


def test_steady_pan_is_consistent_and_its_motion_is_measured() -> None:
    measures = measure_pairs(pan())
    speed = math.hypot(*VELOCITY)
    assert len(measures.warp_error) == 9
    assert all(m == pytest.approx(speed, abs=0.1) for m in measures.motion_px)
    assert max(measures.motion_change_px) < 0.1
    assert max(measures.flicker) < 0.5
    assert max(measures.warp_error) < 3.0  # resampling only (0..255 scale, squared)


def test_a_brightness_pop_and_a_jump_show_up_at_their_pair() -> None:
    """From frame 6 on the pan is 5 px further right and 10 % brighter."""
    video = pan().clone()
    texture = SinusoidTexture.random(4)
    later = torch.stack(
        [texture.render_shifted((t * VELOCITY[0] + 5.0, t * VELOCITY[1]), SIZE) for t in range(6, 10)]
    )
    video[6:] = (later * 1.1).clamp(0, 1)
    measures = measure_pairs(video)
    luma = mean_luma(video)
    assert measures.flicker[5] == pytest.approx(float(luma[6] - luma[5]), abs=1e-3)
    assert max(range(9), key=lambda i: measures.flicker[i]) == 5
    assert max(range(9), key=lambda i: measures.warp_error[i]) == 5
    assert measures.motion_change_px[5] == pytest.approx(5.0, abs=0.5)  # the jump
    assert measures.motion_change_px[6] == pytest.approx(5.0, abs=0.5)  # and back to the steady pan
    assert measures.warp_error[5] > 20 * measures.warp_error[2]


def test_batching_and_device_loop_do_not_change_the_numbers() -> None:
    one = measure_pairs(pan(), pairs_per_batch=1)
    many = measure_pairs(pan(), pairs_per_batch=4)
    assert one.warp_error == pytest.approx(many.warp_error, rel=1e-4, abs=1e-4)
    assert one.motion_change_px == pytest.approx(many.motion_change_px, rel=1e-4, abs=1e-4)
    calls = []
    measure_pairs(pan(), pairs_per_batch=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 9), (8, 9), (9, 9)]


def test_working_resolution_keeps_motion_in_full_size_pixels() -> None:
    full = measure_pairs(pan(6, 128))
    half = measure_pairs(pan(6, 128), max_side=64)
    assert half.motion_px == pytest.approx(full.motion_px, abs=0.15)


def test_mawe_is_warp_error_over_scaled_motion_with_a_floor() -> None:
    measures = PairMeasures(
        warp_error=[9.5, 19.0], motion_px=[2.0, 0.1], motion_change_px=[0, 0], flicker=[0, 0]
    )
    expected = (9.5 / (MAWE_C * 2.0) + 19.0 / (MAWE_C * MIN_MOTION_PX)) / 2
    assert mawe_score(measures) == pytest.approx(expected)
    assert mawe_score(PairMeasures([], [], [], [])) is None


def test_seam_windows_cover_the_overlap_transition() -> None:
    # 241 frames in chunks of 81 overlapping by 17 (the streaming workflow): chunk k starts at 64 k.
    assert seam_windows(241, 81, 17) == [(81, 63, 80), (145, 127, 144), (209, 191, 208)]
    assert seam_windows(20, 10, 0) == [(10, 9, 9)]
    windows = seam_windows(29, 13, 5)
    inside = baseline_pairs(28, windows, guard=5)
    assert all(not (first - 5 <= i <= last + 5) for _, first, last in windows for i in inside)


def test_summary_reports_seams_against_the_inside_of_the_chunks() -> None:
    """Chunks of 17 overlapping by 5 (stride 12): seams at frames 17 and 29, windows [11, 16] and
    [23, 28]; a pop at pair 16 is seam 17's, and the baseline is the steady inside."""
    errors, changes = [1.0] * 40, [0.1] * 40
    errors[16], changes[16] = 30.0, 4.0
    measures = PairMeasures(errors, [2.0] * 40, changes, [0.2] * 40)
    report = summarize(measures, chunk_frames=17, overlap_frames=5)
    first, second = report["seams"]
    assert (first["frame"], first["pairs"], second["frame"], second["pairs"]) == (17, [11, 16], 29, [23, 28])
    assert first["warp_error"] == 30.0 and first["warp_error_ratio"] == 30.0
    assert first["motion_change_px"] == 4.0 and first["motion_change_px_ratio"] == 16.0  # floor 0.25 px
    assert second["warp_error_ratio"] == 1.0
    assert report["within_chunk_warp_error"] == 1.0 and report["seam_warp_error_ratio_max"] == 30.0
    assert summarize(measures)["seams"] == []
    assert report["frames"] == 41 and len(report["warp_error"]) == 40
