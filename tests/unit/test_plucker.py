"""Camera trajectories and Plücker embeddings (issue 4, item 1): the math, the layouts, the formats."""

from __future__ import annotations

import json
import math

import pytest
import torch

import rtv.kernels.plucker as plucker_module
from rtv.kernels.camera import (
    CORE_BASE_ANGLE_RAD,
    CORE_BASE_TRANSLATION,
    CORE_POSE_ASPECT,
    PRESETS,
    ZOOM_FOCAL_FACTOR,
    CameraKeyframe,
    CameraTrajectory,
    format_realestate10k,
    keyframes_from_dicts,
    make_pose,
    matrix_to_quaternion,
    opencv_to_opengl,
    opengl_to_opencv,
    orbit_trajectory,
    parse_realestate10k,
    preset_trajectory,
    quaternion_to_matrix,
    rotation_about_y,
    rotation_about_z,
    rotation_from_euler,
    sv3d_orbit_angles,
    sv4d_orbit_angles,
    trajectory_from_keyframes,
)
from rtv.kernels.plucker import (
    pixel_intrinsics,
    plucker_rays,
    trajectory_plucker,
    wan_camera_embedding,
    wan_camera_layout,
)

F64 = torch.float64
EXACT = {"atol": 1e-12, "rtol": 0}


def wobbly_trajectory(frames: int = 9) -> CameraTrajectory:
    """A path with every kind of motion at once: translation, yaw, roll, and a focal change."""
    t = torch.linspace(0, 1, frames, dtype=F64)
    rotations = rotation_from_euler(torch.stack([0.3 * t, 0.8 * torch.sin(3 * t), -0.5 * t], -1))
    positions = torch.stack([torch.sin(2 * t), 0.2 * t, 1.5 * t**2], -1) + torch.tensor(
        [0.5, -1.0, 2.0], dtype=F64
    )
    intrinsics = torch.stack([0.5 + 0.1 * t, 0.9 + 0.1 * t, 0.5 + 0 * t, 0.48 + 0 * t], -1)
    return CameraTrajectory(make_pose(rotations, positions), intrinsics, fps=24.0, aspect=None)


def angle_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rotation angle (radians) of a^T b."""
    relative = a.transpose(-1, -2) @ b
    return math.acos(max(-1.0, min(1.0, (float(relative.diagonal().sum()) - 1) / 2)))


# ---------------------------------------------------------------------------------------------
# Shapes and the ray equations
# ---------------------------------------------------------------------------------------------


def test_shapes_at_pixel_and_latent_size():
    trajectory = preset_trajectory("orbit_left", 9)
    assert len(trajectory) == 9 and trajectory.c2w.dtype == F64 and trajectory.intrinsics.shape == (9, 4)
    assert trajectory_plucker(trajectory, 64, 32).shape == (9, 32, 64, 6)
    assert trajectory_plucker(trajectory, 64 // 8, 32 // 8).shape == (9, 4, 8, 6)
    embedding = wan_camera_embedding(trajectory, 64, 32)
    assert embedding.shape == (1, 24, 3, 32, 64) and embedding.dtype == torch.float32


def test_identity_camera_rays_pass_through_pixel_centres_and_have_zero_moment():
    width, height = 8, 4
    fx, fy, cx, cy = 0.5, 0.8, 0.5, 0.5
    trajectory = CameraTrajectory(torch.eye(4)[None], (fx, fy, cx, cy), aspect=None)
    rays = trajectory_plucker(trajectory, width, height, dtype=F64)
    v, u = torch.meshgrid(torch.arange(height, dtype=F64), torch.arange(width, dtype=F64), indexing="ij")
    expected = torch.stack(
        [(u + 0.5 - cx * width) / (fx * width), (v + 0.5 - cy * height) / (fy * height), torch.ones_like(u)],
        -1,
    )
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(rays[0, ..., 3:], expected, **EXACT)
    assert torch.equal(rays[0, ..., :3], torch.zeros(height, width, 3, dtype=F64))
    # Centred principal point, even size: the middle pixels look symmetrically left/right of the axis.
    torch.testing.assert_close(rays[0, 0, 3, 3], -rays[0, 0, 4, 3], **EXACT)


def test_moved_camera_moment_is_o_cross_d_and_depends_only_on_the_line():
    rotation = rotation_from_euler(torch.tensor([0.1, -0.4, 0.25], dtype=F64))
    origin = torch.tensor([0.3, -0.2, 1.7], dtype=F64)
    pixel_k = torch.tensor([[20.0, 18.0, 8.0, 6.0]], dtype=F64)
    rays = plucker_rays(make_pose(rotation, origin)[None], pixel_k, 12, 16)[0]
    moment, direction = rays[..., :3], rays[..., 3:]
    torch.testing.assert_close(direction.norm(dim=-1), torch.ones(12, 16, dtype=F64), **EXACT)
    torch.testing.assert_close(
        moment, torch.linalg.cross(origin.expand_as(direction), direction, dim=-1), **EXACT
    )
    torch.testing.assert_close(
        (moment * direction).sum(-1), torch.zeros(12, 16, dtype=F64), atol=1e-12, rtol=0
    )
    # Sliding the camera along one of its own rays leaves that ray's Plücker coordinates unchanged.
    slid = plucker_rays(make_pose(rotation, origin + 0.7 * direction[5, 9])[None], pixel_k, 12, 16)[0]
    torch.testing.assert_close(slid[5, 9], rays[5, 9], **EXACT)


def test_rays_are_relative_to_the_first_frame_of_the_slice():
    trajectory = wobbly_trajectory(13)
    part = trajectory.slice(4, 9)
    rays = trajectory_plucker(part, 16, 8, dtype=F64)
    torch.testing.assert_close(rays, trajectory_plucker(part.rebase(0), 16, 8, dtype=F64), **EXACT)
    torch.testing.assert_close(rays[..., :3][0], torch.zeros(8, 16, 3, dtype=F64), **EXACT)
    absolute = trajectory_plucker(part, 16, 8, relative=False, dtype=F64)
    assert not torch.allclose(absolute, rays)


def test_aspect_correction_crops_the_wider_source_and_keeps_square_pixels():
    square_pixels = torch.tensor([[0.5, 0.5 * CORE_POSE_ASPECT, 0.5, 0.5]], dtype=F64)
    for width, height in [(64, 64), (128, 32), (1280, 720)]:
        fx, fy, _, _ = pixel_intrinsics(square_pixels, width, height, CORE_POSE_ASPECT)[0].tolist()
        assert fx == pytest.approx(fy, rel=1e-12)
    fx, fy, cx, cy = pixel_intrinsics(square_pixels, 64, 64, None)[0].tolist()
    assert (fx, cx, cy) == (32.0, 32.0, 32.0) and fy == pytest.approx(32.0 * CORE_POSE_ASPECT)


# ---------------------------------------------------------------------------------------------
# Wan layout
# ---------------------------------------------------------------------------------------------


def test_wan_layout_repeats_frame_zero_four_times_and_puts_channel_c_subframe_s_at_4c_plus_s():
    frames, height, width = 9, 2, 3
    frame_index = torch.arange(frames, dtype=torch.float32)[:, None, None, None]
    channel_index = torch.arange(6, dtype=torch.float32)
    fake = (100 * frame_index + channel_index).expand(frames, height, width, 6)
    layout = wan_camera_layout(fake)
    assert layout.shape == (1, 24, 3, height, width)
    padded_frames = [0, 0, 0, 0, *range(1, frames)]
    for latent in range(3):
        for channel in range(6):
            for sub in range(4):
                expected = 100 * padded_frames[4 * latent + sub] + channel
                assert torch.all(layout[0, 4 * channel + sub, latent] == expected)


def test_wan_embedding_filled_in_chunks_equals_the_layout_of_all_rays(monkeypatch):
    trajectory = wobbly_trajectory(13)
    reference = wan_camera_layout(trajectory_plucker(trajectory, 24, 16))
    assert torch.equal(wan_camera_embedding(trajectory, 24, 16), reference)
    monkeypatch.setattr(plucker_module, "RAY_CHUNK_ELEMENTS", 24 * 16 * 6 * 3)  # 3 frames a chunk
    assert torch.equal(wan_camera_embedding(trajectory, 24, 16), reference)


def test_wan_lengths_must_be_4k_plus_1():
    with pytest.raises(ValueError, match=r"4k\+1 frames .* got 8: use 5 or 9"):
        wan_camera_embedding(preset_trajectory("static", 8), 16, 16)
    with pytest.raises(ValueError, match="4k\\+1"):
        wan_camera_layout(torch.zeros(6, 2, 2, 6))


# ---------------------------------------------------------------------------------------------
# Trajectory operations
# ---------------------------------------------------------------------------------------------


def test_rebase_makes_the_frame_identity_and_keeps_relative_motion():
    trajectory = wobbly_trajectory(9)
    rebased = trajectory.rebase(3)
    assert torch.equal(rebased.c2w[3], torch.eye(4, dtype=F64))
    for i, j in [(0, 8), (2, 5)]:
        before = torch.linalg.inv(trajectory.c2w[i]) @ trajectory.c2w[j]
        torch.testing.assert_close(torch.linalg.inv(rebased.c2w[i]) @ rebased.c2w[j], before, **EXACT)
    assert torch.equal(rebased.intrinsics, trajectory.intrinsics)


def test_slice_then_compose_gives_back_the_trajectory():
    trajectory = wobbly_trajectory(17)
    first, second = trajectory.slice(0, 9), trajectory.slice(8)
    assert (len(first), len(second)) == (9, 9)
    joined = first.compose(second)
    assert len(joined) == 17  # the shared frame is not repeated: 4a+1 + 4b+1 - 1 = 4(a+b)+1
    torch.testing.assert_close(joined.c2w, trajectory.c2w, **EXACT)
    torch.testing.assert_close(joined.intrinsics, trajectory.intrinsics, **EXACT)


def test_compose_continues_a_move_from_where_the_first_ended():
    pan = preset_trajectory("pan_right", 5, full_motion=True)
    twice = pan.compose(pan)
    torch.testing.assert_close(
        twice.positions[-1], torch.tensor([2 * CORE_BASE_TRANSLATION, 0, 0], dtype=F64)
    )
    turned = preset_trajectory("yaw_right", 5).compose(preset_trajectory("dolly_in", 5))
    distance = 2 * CORE_BASE_TRANSLATION  # dolly at amount 1, along the turned view axis
    expected = distance * torch.tensor(
        [math.sin(CORE_BASE_ANGLE_RAD), 0, math.cos(CORE_BASE_ANGLE_RAD)], dtype=F64
    )
    torch.testing.assert_close(turned.positions[-1], expected, **EXACT)


def test_resample_keeps_the_path_and_its_duration():
    trajectory = wobbly_trajectory(9)
    same = trajectory.resample(9)
    torch.testing.assert_close(same.c2w, trajectory.c2w, **EXACT)
    denser = trajectory.resample(17)
    torch.testing.assert_close(denser.c2w[::2], trajectory.c2w, **EXACT)  # old frames are new knots
    torch.testing.assert_close(denser.intrinsics[::2], trajectory.intrinsics, **EXACT)
    assert denser.fps == pytest.approx(trajectory.fps * 2)
    assert (len(denser) - 1) / denser.fps == pytest.approx((len(trajectory) - 1) / trajectory.fps)


def test_resample_interpolates_constant_motion_exactly():
    roll = preset_trajectory("roll_cw", 5, amount=1.0)
    denser = roll.resample(9)
    expected_angles = torch.linspace(0, CORE_BASE_ANGLE_RAD, 9, dtype=F64)
    torch.testing.assert_close(denser.rotations, rotation_about_z(expected_angles), atol=1e-12, rtol=0)
    pan = preset_trajectory("pan_left", 3, amount=2.0).resample(5)
    expected_x = -torch.linspace(0, 2 * CORE_BASE_TRANSLATION, 5, dtype=F64)
    torch.testing.assert_close(pan.positions[:, 0], expected_x, **EXACT)


def test_repr_is_a_short_summary_without_tensors():
    text = repr(preset_trajectory("dolly_in", 81, amount=2.0))
    assert "tensor" not in text and len(text) < 200
    assert text.startswith("CameraTrajectory(frames=81, fps=16") and "end_travel=6" in text


def test_json_dict_round_trip_is_exact():
    trajectory = wobbly_trajectory(5)
    back = CameraTrajectory.from_dict(json.loads(json.dumps(trajectory.to_dict())))
    assert torch.equal(back.c2w, trajectory.c2w) and torch.equal(back.intrinsics, trajectory.intrinsics)
    assert (back.fps, back.aspect) == (trajectory.fps, trajectory.aspect)


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_starts_at_identity_and_moves_only_as_named(preset):
    trajectory = preset_trajectory(preset, 5)
    assert torch.equal(trajectory.c2w[0], torch.eye(4, dtype=F64))
    moved = not torch.equal(trajectory.c2w[-1], torch.eye(4, dtype=F64))
    zoomed = not torch.equal(trajectory.intrinsics[-1], trajectory.intrinsics[0])
    assert moved == (preset not in ("static", "zoom_in", "zoom_out"))
    assert zoomed == preset.startswith("zoom")


def test_full_motion_reaches_the_whole_move_on_the_last_frame():
    frames, amount = 9, 2.0
    pan = preset_trajectory("pan_right", frames, amount, full_motion=True)
    assert pan.positions[-1].tolist() == [amount * CORE_BASE_TRANSLATION, 0.0, 0.0]
    core_like = preset_trajectory("pan_right", frames, amount, full_motion=False)
    assert core_like.positions[-1, 0] == pytest.approx(amount * CORE_BASE_TRANSLATION * (frames - 1) / frames)
    roll = preset_trajectory("roll_ccw", frames, amount)
    assert angle_between(roll.rotations[0], roll.rotations[-1]) == pytest.approx(amount * CORE_BASE_ANGLE_RAD)
    zoom = preset_trajectory("zoom_in", frames, 1.0)
    torch.testing.assert_close(zoom.intrinsics[-1, :2], zoom.intrinsics[0, :2] * ZOOM_FOCAL_FACTOR, **EXACT)


def test_preset_directions_follow_opencv_axes():
    down, forward = torch.tensor([0.0, 1.0, 0.0], dtype=F64), torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    assert preset_trajectory("pan_up", 5).positions[-1, 1] < 0  # y is down
    assert preset_trajectory("dolly_in", 5).positions[-1, 2] > 0  # z is forward
    assert (preset_trajectory("yaw_left", 5).rotations[-1] @ forward)[0] < 0
    assert (preset_trajectory("tilt_up", 5).rotations[-1] @ forward)[1] < 0
    # A clockwise roll turns the camera's right axis downward.
    assert (preset_trajectory("roll_cw", 5).rotations[-1] @ torch.tensor([1.0, 0, 0], dtype=F64))[1] > 0
    orbit = preset_trajectory("orbit_left", 5, orbit_distance=3.0)
    assert orbit.positions[-1, 0] < 0
    centre = torch.tensor([0.0, 0.0, 3.0], dtype=F64)
    for rotation, position in zip(orbit.rotations, orbit.positions):
        torch.testing.assert_close(
            rotation @ forward, (centre - position) / (centre - position).norm(), **EXACT
        )
        torch.testing.assert_close(rotation @ down, down, **EXACT)


# ---------------------------------------------------------------------------------------------
# Keyframes
# ---------------------------------------------------------------------------------------------


def test_keyframes_are_hit_exactly_and_held_outside_their_range():
    keyframes = keyframes_from_dicts(
        [
            {"frame": 2, "position": [0, 0, 0], "rotation": [0, 0, 0], "fov": 60},
            {"frame": 6, "position": [1, 0, 2], "rotation": [0, 40, 0]},
            {"frame": 10, "position": [2, -1, 2], "rotation": [0, 90, 10], "fov": 40},
        ]
    )
    trajectory = trajectory_from_keyframes(keyframes, 13, aspect=2.0)
    assert len(trajectory) == 13 and trajectory.aspect == 2.0
    for key in keyframes:
        torch.testing.assert_close(
            trajectory.positions[key.frame], torch.tensor(key.position, dtype=F64), **EXACT
        )
        torch.testing.assert_close(trajectory.rotations[key.frame], key.rotation_matrix(), **EXACT)
    assert torch.equal(trajectory.c2w[0], trajectory.c2w[2]) and torch.equal(
        trajectory.c2w[12], trajectory.c2w[10]
    )
    fx_at_60 = 0.5 / math.tan(math.radians(30))
    assert trajectory.intrinsics[2].tolist() == pytest.approx([fx_at_60, 2 * fx_at_60, 0.5, 0.5])
    fx_at_50 = 0.5 / math.tan(math.radians(25))  # fov interpolated linearly between frames 2 and 10
    assert trajectory.intrinsics[6, 0].item() == pytest.approx(fx_at_50)
    halfway = angle_between(trajectory.rotations[6], trajectory.rotations[8])
    assert halfway == pytest.approx(angle_between(trajectory.rotations[8], trajectory.rotations[10]))


def test_keyframe_positions_follow_a_smooth_spline():
    keyframes = [CameraKeyframe(frame, (float(frame) ** 2 / 10, 0.0, 0.0)) for frame in (0, 4, 8, 12)]
    positions = trajectory_from_keyframes(keyframes).positions[:, 0]
    assert bool((positions[1:] > positions[:-1]).all())  # no backsteps between keyframes
    # Catmull-Rom tangents are exact for a parabola, so the inner segment is the parabola itself.
    inner = torch.arange(4, 9, dtype=F64)
    torch.testing.assert_close(positions[4:9], inner**2 / 10, **EXACT)
    two = trajectory_from_keyframes([CameraKeyframe(0, (0, 0, 0)), CameraKeyframe(4, (4, 0, 0))])
    torch.testing.assert_close(two.positions[:, 0], torch.arange(5, dtype=F64), **EXACT)


def test_look_at_keyframes_keep_the_target_centred():
    keyframes = keyframes_from_dicts(
        [
            {"frame": 0, "position": [0, 0, -4], "look_at": [0, 0, 0]},
            {"frame": 8, "position": [4, -1, 0], "look_at": [0, 0, 0]},
            {"frame": 16, "position": [0, 0, 4], "look_at": [0, 0, 0]},
        ]
    )
    trajectory = trajectory_from_keyframes(keyframes)
    forward = trajectory.rotations[..., 2]
    torch.testing.assert_close(
        forward, -trajectory.positions / trajectory.positions.norm(dim=-1, keepdim=True)
    )
    assert bool((trajectory.rotations[..., 1, 0].abs() < 1e-12).all())  # camera right stays level


def test_euler_and_quaternion_rotations_agree():
    angle = math.radians(30)
    euler = CameraKeyframe(0, (0, 0, 0), rotation=(0, 30, 0)).rotation_matrix()
    quaternion = CameraKeyframe(0, (0, 0, 0), rotation=(math.cos(angle / 2), 0, math.sin(angle / 2), 0))
    torch.testing.assert_close(euler, quaternion.rotation_matrix(), **EXACT)
    torch.testing.assert_close(euler, rotation_about_y(torch.tensor(angle, dtype=F64)), **EXACT)


def test_quaternions_round_trip_for_all_rotations_including_half_turns():
    generator = torch.Generator().manual_seed(0)
    rotations = quaternion_to_matrix(torch.randn(64, 4, generator=generator, dtype=F64))
    half_turns = rotation_from_euler(
        torch.tensor([[math.pi, 0, 0], [0, math.pi, 0], [0, 0, math.pi]], dtype=F64)
    )
    rotations = torch.cat([rotations, half_turns, torch.eye(3, dtype=F64)[None]])
    torch.testing.assert_close(quaternion_to_matrix(matrix_to_quaternion(rotations)), rotations, **EXACT)


# ---------------------------------------------------------------------------------------------
# Formats and conventions
# ---------------------------------------------------------------------------------------------

# Synthetic lines in the exact RealEstate10K layout: microsecond timestamp, fx fy cx cy, two zero
# distortion terms, then a 3x4 world-to-camera matrix row by row (9 decimals).
REALESTATE10K_TEXT = """https://www.youtube.com/watch?v=abcdefghijk
50050000 0.474812461 0.844111024 0.500000000 0.500000000 0.000000000 0.000000000 0.995004165 0.000000000 -0.099833417 0.250000000 0.000000000 1.000000000 0.000000000 -0.100000000 0.099833417 0.000000000 0.995004165 1.500000000
50083367 0.474812461 0.844111024 0.500000000 0.500000000 0.000000000 0.000000000 0.980066578 0.000000000 -0.198669331 0.400000000 0.000000000 1.000000000 0.000000000 -0.120000000 0.198669331 0.000000000 0.980066578 1.350000000
50116733 0.474812461 0.844111024 0.500000000 0.500000000 0.000000000 0.000000000 0.955336489 0.000000000 -0.295520207 0.550000000 0.000000000 1.000000000 0.000000000 -0.140000000 0.295520207 0.000000000 0.955336489 1.200000000
"""


def test_realestate10k_text_round_trip_is_exact():
    poses = parse_realestate10k(REALESTATE10K_TEXT)
    assert poses.url == "https://www.youtube.com/watch?v=abcdefghijk" and len(poses.trajectory) == 3
    assert poses.trajectory.fps == pytest.approx(1e6 / 33366.5)
    assert poses.trajectory.aspect == CORE_POSE_ASPECT
    written = format_realestate10k(poses.trajectory, url=poses.url, timestamps_us=poses.timestamps_us)
    assert written == REALESTATE10K_TEXT


def test_realestate10k_lines_are_world_to_camera():
    trajectory = parse_realestate10k(REALESTATE10K_TEXT).trajectory
    w2c_first = torch.tensor([float(v) for v in REALESTATE10K_TEXT.splitlines()[1].split()[7:]], dtype=F64)
    torch.testing.assert_close(torch.linalg.inv(trajectory.c2w[0])[:3].flatten(), w2c_first, **EXACT)


def test_trajectory_survives_a_pose_file_to_nine_decimals():
    trajectory = wobbly_trajectory(9)
    text = format_realestate10k(trajectory)
    assert text.splitlines()[0].startswith("#")  # CameraCtrl skips the first line, so always write one
    back = parse_realestate10k(text, aspect=None).trajectory
    torch.testing.assert_close(back.c2w, trajectory.c2w, atol=1e-8, rtol=0)
    torch.testing.assert_close(back.intrinsics, trajectory.intrinsics, atol=1e-9, rtol=0)
    assert back.fps == pytest.approx(trajectory.fps, rel=1e-4)


def test_opengl_camera_converts_to_opencv_axes():
    # An OpenGL camera at z = +5 looking down -z at the origin, y up.
    gl = make_pose(torch.eye(3, dtype=F64), torch.tensor([0.0, 0.0, 5.0], dtype=F64))
    cv = opengl_to_opencv(gl)
    torch.testing.assert_close(cv[:3, 2], torch.tensor([0.0, 0.0, -1.0], dtype=F64))  # forward = -z world
    torch.testing.assert_close(cv[:3, 1], torch.tensor([0.0, -1.0, 0.0], dtype=F64))  # down = -y world
    assert torch.equal(cv[:3, 3], gl[:3, 3])
    torch.testing.assert_close(opencv_to_opengl(cv), gl, **EXACT)


def test_blender_camera_and_world_convert_to_an_upright_opencv_camera():
    # Blender's default front view: rotation (90, 0, 0) degrees, looking along +y, z up.
    rotation = rotation_from_euler(torch.tensor([math.pi / 2, 0, 0], dtype=F64))
    blender = make_pose(rotation, torch.tensor([0.0, -5.0, 1.0], dtype=F64))
    cv = opengl_to_opencv(blender, blender_world=True)
    torch.testing.assert_close(cv[:3, :3], torch.eye(3, dtype=F64), **EXACT)  # forward +z, down +y
    torch.testing.assert_close(cv[:3, 3], torch.tensor([0.0, -1.0, -5.0], dtype=F64), **EXACT)
    torch.testing.assert_close(opencv_to_opengl(cv, blender_world=True), blender, **EXACT)


def test_orbit_cameras_look_at_the_origin_from_the_given_angles():
    elevations, azimuths = sv3d_orbit_angles(5, elevation_deg=20.0)
    assert azimuths == [0.0, 90.0, 180.0, 270.0, 360.0]
    radius = 2.5
    orbit = orbit_trajectory(elevations, azimuths, radius)
    torch.testing.assert_close(orbit.positions.norm(dim=-1), torch.full((5,), radius, dtype=F64))
    forward = orbit.rotations[..., 2]
    torch.testing.assert_close(forward, -orbit.positions / radius)
    assert bool((orbit.positions[:, 1] < 0).all())  # positive elevation is above (y is down)
    assert orbit.positions[1, 0] > 0  # growing azimuth moves the camera to its right
    front = orbit_trajectory([0.0], [0.0], radius)
    torch.testing.assert_close(
        front.c2w[0], make_pose(torch.eye(3, dtype=F64), torch.tensor([0, 0, -radius]))
    )
    _, sv4d_azimuths = sv4d_orbit_angles(4, 10.0)
    assert sv4d_azimuths == [90.0, 180.0, 270.0, 0.0]  # SV4D: the input view comes last


# ---------------------------------------------------------------------------------------------
# Errors that tell the user what to change
# ---------------------------------------------------------------------------------------------


def test_non_rigid_matrices_are_rejected_with_the_frame_named():
    poses = torch.eye(4, dtype=F64).repeat(3, 1, 1)
    scaled = poses.clone()
    scaled[1, :3, :3] *= 2
    with pytest.raises(ValueError, match="frame 1 is not rigid"):
        CameraTrajectory(scaled, (0.5, 0.5, 0.5, 0.5))
    mirrored = poses.clone()
    mirrored[2, 0, 0] = -1
    with pytest.raises(ValueError, match="frame 2 is a mirror image"):
        CameraTrajectory(mirrored, (0.5, 0.5, 0.5, 0.5))
    projective = poses.clone()
    projective[0, 3, 2] = 1
    with pytest.raises(ValueError, match=r"frame 0 has bottom row"):
        CameraTrajectory(projective, (0.5, 0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"shape \[frames, 4, 4\]"):
        CameraTrajectory(torch.eye(4), (0.5, 0.5, 0.5, 0.5))


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match=r"one row per frame \[3, 4\]"):
        CameraTrajectory(torch.eye(4).repeat(3, 1, 1), torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match="2 elevations but 3 azimuths"):
        orbit_trajectory([0, 0], [0, 90, 180])
    with pytest.raises(ValueError, match="2 timestamps given for a 3-frame trajectory"):
        format_realestate10k(preset_trajectory("static", 3), timestamps_us=[0, 1])
    with pytest.raises(ValueError, match="line 2: expected 19 numbers"):
        parse_realestate10k("https://x\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0\n")
    with pytest.raises(ValueError, match="different aspects"):
        preset_trajectory("static", 3).compose(preset_trajectory("static", 3, aspect=None))
    with pytest.raises(ValueError, match="resample one first"):
        preset_trajectory("static", 3).compose(preset_trajectory("static", 3, fps=24))


def test_bad_keyframes_are_rejected():
    with pytest.raises(ValueError, match="no keyframes"):
        trajectory_from_keyframes([])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lookat'\]"):
        keyframes_from_dicts([{"frame": 0, "position": [0, 0, 0], "lookat": [0, 0, 1]}])
    with pytest.raises(ValueError, match="either look_at or rotation"):
        CameraKeyframe(0, (0, 0, 0), look_at=(0, 0, 1), rotation=(0, 0, 0))
    with pytest.raises(ValueError, match="share frame"):
        trajectory_from_keyframes([CameraKeyframe(3, (0, 0, 0)), CameraKeyframe(3, (1, 0, 0))])
    with pytest.raises(ValueError, match="sits at frame 9 but the trajectory has 5 frames"):
        trajectory_from_keyframes([CameraKeyframe(9, (0, 0, 0))], 5)
    with pytest.raises(ValueError, match="straight up or down"):
        trajectory_from_keyframes([CameraKeyframe(0, (0, 0, 0), look_at=(0, -1, 0))])
    with pytest.raises(ValueError, match="frame must be a whole number >= 0, got None"):
        keyframes_from_dicts([{"frame": None, "position": [0, 0, 0]}])
    with pytest.raises(ValueError, match="fov must be"):
        keyframes_from_dicts([{"frame": 0, "position": [0, 0, 0], "fov": "wide"}])
    with pytest.raises(ValueError, match="position must be a list of 3"):
        keyframes_from_dicts([{"frame": 0, "position": [0, 0]}])


def test_bad_preset_and_slice_inputs_are_rejected():
    with pytest.raises(ValueError, match="unknown camera preset 'spin'"):
        preset_trajectory("spin", 5)
    with pytest.raises(ValueError, match=r"slice \[3, 9\) is outside this 5-frame trajectory"):
        preset_trajectory("static", 5).slice(3, 9)
    with pytest.raises(ValueError, match="resample needs at least 1 frame"):
        preset_trajectory("static", 5).resample(0)
