"""The trajectory preview (issue 4, RTV_TrajectoryPreview): frusta geometry, view axes, and a picture
where each move shows up where a user expects it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rtv.kernels.camera import preset_trajectory
from rtv.kernels.trajectory_preview import (
    HEADER_FRACTION,
    MARGIN_FRACTION,
    RAMP,
    VIEWS,
    frustum_frames,
    frustum_points,
    motion_summary,
    nice_step,
    project,
    ramp_colour,
    render_trajectory_preview,
)

WIDTH = 768


def test_colour_ramp_runs_from_the_first_to_the_last_frame_colour():
    assert ramp_colour(0.0) == RAMP[0] and ramp_colour(1.0) == RAMP[-1]
    assert ramp_colour(-1.0) == RAMP[0] and ramp_colour(2.0) == RAMP[-1]


def test_frusta_are_spread_over_the_clip_with_first_and_last_included():
    assert frustum_frames(81, 9) == [0, 10, 20, 30, 40, 50, 60, 70, 80]
    assert frustum_frames(5, 9) == [0, 1, 2, 3, 4]
    assert frustum_frames(81, 1) == [0]
    assert frustum_frames(1, 9) == [0]


def test_identity_camera_frustum_opens_forward_with_the_up_mark_above():
    camera = preset_trajectory("static", 1, intrinsics=(0.5, 0.5, 0.5, 0.5))
    points = frustum_points(camera, 0, depth=2.0)
    torch.testing.assert_close(points[0], torch.zeros(3, dtype=torch.float64))
    corners = points[1:5]
    expected = torch.tensor([[-2, -2, 2], [2, -2, 2], [2, 2, 2], [-2, 2, 2]], dtype=torch.float64)
    torch.testing.assert_close(corners, expected)  # 90 degree fov: half-width = depth
    apex = points[6]
    assert apex[1] < corners[0, 1]  # above the top edge (y is down)


def test_views_put_forward_up_the_page_from_above_and_up_up_the_page_from_the_side():
    forward, up, right = (torch.tensor(v, dtype=torch.float64) for v in ([0, 0, 1], [0, -1, 0], [1, 0, 0]))
    top, side, behind = VIEWS
    assert project(forward, top).tolist() == [0, -1] and project(right, top).tolist() == [1, 0]
    assert project(forward, side).tolist() == [1, 0] and project(up, side).tolist() == [0, -1]
    assert project(right, behind).tolist() == [1, 0] and project(up, behind).tolist() == [0, -1]


def test_grid_steps_are_round_numbers():
    assert nice_step(10.0) == 2.0 and nice_step(3.0) == 0.5 and nice_step(0.08) == 0.01


def test_summary_reports_travel_turn_and_field_of_view():
    assert "path length 1.5 units" in motion_summary(preset_trajectory("pan_left", 81))
    assert "turns 60.0°" in motion_summary(preset_trajectory("roll_cw", 81))
    assert "90° to 53°" in motion_summary(preset_trajectory("zoom_in", 81))


def panel(picture: np.ndarray, index: int) -> np.ndarray:
    """Pixels of panel ``index`` (0 top, 1 side, 2 behind) of a preview ``WIDTH`` wide."""
    header, margin = round(WIDTH * HEADER_FRACTION), round(WIDTH * MARGIN_FRACTION)
    size = (WIDTH - margin * (len(VIEWS) + 1)) // len(VIEWS)
    left, top = margin + index * (size + margin), header + margin
    return picture[top : top + size, left : left + size]


def colour_centre(pixels: np.ndarray, colour) -> tuple[float, float]:
    """Mean (x, y) of the pixels close to ``colour``."""
    mask = (np.abs(pixels.astype(int) - np.array(colour)).sum(-1)) < 40
    assert mask.sum() > 20, f"colour {colour} is not drawn"
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def rendered(preset: str) -> np.ndarray:
    picture = render_trajectory_preview(preset_trajectory(preset, 81), WIDTH)
    assert picture.dtype == torch.float32 and picture.shape[1:] == (WIDTH, 3)
    assert 0 <= float(picture.min()) and float(picture.max()) <= 1
    return (picture * 255).round().byte().numpy()


@pytest.mark.parametrize(
    ("preset", "view", "axis", "sign"),
    [
        ("pan_right", 0, 0, 1),  # top view: the last camera is right of the first
        ("pan_left", 0, 0, -1),
        ("dolly_in", 0, 1, -1),  # top view: forward is up the page
        ("pan_up", 1, 1, -1),  # side view: up is up the page
        ("dolly_in", 1, 0, 1),  # side view: forward is to the right
    ],
)
def test_each_move_goes_where_a_user_expects_in_the_picture(preset, view, axis, sign):
    pixels = panel(rendered(preset), view)
    first, last = colour_centre(pixels, RAMP[0]), colour_centre(pixels, RAMP[-1])
    assert sign * (last[axis] - first[axis]) > 10, (first, last)


def test_a_still_camera_is_drawn_too_and_the_picture_is_not_blank():
    pixels = rendered("static")
    assert pixels.std() > 10
    for index in range(len(VIEWS)):
        colour_centre(panel(pixels, index), RAMP[-1])


def test_roll_turns_the_up_mark_seen_from_behind():
    pixels = panel(rendered("roll_cw"), 2)
    first, last = colour_centre(pixels, RAMP[0]), colour_centre(pixels, RAMP[-1])
    # Clockwise roll: the up mark (the heaviest part of each frustum) swings to the right.
    assert last[0] - first[0] > 5 and math.isfinite(last[1])


def test_sizes_outside_the_range_are_refused_with_the_range():
    with pytest.raises(ValueError, match="between 384 and 4096"):
        render_trajectory_preview(preset_trajectory("static", 5), 100)
