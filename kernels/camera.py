"""Camera trajectories: one typed object for every camera path the pack builds, loads or embeds.

A trajectory is, per pixel frame, a camera-to-world 4x4 in OpenCV camera axes (x right, y down,
z forward) plus normalised intrinsics (fx, fy, cx, cy as fractions of the image width/height, the
RealEstate10K convention), and an fps. Plücker rays (``plucker.py``) are computed from it relative
to its first frame, so a trajectory can be sliced per chunk of a long video and each slice embeds
the way core's ``WanCameraEmbedding`` embeds a whole clip (research/algorithms.md 4.3-4.4).

World axes are free (rays only see relative poses), but look-at, orbits and keyframes need an up
direction: they use the OpenCV-style world of the first camera, up = -y (``WORLD_DOWN = +y``).

``aspect`` records the width/height of the image the normalised intrinsics were measured on. When
rays are asked at another aspect, the image is taken as resized to cover and centre-cropped, which
is core's rule (it assumes 1280x720 source poses). ``None`` means "fractions of whatever size is
asked", i.e. no correction.

Everything here is float64 on the CPU: trajectories are small (N x 16 numbers) and the
Plücker stage casts to the embedding dtype at the end, exactly where core does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

POSE_DTYPE = torch.float64
"""Poses and intrinsics are kept in float64; core also builds its poses in float64 (numpy)."""

WAN_FPS = 16.0
"""Frame rate of Wan 2.1/2.2 videos; the default fps of trajectories built here."""

RIGID_TOLERANCE = 1e-4
"""Largest |R^T R - I| entry (and |det R - 1|) accepted as a rotation. RealEstate10K stores 9
decimals, so real files are orthonormal to ~1e-8; anything past 1e-4 is a scale or a shear."""

HOMOGENEOUS_ROW = (0.0, 0.0, 0.0, 1.0)

WORLD_DOWN = (0.0, 1.0, 0.0)
"""World 'down' used by look-at, orbits and keyframes: +y, as in the OpenCV camera frame."""

# Core WanCameraEmbedding's CAMERA_DICT constants (comfy_extras/nodes_camera_trajectory.py).
CORE_BASE_TRANSLATION = 1.5
"""Distance moved by a translating preset at amount (speed) 1: core's ``base_T_norm``."""
CORE_BASE_ANGLE_RAD = math.pi / 3
"""Angle turned by a rotating preset at amount (speed) 1: core's ``base_angle``."""
CORE_DOLLY_SCALE = 2.0
"""Core's "Zoom In"/"Zoom Out" move along z by twice the base distance (``T = (0, 0, +-2)``)."""
CORE_POSE_WIDTH = 1280
CORE_POSE_HEIGHT = 720
CORE_POSE_ASPECT = CORE_POSE_WIDTH / CORE_POSE_HEIGHT
"""Core assumes its normalised intrinsics belong to 1280x720 frames (``original_pose_width``)."""
CORE_DEFAULT_INTRINSICS = (0.5, 0.5, 0.5, 0.5)
"""Core's default fx, fy, cx, cy (normalised). Note fx = fy = 0.5 at 16:9 is not square pixels."""

ZOOM_FOCAL_FACTOR = 2.0
"""``zoom_in`` at amount 1 doubles the focal length over the move (``zoom_out`` halves it)."""
DEFAULT_ORBIT_DISTANCE = CORE_DOLLY_SCALE * CORE_BASE_TRANSLATION
"""Distance from the camera to the orbit centre: as far as core's "Zoom In" travels at speed 1."""
DEFAULT_FOV_DEG = 90.0
"""Horizontal field of view for keyframes without ``fov``: core's default fx = 0.5."""
DEFAULT_KEYFRAME_ASPECT = CORE_POSE_ASPECT
"""Width/height that keyframe fovs refer to when the caller does not say (16:9)."""

SLERP_LINEAR_THRESHOLD = 1e-6
"""Below this sin(angle) two rotations are equal to float64 precision: slerp becomes lerp."""
QUATERNION_PIVOT_FLOOR = 0.1
"""Smallest divisor when reading a quaternion off a matrix (the largest candidate is >= 0.5)."""

OPENGL_TO_OPENCV_CAMERA = (1.0, -1.0, -1.0)
"""OpenGL/Blender cameras look down -z with +y up; OpenCV flips the camera's y and z axes."""
BLENDER_TO_OPENCV_WORLD = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
"""Rotation taking Blender's z-up world to this module's world (up = -y): (x, y, z) -> (x, -z, y)."""

REALESTATE10K_FIELDS = 19
"""timestamp, fx, fy, cx, cy, two (unused, zero) distortion terms, 12 numbers of a 3x4 w2c."""
REALESTATE10K_DECIMALS = 9
"""RealEstate10K and CameraCtrl files print every number but the timestamp with 9 decimals."""
MICROSECONDS = 1_000_000
POSE_FILE_HEADER = "# ComfyUI-RealtimeVideo camera trajectory (RealEstate10K format)"
"""First line written when no URL is given: CameraCtrl always skips the first line."""

JSON_FORMAT_NAME = "rtv-camera-trajectory"
JSON_FORMAT_VERSION = 1

SV4D_DEFAULT_VIEWS = 21
SV4D_DEFAULT_ELEVATION_DEG = 10.0
FULL_TURN_DEG = 360.0


# --------------------------------------------------------------------------------------------
# Rotations: euler angles, quaternions (w, x, y, z), slerp, look-at.
# --------------------------------------------------------------------------------------------


def rotation_about_x(angle: Tensor) -> Tensor:
    """[...] radians -> [..., 3, 3]; with y down, a positive angle tilts the view up."""
    c, s, one, zero = torch.cos(angle), torch.sin(angle), torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([one, zero, zero, zero, c, -s, zero, s, c], dim=-1).unflatten(-1, (3, 3))


def rotation_about_y(angle: Tensor) -> Tensor:
    """[...] radians -> [..., 3, 3]; a positive angle turns the view to the right (x toward z)."""
    c, s, one, zero = torch.cos(angle), torch.sin(angle), torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], dim=-1).unflatten(-1, (3, 3))


def rotation_about_z(angle: Tensor) -> Tensor:
    """[...] radians -> [..., 3, 3]; a positive angle rolls the camera clockwise (x toward y = down)."""
    c, s, one, zero = torch.cos(angle), torch.sin(angle), torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=-1).unflatten(-1, (3, 3))


def rotation_from_euler(angles: Tensor) -> Tensor:
    """[..., 3] radians (about x, y, z) -> R = Rz Ry Rx, the order core's presets use."""
    rx = rotation_about_x(angles[..., 0])
    ry = rotation_about_y(angles[..., 1])
    rz = rotation_about_z(angles[..., 2])
    return rz @ (ry @ rx)


def quaternion_to_matrix(quaternion: Tensor) -> Tensor:
    """[..., 4] (w, x, y, z), any norm -> [..., 3, 3] rotation."""
    w, x, y, z = torch.nn.functional.normalize(quaternion, dim=-1).unbind(-1)
    entries = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(entries, dim=-1).unflatten(-1, (3, 3))


def matrix_to_quaternion(rotation: Tensor) -> Tensor:
    """[..., 3, 3] -> [..., 4] unit (w, x, y, z).

    Each of w, x, y, z can be read off the diagonal; dividing by the largest of them (at least 1/2
    for a unit quaternion) keeps the other three accurate for every rotation, including 180 degrees.
    """
    m = rotation
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    four_squares = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    doubled = torch.sqrt(four_squares.clamp(min=0))  # 2|w|, 2|x|, 2|y|, 2|z|
    zy, yz = m[..., 2, 1], m[..., 1, 2]
    xz, zx = m[..., 0, 2], m[..., 2, 0]
    yx, xy = m[..., 1, 0], m[..., 0, 1]
    # Row p holds 4 * q_p * (w, x, y, z): the quaternion scaled by its p-th component.
    candidates = torch.stack(
        [
            torch.stack([doubled[..., 0] ** 2, zy - yz, xz - zx, yx - xy], dim=-1),
            torch.stack([zy - yz, doubled[..., 1] ** 2, yx + xy, xz + zx], dim=-1),
            torch.stack([xz - zx, yx + xy, doubled[..., 2] ** 2, zy + yz], dim=-1),
            torch.stack([yx - xy, xz + zx, zy + yz, doubled[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )
    candidates = candidates / (2 * doubled.clamp(min=QUATERNION_PIVOT_FLOOR))[..., None]
    best = doubled.argmax(dim=-1)
    quaternion = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    quaternion = torch.nn.functional.normalize(quaternion, dim=-1)
    return torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def slerp(q0: Tensor, q1: Tensor, u: Tensor) -> Tensor:
    """Spherical linear interpolation of unit quaternions [..., 4] at fractions u [...], short way."""
    dot = (q0 * q1).sum(-1)
    q1 = torch.where(dot[..., None] < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    angle = torch.acos(dot)
    sin_angle = torch.sin(angle)
    nearly_equal = sin_angle < SLERP_LINEAR_THRESHOLD
    safe_sin = torch.where(nearly_equal, torch.ones_like(sin_angle), sin_angle)
    w0 = torch.where(nearly_equal, 1 - u, torch.sin((1 - u) * angle) / safe_sin)
    w1 = torch.where(nearly_equal, u, torch.sin(u * angle) / safe_sin)
    return torch.nn.functional.normalize(w0[..., None] * q0 + w1[..., None] * q1, dim=-1)


def look_at_rotation(position: Tensor, target: Tensor, world_down: Sequence[float] = WORLD_DOWN) -> Tensor:
    """Camera-to-world rotation [..., 3, 3] of a camera at ``position`` looking at ``target``.

    Columns are the camera's x (right), y (down), z (forward) axes in world coordinates; the image
    stays upright with respect to ``world_down``.
    """
    down = torch.as_tensor(world_down, dtype=position.dtype).expand_as(position)
    offset = target - position
    distance = offset.norm(dim=-1)
    if bool((distance < SLERP_LINEAR_THRESHOLD).any()):
        raise ValueError("look_at: a camera sits on its look-at point; move the camera or the target apart")
    forward = offset / distance[..., None]
    right = torch.linalg.cross(down, forward, dim=-1)
    right_norm = right.norm(dim=-1)
    if bool((right_norm < SLERP_LINEAR_THRESHOLD).any()):
        raise ValueError(
            "look_at: a camera looks straight up or down, so 'upright' is undefined; "
            "keep the view direction (and orbit elevations) strictly between -90 and 90 degrees"
        )
    right = right / right_norm[..., None]
    camera_down = torch.linalg.cross(forward, right, dim=-1)
    return torch.stack([right, camera_down, forward], dim=-1)


# --------------------------------------------------------------------------------------------
# Rigid transforms.
# --------------------------------------------------------------------------------------------


def make_pose(rotation: Tensor, translation: Tensor) -> Tensor:
    """[..., 3, 3] and [..., 3] -> homogeneous [..., 4, 4]."""
    pose = torch.zeros(*rotation.shape[:-2], 4, 4, dtype=rotation.dtype)
    pose[..., :3, :3] = rotation
    pose[..., :3, 3] = translation
    pose[..., 3, 3] = 1.0
    return pose


def check_rigid(poses: Tensor, what: str = "camera-to-world matrices") -> None:
    """Raise ValueError naming the first frame whose 4x4 is not a rotation plus a translation."""
    if not bool(torch.isfinite(poses).all()):
        frame = int((~torch.isfinite(poses)).flatten(1).any(1).nonzero()[0])
        raise ValueError(f"{what}: frame {frame} contains NaN or infinity")
    bottom = (poses[:, 3, :] - torch.tensor(HOMOGENEOUS_ROW, dtype=poses.dtype)).abs().amax(-1)
    rotation = poses[:, :3, :3]
    gram = rotation.transpose(-1, -2) @ rotation - torch.eye(3, dtype=poses.dtype)
    orthonormal_error = gram.abs().flatten(1).amax(-1)
    determinant = torch.linalg.det(rotation)
    bad = (bottom > RIGID_TOLERANCE) | (orthonormal_error > RIGID_TOLERANCE) | (determinant < 0)
    if not bool(bad.any()):
        return
    frame = int(bad.nonzero()[0])
    if bottom[frame] > RIGID_TOLERANCE:
        raise ValueError(
            f"{what}: frame {frame} has bottom row {poses[frame, 3].tolist()}, expected [0, 0, 0, 1]"
        )
    if orthonormal_error[frame] > RIGID_TOLERANCE:
        raise ValueError(
            f"{what}: frame {frame} is not rigid (max |R^T R - I| = {float(orthonormal_error[frame]):.3g}); "
            "poses must be a rotation plus a translation, without scale or shear"
        )
    raise ValueError(
        f"{what}: frame {frame} is a mirror image (det R = {float(determinant[frame]):.3g}); "
        "the source uses a left-handed convention: flip one axis before importing"
    )


def invert_poses(poses: Tensor) -> Tensor:
    """Inverse of [..., 4, 4] poses. A general inverse, as CameraCtrl and core use, so that the
    slightly non-orthonormal rotations of 9-decimal files invert consistently both ways."""
    return torch.linalg.inv(poses)


# --------------------------------------------------------------------------------------------
# Interpolation on a time axis (frames): Catmull-Rom positions, slerp rotations, linear scalars.
# --------------------------------------------------------------------------------------------


def _segments(times: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
    """Index k of the segment [t_k, t_k+1] holding each query time (clamped), and the fraction u."""
    query = query.clamp(float(times[0]), float(times[-1]))
    k = (torch.searchsorted(times, query, right=True) - 1).clamp(0, times.numel() - 2)
    u = (query - times[k]) / (times[k + 1] - times[k])
    return k, u


def catmull_rom(times: Tensor, values: Tensor, query: Tensor) -> Tensor:
    """Cubic Hermite spline through ``values`` [K, D] at ``times`` [K] with Catmull-Rom (finite
    difference) tangents, one-sided at the ends; held constant outside [t_0, t_K-1]. Two knots give
    a straight line, and each knot is hit exactly."""
    if times.numel() == 1:
        return values[:1].expand(query.numel(), -1).clone()
    tangents = torch.empty_like(values)
    tangents[1:-1] = (values[2:] - values[:-2]) / (times[2:] - times[:-2])[:, None]
    tangents[0] = (values[1] - values[0]) / (times[1] - times[0])
    tangents[-1] = (values[-1] - values[-2]) / (times[-1] - times[-2])
    k, u = _segments(times, query)
    span = (times[k + 1] - times[k])[:, None]
    u = u[:, None]
    h00 = 2 * u**3 - 3 * u**2 + 1
    h10 = u**3 - 2 * u**2 + u
    h01 = -2 * u**3 + 3 * u**2
    h11 = u**3 - u**2
    return h00 * values[k] + h10 * span * tangents[k] + h01 * values[k + 1] + h11 * span * tangents[k + 1]


def linear_interpolate(times: Tensor, values: Tensor, query: Tensor) -> Tensor:
    """Piecewise linear ``values`` [K, D] at ``times`` [K]; held constant outside the range."""
    if times.numel() == 1:
        return values[:1].expand(query.numel(), -1).clone()
    k, u = _segments(times, query)
    return torch.lerp(values[k], values[k + 1], u[:, None])


def slerp_rotations(times: Tensor, rotations: Tensor, query: Tensor) -> Tensor:
    """Piecewise slerp of rotations [K, 3, 3] at ``times`` [K]; knots are returned unchanged."""
    if times.numel() == 1:
        return rotations[:1].expand(query.numel(), -1, -1).clone()
    quaternions = matrix_to_quaternion(rotations)
    k, u = _segments(times, query)
    result = quaternion_to_matrix(slerp(quaternions[k], quaternions[k + 1], u))
    result = torch.where((u == 0)[:, None, None], rotations[k], result)
    return torch.where((u == 1)[:, None, None], rotations[k + 1], result)


# --------------------------------------------------------------------------------------------
# The trajectory type.
# --------------------------------------------------------------------------------------------


def _as_poses(c2w: Any) -> Tensor:
    poses = torch.as_tensor(c2w, dtype=POSE_DTYPE, device="cpu").detach().clone()
    if poses.ndim == 3 and poses.shape[1:] == (3, 4):
        poses = torch.cat(
            [poses, torch.tensor(HOMOGENEOUS_ROW, dtype=POSE_DTYPE).expand(len(poses), 1, 4)], 1
        )
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"camera-to-world matrices must have shape [frames, 4, 4], got {list(poses.shape)}")
    if poses.shape[0] == 0:
        raise ValueError("a camera trajectory needs at least one frame, got 0")
    return poses


def _as_intrinsics(intrinsics: Any, frames: int) -> Tensor:
    values = torch.as_tensor(intrinsics, dtype=POSE_DTYPE, device="cpu").detach().clone()
    if values.shape == (4,):
        values = values.expand(frames, 4).clone()
    if values.shape != (frames, 4):
        raise ValueError(
            f"intrinsics must be (fx, fy, cx, cy) or one row per frame [{frames}, 4], got {list(values.shape)}"
        )
    if not bool(torch.isfinite(values).all()):
        raise ValueError("intrinsics contain NaN or infinity")
    if not bool((values[:, :2] > 0).all()):
        raise ValueError("focal lengths fx, fy must be > 0 (fractions of the image width/height, e.g. 0.5)")
    return values


@dataclass(frozen=True, eq=False, repr=False)
class CameraTrajectory:
    """Per pixel frame: camera-to-world [N, 4, 4] (OpenCV axes) and intrinsics [N, 4] (fx, fy, cx,
    cy normalised by width/height), float64 on the CPU; fps; ``aspect`` = width/height the
    intrinsics were measured on (None: apply them to any size as they are).

    Construction validates and copies: ``c2w`` may also be [N, 3, 4]; ``intrinsics`` may be four
    numbers for every frame. Treat the tensors as read-only (ComfyUI caches node outputs and may
    hand one trajectory to several nodes). Equality is identity, so compare ``c2w`` directly.
    """

    c2w: Tensor
    intrinsics: Tensor
    fps: float = WAN_FPS
    aspect: float | None = CORE_POSE_ASPECT

    def __post_init__(self) -> None:
        poses = _as_poses(self.c2w)
        check_rigid(poses)
        object.__setattr__(self, "c2w", poses)
        object.__setattr__(self, "intrinsics", _as_intrinsics(self.intrinsics, len(poses)))
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        object.__setattr__(self, "fps", float(self.fps))
        if self.aspect is not None:
            if not (math.isfinite(self.aspect) and self.aspect > 0):
                raise ValueError(
                    f"aspect (width / height) must be a positive number or None, got {self.aspect}"
                )
            object.__setattr__(self, "aspect", float(self.aspect))

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __repr__(self) -> str:
        first, last = self.c2w[0], self.c2w[-1]
        relative = invert_poses(first) @ last
        travel = float(relative[:3, 3].norm())
        cos_turn = ((relative[0, 0] + relative[1, 1] + relative[2, 2] - 1) / 2).clamp(-1, 1)
        turn_deg = math.degrees(float(torch.acos(cos_turn)))
        fx, fy, cx, cy = (float(v) for v in self.intrinsics[0])
        varying = " (varying)" if bool((self.intrinsics != self.intrinsics[0]).any()) else ""
        aspect = "any" if self.aspect is None else f"{self.aspect:.4g}"
        return (
            f"CameraTrajectory(frames={len(self)}, fps={self.fps:g}, "
            f"intrinsics=({fx:.4g}, {fy:.4g}, {cx:.4g}, {cy:.4g}){varying}, aspect={aspect}, "
            f"end_travel={travel:.4g}, end_turn_deg={turn_deg:.4g})"
        )

    @property
    def rotations(self) -> Tensor:
        """[N, 3, 3] camera-to-world rotations (columns: camera right, down, forward)."""
        return self.c2w[:, :3, :3]

    @property
    def positions(self) -> Tensor:
        """[N, 3] camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    def _replace(self, c2w: Tensor, intrinsics: Tensor, fps: float | None = None) -> CameraTrajectory:
        return CameraTrajectory(c2w, intrinsics, self.fps if fps is None else fps, self.aspect)

    def slice(self, start: int, stop: int | None = None) -> CameraTrajectory:
        """Frames [start, stop) in world coordinates (not rebased: the embedding rebases)."""
        frames = len(self)
        stop = frames if stop is None else stop
        if not 0 <= start < stop <= frames:
            raise ValueError(
                f"slice [{start}, {stop}) is outside this {frames}-frame trajectory; "
                f"use 0 <= start < stop <= {frames}"
            )
        return self._replace(self.c2w[start:stop], self.intrinsics[start:stop])

    def rebase(self, frame: int = 0) -> CameraTrajectory:
        """Express every pose relative to frame ``frame``: c2w_i -> inv(c2w_frame) @ c2w_i, so that
        frame becomes exactly the identity (as core and CameraCtrl do for frame 0)."""
        if not 0 <= frame < len(self):
            raise ValueError(f"rebase frame {frame} is outside this {len(self)}-frame trajectory")
        relative = invert_poses(self.c2w[frame]) @ self.c2w
        relative[frame] = torch.eye(4, dtype=POSE_DTYPE)
        return self._replace(relative, self.intrinsics)

    def resample(self, n_frames: int) -> CameraTrajectory:
        """The same move over ``n_frames`` frames (first and last poses kept): Catmull-Rom positions,
        slerp rotations, linear intrinsics. fps scales so that the duration stays the same."""
        if n_frames < 1:
            raise ValueError(f"resample needs at least 1 frame, got {n_frames}")
        frames = len(self)
        times = torch.arange(frames, dtype=POSE_DTYPE)
        query = torch.linspace(0, frames - 1, n_frames, dtype=POSE_DTYPE)
        rotations = slerp_rotations(times, self.rotations, query)
        positions = catmull_rom(times, self.positions, query)
        intrinsics = linear_interpolate(times, self.intrinsics, query)
        fps = self.fps * (n_frames - 1) / (frames - 1) if frames > 1 and n_frames > 1 else self.fps
        return self._replace(make_pose(rotations, positions), intrinsics, fps)

    def compose(self, other: CameraTrajectory) -> CameraTrajectory:
        """``other`` continued from this trajectory's last pose: other's frame 0 coincides with our
        last frame and is not repeated, so 4a+1 and 4b+1 frames make 4(a+b)+1 (a valid Wan length)."""
        if not math.isclose(self.fps, other.fps):
            raise ValueError(
                f"cannot compose trajectories at {self.fps:g} and {other.fps:g} fps; resample one first"
            )
        if (self.aspect is None) != (other.aspect is None) or (
            self.aspect is not None and not math.isclose(self.aspect, other.aspect)
        ):
            raise ValueError(
                f"cannot compose trajectories whose intrinsics refer to different aspects ({self.aspect} vs "
                f"{other.aspect}); build both for the same width/height"
            )
        continued = self.c2w[-1] @ other.rebase(0).c2w[1:]
        return self._replace(
            torch.cat([self.c2w, continued]), torch.cat([self.intrinsics, other.intrinsics[1:]])
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready description (the pack's own file format); floats round-trip exactly."""
        return {
            "format": JSON_FORMAT_NAME,
            "version": JSON_FORMAT_VERSION,
            "convention": "opencv camera-to-world",
            "fps": self.fps,
            "aspect": self.aspect,
            "c2w": self.c2w.tolist(),
            "intrinsics": self.intrinsics.tolist(),
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> CameraTrajectory:
        """Inverse of :meth:`to_dict`, with errors that say which field is wrong."""
        if data.get("format") != JSON_FORMAT_NAME:
            raise ValueError(f"not a camera trajectory file: 'format' should be {JSON_FORMAT_NAME!r}")
        if data.get("version") != JSON_FORMAT_VERSION:
            raise ValueError(
                f"camera trajectory file version {data.get('version')!r} is not supported "
                f"(this pack reads version {JSON_FORMAT_VERSION})"
            )
        missing = [key for key in ("c2w", "intrinsics", "fps") if key not in data]
        if missing:
            raise ValueError(f"camera trajectory file lacks {', '.join(missing)}")
        return CameraTrajectory(data["c2w"], data["intrinsics"], data["fps"], data.get("aspect"))


# --------------------------------------------------------------------------------------------
# Presets (RTV_CameraTrajectory) and core WanCameraEmbedding's presets.
# --------------------------------------------------------------------------------------------

_TRANSLATING_PRESETS = {
    # Core's "Pan" moves the camera sideways without turning (a truck/pedestal in film terms).
    "pan_left": (-1.0, 0.0, 0.0),
    "pan_right": (1.0, 0.0, 0.0),
    "pan_up": (0.0, -1.0, 0.0),
    "pan_down": (0.0, 1.0, 0.0),
    "dolly_in": (0.0, 0.0, CORE_DOLLY_SCALE),
    "dolly_out": (0.0, 0.0, -CORE_DOLLY_SCALE),
}
_ROTATING_PRESETS = {
    # Euler (x, y, z) multipliers of the base angle; R = Rz Ry Rx.
    "roll_cw": (0.0, 0.0, 1.0),
    "roll_ccw": (0.0, 0.0, -1.0),
    "yaw_left": (0.0, -1.0, 0.0),
    "yaw_right": (0.0, 1.0, 0.0),
    "tilt_up": (1.0, 0.0, 0.0),
    "tilt_down": (-1.0, 0.0, 0.0),
}
_ZOOM_PRESETS = {"zoom_in": 1.0, "zoom_out": -1.0}
_ORBIT_PRESETS = {"orbit_left": 1.0, "orbit_right": -1.0}

PRESETS = ("static", *_TRANSLATING_PRESETS, *_ZOOM_PRESETS, *_ORBIT_PRESETS, *_ROTATING_PRESETS)
"""Preset names of :func:`preset_trajectory`. ``pan_*`` translate (as core's "Pan" does),
``yaw_*``/``tilt_*`` turn in place, ``zoom_*`` change the focal length, ``dolly_*`` move along
the view axis, ``orbit_*`` circle a point ahead of the camera, ``roll_*`` turn about the view axis."""

CORE_PRESETS = {
    "Static": "static",
    "Pan Up": "pan_up",
    "Pan Down": "pan_down",
    "Pan Left": "pan_left",
    "Pan Right": "pan_right",
    "Zoom In": "dolly_in",  # core's "zoom" moves the camera; a real zoom changes the focal length
    "Zoom Out": "dolly_out",
    "Anti Clockwise (ACW)": "roll_ccw",
    "ClockWise (CW)": "roll_cw",
}
"""Core WanCameraEmbedding's ``camera_pose`` options and the preset that moves the same way."""


def motion_fractions(frames: int, full_motion: bool) -> Tensor:
    """Fraction of the move done at each frame: i/(n-1) reaches the whole move on the last frame;
    i/n is what core uses (its last frame stops at (n-1)/n)."""
    if frames < 1:
        raise ValueError(f"a trajectory needs at least 1 frame, got {frames}")
    index = torch.arange(frames, dtype=POSE_DTYPE)
    if not full_motion:
        return index / frames
    return index / (frames - 1) if frames > 1 else index


def preset_trajectory(
    preset: str,
    frames: int,
    amount: float = 1.0,
    *,
    full_motion: bool = True,
    intrinsics: Sequence[float] = CORE_DEFAULT_INTRINSICS,
    fps: float = WAN_FPS,
    aspect: float | None = CORE_POSE_ASPECT,
    orbit_distance: float = DEFAULT_ORBIT_DISTANCE,
) -> CameraTrajectory:
    """One of :data:`PRESETS` over ``frames`` frames, starting at the identity.

    ``amount`` scales the move like core's ``speed``: 1 means 1.5 units sideways (pan), 3 units
    along the view (dolly), 60 degrees (roll, yaw, tilt, orbit) or a 2x focal change (zoom). With
    ``full_motion=False`` the poses equal core's for the matching preset (see :data:`CORE_PRESETS`).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown camera preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if not math.isfinite(amount):
        raise ValueError(f"amount must be a finite number, got {amount}")
    progress = motion_fractions(frames, full_motion) * amount
    rotations = torch.eye(3, dtype=POSE_DTYPE).expand(frames, 3, 3)
    translations = torch.zeros(frames, 3, dtype=POSE_DTYPE)
    focal_scale = torch.ones(frames, dtype=POSE_DTYPE)
    if preset in _TRANSLATING_PRESETS:
        direction = torch.tensor(_TRANSLATING_PRESETS[preset], dtype=POSE_DTYPE)
        translations = (progress * CORE_BASE_TRANSLATION)[:, None] * direction
    elif preset in _ROTATING_PRESETS:
        axis_weights = torch.tensor(_ROTATING_PRESETS[preset], dtype=POSE_DTYPE)
        rotations = rotation_from_euler((progress * CORE_BASE_ANGLE_RAD)[:, None] * axis_weights)
    elif preset in _ZOOM_PRESETS:
        focal_scale = ZOOM_FOCAL_FACTOR ** (_ZOOM_PRESETS[preset] * progress)
    elif preset in _ORBIT_PRESETS:
        if not (math.isfinite(orbit_distance) and orbit_distance > 0):
            raise ValueError(f"orbit_distance must be > 0, got {orbit_distance}")
        angle = _ORBIT_PRESETS[preset] * progress * CORE_BASE_ANGLE_RAD
        rotations = rotation_about_y(angle)
        centre = torch.tensor([0.0, 0.0, orbit_distance], dtype=POSE_DTYPE)
        translations = centre + rotations @ -centre
    camera = torch.as_tensor(intrinsics, dtype=POSE_DTYPE).expand(frames, 4).clone()
    camera[:, :2] *= focal_scale[:, None]
    return CameraTrajectory(make_pose(rotations, translations), camera, fps, aspect)


def core_wan_trajectory(
    camera_pose: str,
    length: int,
    speed: float = 1.0,
    fx: float = 0.5,
    fy: float = 0.5,
    cx: float = 0.5,
    cy: float = 0.5,
) -> CameraTrajectory:
    """The poses core's WanCameraEmbedding builds for the same inputs.

    Core stops each move at (length-1)/length, reads its [R|T] rows as camera-to-world, and treats
    the intrinsics as belonging to 1280x720 frames; all three are reproduced here, so
    ``wan_camera_embedding(core_wan_trajectory(...), width, height)`` equals its output.
    """
    if camera_pose not in CORE_PRESETS:
        raise ValueError(f"unknown core camera_pose {camera_pose!r}; choose one of {', '.join(CORE_PRESETS)}")
    return preset_trajectory(
        CORE_PRESETS[camera_pose],
        length,
        speed,
        full_motion=False,
        intrinsics=(fx, fy, cx, cy),
        aspect=CORE_POSE_ASPECT,
    )


# --------------------------------------------------------------------------------------------
# Keyframes (RTV_CameraKeyframes).
# --------------------------------------------------------------------------------------------

EULER_ANGLES = 3
QUATERNION_COMPONENTS = 4
KEYFRAME_KEYS = ("frame", "position", "look_at", "rotation", "fov")


def _vector(value: Any, size: int, what: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a list of {size} numbers, got {value!r}") from None
    if len(numbers) != size or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{what} must be a list of {size} finite numbers, got {value!r}")
    return numbers


@dataclass(frozen=True)
class CameraKeyframe:
    """A camera at ``frame``: world ``position``; orientation from ``look_at`` (a world point) or
    ``rotation`` (quaternion w, x, y, z or euler degrees about x, y, z applied as Rz Ry Rx,
    camera-to-world) or neither (looking along +z); ``fov`` = horizontal field of view, degrees."""

    frame: int
    position: tuple[float, float, float]
    look_at: tuple[float, float, float] | None = None
    rotation: tuple[float, ...] | None = None
    fov: float | None = None

    def __post_init__(self) -> None:
        where = f"keyframe at frame {self.frame}"
        whole = isinstance(self.frame, (int, float)) and not isinstance(self.frame, bool)
        if not whole or not math.isfinite(self.frame) or int(self.frame) != self.frame or self.frame < 0:
            raise ValueError(f"keyframe frame must be a whole number >= 0, got {self.frame!r}")
        object.__setattr__(self, "frame", int(self.frame))
        object.__setattr__(self, "position", _vector(self.position, 3, f"{where}: position"))
        if self.look_at is not None and self.rotation is not None:
            raise ValueError(f"{where}: give either look_at or rotation, not both")
        if self.look_at is not None:
            object.__setattr__(self, "look_at", _vector(self.look_at, 3, f"{where}: look_at"))
        if self.rotation is not None:
            size = len(self.rotation) if isinstance(self.rotation, Sequence) else 0
            if size not in (EULER_ANGLES, QUATERNION_COMPONENTS):
                raise ValueError(
                    f"{where}: rotation must be 3 euler angles in degrees or a quaternion [w, x, y, z], "
                    f"got {self.rotation!r}"
                )
            rotation = _vector(self.rotation, size, f"{where}: rotation")
            if size == QUATERNION_COMPONENTS and math.hypot(*rotation) < SLERP_LINEAR_THRESHOLD:
                raise ValueError(
                    f"{where}: the rotation quaternion is zero; use [1, 0, 0, 0] for no rotation"
                )
            object.__setattr__(self, "rotation", rotation)
        if self.fov is not None:
            fov = _vector([self.fov], 1, f"{where}: fov")[0]
            if not 0 < fov < FULL_TURN_DEG / 2:
                raise ValueError(
                    f"{where}: fov must be between 0 and 180 degrees (exclusive), got {self.fov}"
                )
            object.__setattr__(self, "fov", fov)

    def rotation_matrix(self) -> Tensor:
        """Camera-to-world rotation [3, 3] of this keyframe."""
        if self.look_at is not None:
            position = torch.tensor(self.position, dtype=POSE_DTYPE)
            return look_at_rotation(position, torch.tensor(self.look_at, dtype=POSE_DTYPE))
        if self.rotation is None:
            return torch.eye(3, dtype=POSE_DTYPE)
        values = torch.tensor(self.rotation, dtype=POSE_DTYPE)
        if values.numel() == QUATERNION_COMPONENTS:
            return quaternion_to_matrix(values)
        return rotation_from_euler(torch.deg2rad(values))


def keyframes_from_dicts(items: Sequence[Mapping[str, Any]]) -> list[CameraKeyframe]:
    """Parse keyframes as they come from JSON (a list of objects), with errors naming the entry."""
    if isinstance(items, Mapping) or not isinstance(items, Sequence):
        raise ValueError(
            'keyframes must be a JSON list of objects, e.g. [{"frame": 0, "position": [0, 0, 0]}]'
        )
    keyframes = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"keyframe {index} must be an object with keys {', '.join(KEYFRAME_KEYS)}")
        unknown = sorted(set(item) - set(KEYFRAME_KEYS))
        if unknown:
            raise ValueError(
                f"keyframe {index}: unknown key(s) {unknown}; allowed: {', '.join(KEYFRAME_KEYS)}"
            )
        if "frame" not in item or "position" not in item:
            raise ValueError(f"keyframe {index} needs 'frame' and 'position'")
        keyframes.append(CameraKeyframe(**item))
    return keyframes


def intrinsics_from_fov(fov_deg: Tensor, aspect: float) -> Tensor:
    """Horizontal fov (degrees) [N] -> normalised (fx, fy, cx, cy) [N, 4] with square pixels and a
    centred principal point on a width/height = ``aspect`` image."""
    fx = 0.5 / torch.tan(torch.deg2rad(fov_deg) / 2)
    centre = torch.full_like(fx, 0.5)
    return torch.stack([fx, fx * aspect, centre, centre], dim=-1)


def trajectory_from_keyframes(
    keyframes: Sequence[CameraKeyframe],
    frames: int | None = None,
    *,
    aspect: float = DEFAULT_KEYFRAME_ASPECT,
    fps: float = WAN_FPS,
    default_fov_deg: float = DEFAULT_FOV_DEG,
) -> CameraTrajectory:
    """Keyframes -> one pose per frame: Catmull-Rom positions, slerp rotations (or, when every
    keyframe has ``look_at``, a look-at of the spline-interpolated target, which keeps the target
    centred along curved paths), linearly interpolated fov. Before the first and after the last
    keyframe the camera holds still. ``frames`` defaults to the last keyframe + 1."""
    if len(keyframes) == 0:
        raise ValueError('no keyframes: give at least one, e.g. [{"frame": 0, "position": [0, 0, 0]}]')
    ordered = sorted(keyframes, key=lambda key: key.frame)
    frame_numbers = [key.frame for key in ordered]
    duplicates = sorted({f for f in frame_numbers if frame_numbers.count(f) > 1})
    if duplicates:
        raise ValueError(
            f"several keyframes share frame(s) {duplicates}; give each frame at most one keyframe"
        )
    frames = frame_numbers[-1] + 1 if frames is None else frames
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if frame_numbers[-1] >= frames:
        raise ValueError(
            f"a keyframe sits at frame {frame_numbers[-1]} but the trajectory has {frames} frames"
        )
    times = torch.tensor(frame_numbers, dtype=POSE_DTYPE)
    query = torch.arange(frames, dtype=POSE_DTYPE)
    positions = catmull_rom(times, torch.tensor([key.position for key in ordered], dtype=POSE_DTYPE), query)
    if all(key.look_at is not None for key in ordered):
        targets = catmull_rom(times, torch.tensor([key.look_at for key in ordered], dtype=POSE_DTYPE), query)
        rotations = look_at_rotation(positions, targets)
    else:
        rotations = slerp_rotations(times, torch.stack([key.rotation_matrix() for key in ordered]), query)
    with_fov = [key for key in ordered if key.fov is not None]
    if with_fov:
        fov_times = torch.tensor([key.frame for key in with_fov], dtype=POSE_DTYPE)
        fov_values = torch.tensor([[key.fov] for key in with_fov], dtype=POSE_DTYPE)
        fov = linear_interpolate(fov_times, fov_values, query)[:, 0]
    else:
        fov = torch.full((frames,), default_fov_deg, dtype=POSE_DTYPE)
    return CameraTrajectory(make_pose(rotations, positions), intrinsics_from_fov(fov, aspect), fps, aspect)


# --------------------------------------------------------------------------------------------
# Other conventions: OpenGL/Blender cameras, RealEstate10K/CameraCtrl files, SV3D/SV4D orbits.
# --------------------------------------------------------------------------------------------


def opengl_to_opencv(c2w: Tensor, *, blender_world: bool = False) -> Tensor:
    """OpenGL/Blender camera-to-world [..., 4, 4] (camera x right, y up, z backward) -> OpenCV
    camera axes (x right, y down, z forward): flip the camera's y and z columns. With
    ``blender_world`` the z-up world is also turned into this module's world (up = -y)."""
    flip = torch.tensor([*OPENGL_TO_OPENCV_CAMERA, 1.0], dtype=c2w.dtype)
    converted = c2w * flip
    if blender_world:
        world = torch.eye(4, dtype=c2w.dtype)
        world[:3, :3] = torch.tensor(BLENDER_TO_OPENCV_WORLD, dtype=c2w.dtype)
        converted = world @ converted
    return converted


def opencv_to_opengl(c2w: Tensor, *, blender_world: bool = False) -> Tensor:
    """Inverse of :func:`opengl_to_opencv`."""
    converted = c2w
    if blender_world:
        world = torch.eye(4, dtype=c2w.dtype)
        world[:3, :3] = torch.tensor(BLENDER_TO_OPENCV_WORLD, dtype=c2w.dtype).T
        converted = world @ converted
    return converted * torch.tensor([*OPENGL_TO_OPENCV_CAMERA, 1.0], dtype=c2w.dtype)


@dataclass(frozen=True, eq=False)
class RealEstate10kPoses:
    """A RealEstate10K/CameraCtrl pose file: its first line (a URL, or None), per-frame timestamps
    in microseconds, and the trajectory (world-to-camera rows inverted to camera-to-world)."""

    url: str | None
    timestamps_us: tuple[float, ...]
    trajectory: CameraTrajectory


def _parse_numbers(line: str) -> list[float] | None:
    try:
        return [float(token) for token in line.split()]
    except ValueError:
        return None


def parse_realestate10k(
    text: str, *, aspect: float | None = CORE_POSE_ASPECT, default_fps: float = WAN_FPS
) -> RealEstate10kPoses:
    """Read ``timestamp fx fy cx cy 0 0 <3x4 world-to-camera, row-major>`` lines; a first line that
    is not numbers (RealEstate10K's YouTube URL) is kept as ``url``. fps is the average frame
    rate of the timestamps (``default_fps`` for a single frame). ``aspect``: the videos are 1280x720."""
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
    lines = [(number, line) for number, line in lines if line]
    url = None
    if lines and _parse_numbers(lines[0][1]) is None:
        url = lines[0][1]
        lines = lines[1:]
    if not lines:
        raise ValueError(
            "the pose file has no pose lines (expected 'timestamp fx fy cx cy 0 0' + 12 numbers each)"
        )
    rows = []
    for number, line in lines:
        values = _parse_numbers(line)
        if values is None or len(values) != REALESTATE10K_FIELDS:
            raise ValueError(
                f"pose file line {number}: expected {REALESTATE10K_FIELDS} numbers "
                "(timestamp fx fy cx cy 0 0 and a 3x4 world-to-camera matrix, row-major), "
                f"got {'text' if values is None else len(values)}"
            )
        if values[5] != 0 or values[6] != 0:
            raise ValueError(
                f"pose file line {number}: lens distortion terms are not supported (must be 0 0)"
            )
        rows.append(values)
    table = torch.tensor(rows, dtype=POSE_DTYPE)
    w2c = torch.cat(
        [
            table[:, 7:].reshape(-1, 3, 4),
            torch.tensor(HOMOGENEOUS_ROW, dtype=POSE_DTYPE).expand(len(rows), 1, 4),
        ],
        1,
    )
    check_rigid(w2c, "world-to-camera matrices of the pose file")
    timestamps = tuple(row[0] for row in rows)
    steps = table[1:, 0] - table[:-1, 0]
    if len(rows) > 1 and not bool((steps > 0).all()):
        raise ValueError("pose file timestamps must increase from line to line")
    fps = MICROSECONDS * (len(rows) - 1) / float(table[-1, 0] - table[0, 0]) if len(rows) > 1 else default_fps
    trajectory = CameraTrajectory(invert_poses(w2c), table[:, 1:5], fps, aspect)
    return RealEstate10kPoses(url, timestamps, trajectory)


def _format_timestamp(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_realestate10k(
    trajectory: CameraTrajectory,
    *,
    url: str | None = None,
    timestamps_us: Sequence[float] | None = None,
) -> str:
    """Write ``trajectory`` as a RealEstate10K/CameraCtrl pose file (world-to-camera rows, 9
    decimals). The first line is ``url`` or a comment (CameraCtrl skips the first line).
    Timestamps default to the frame times at the trajectory's fps. A file read with
    :func:`parse_realestate10k` is written back identically."""
    frames = len(trajectory)
    if timestamps_us is None:
        timestamps_us = [round(i * MICROSECONDS / trajectory.fps) for i in range(frames)]
    if len(timestamps_us) != frames:
        raise ValueError(f"{len(timestamps_us)} timestamps given for a {frames}-frame trajectory")
    w2c = invert_poses(trajectory.c2w)[:, :3, :].reshape(frames, 12)
    numbers = torch.cat([trajectory.intrinsics, torch.zeros(frames, 2, dtype=POSE_DTYPE), w2c], 1).tolist()
    lines = [url if url is not None else POSE_FILE_HEADER]
    for timestamp, row in zip(timestamps_us, numbers):
        values = " ".join(f"{value:.{REALESTATE10K_DECIMALS}f}" for value in row)
        lines.append(f"{_format_timestamp(timestamp)} {values}")
    return "\n".join(lines) + "\n"


def orbit_trajectory(
    elevations_deg: Sequence[float],
    azimuths_deg: Sequence[float],
    radius: float = DEFAULT_ORBIT_DISTANCE,
    *,
    intrinsics: Sequence[float] = CORE_DEFAULT_INTRINSICS,
    fps: float = WAN_FPS,
    aspect: float | None = CORE_POSE_ASPECT,
) -> CameraTrajectory:
    """One camera per (elevation, azimuth) on a sphere of ``radius`` around the origin, looking at
    it, upright. SV3D/Zero123 convention: elevation > 0 is above the object; azimuth 0 is the input
    view (camera at -z looking along +z); growing azimuth moves the camera to its right, i.e.
    counter-clockwise seen from above (Blender's convention, in which SV3D's training orbits are
    rendered)."""
    if len(elevations_deg) != len(azimuths_deg):
        raise ValueError(
            f"{len(elevations_deg)} elevations but {len(azimuths_deg)} azimuths; give one of each per view"
        )
    if len(elevations_deg) == 0:
        raise ValueError("an orbit needs at least one view")
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"orbit radius must be > 0, got {radius}")
    elevation = torch.deg2rad(torch.tensor(elevations_deg, dtype=POSE_DTYPE))
    azimuth = torch.deg2rad(torch.tensor(azimuths_deg, dtype=POSE_DTYPE))
    positions = radius * torch.stack(
        [
            torch.sin(azimuth) * torch.cos(elevation),
            -torch.sin(elevation),
            -torch.cos(azimuth) * torch.cos(elevation),
        ],
        dim=-1,
    )
    rotations = look_at_rotation(positions, torch.zeros_like(positions))
    return CameraTrajectory(make_pose(rotations, positions), intrinsics, fps, aspect)


def sv3d_orbit_angles(
    views: int, elevation_deg: float = 0.0, start_azimuth_deg: float = 0.0
) -> tuple[list[float], list[float]]:
    """Core SV3D_Conditioning's order: azimuth start, start + 360/(views-1), ... (the last view
    closes the circle), constant elevation. Returns (elevations, azimuths) in degrees."""
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    step = FULL_TURN_DEG / (max(views, 2) - 1)
    return [float(elevation_deg)] * views, [start_azimuth_deg + i * step for i in range(views)]


def sv4d_orbit_angles(
    views: int = SV4D_DEFAULT_VIEWS, elevation_deg: float = SV4D_DEFAULT_ELEVATION_DEG
) -> tuple[list[float], list[float]]:
    """SV4D's sampling script order: azimuths 360/views, 2*360/views, ..., 360 % 360 = 0 (the
    input view comes last), constant elevation. Returns (elevations, azimuths) in degrees."""
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    step = FULL_TURN_DEG / views
    return [float(elevation_deg)] * views, [((i + 1) * step) % FULL_TURN_DEG for i in range(views)]
