"""Plücker ray embeddings of camera trajectories, and core's WAN_CAMERA_EMBEDDING layout.

Per pixel (u, v) of a frame, with pixel centres at +0.5 (the CameraCtrl convention, research/
algorithms.md 4.3):

    d_cam = normalize(((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1))    OpenCV camera axes
    d     = R_c2w d_cam,   o = t_c2w,   plücker = [o x d, d]            6 channels, moment first

with poses relative to the first frame of the trajectory given (so a slice of a long trajectory
embeds the way core embeds a whole clip). Rays are computed at whatever size is asked: the video's
pixel size for Wan's camera adapter, or the latent size (width / 8, height / 8), whose pixel
centres are the centres of 8x8 blocks.

Wan layout (core ``WanCameraEmbedding``, algorithms.md 4.4): frame 0 is repeated 4 times so that
the N = 4k + 1 frames fill k + 1 groups of 4, and group f, plücker channel c, frame-in-group s go
to channel 4 c + s: ``[1, 24, (N + 3) / 4, H, W]`` float32 at full pixel resolution (Wan's adapter
pixel-unshuffles it by 8 itself).

Numerics follow core's order of operations so that the same poses give the same float32 tensor:
intrinsics and relative poses in float64, cast to float32, rays in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .camera import CameraTrajectory

PLUCKER_CHANNELS = 6
PIXEL_CENTRE_OFFSET = 0.5
WAN_FRAMES_PER_LATENT = 4
"""Wan's VAE packs 4 pixel frames into one latent frame (after a first frame of its own)."""
WAN_CAMERA_CHANNELS = PLUCKER_CHANNELS * WAN_FRAMES_PER_LATENT
EMBEDDING_DTYPE = torch.float32
"""Core emits float32 camera embeddings; Wan's adapter casts them to the model dtype itself."""
RAY_CHUNK_ELEMENTS = 1 << 24
"""Numbers per ray intermediate when filling the Wan layout frame group by frame group (64 MiB in
float32): peak memory is the output plus a few of these, not several copies of the output."""


def _check_size(width: int, height: int) -> None:
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        raise ValueError(f"width and height must be whole numbers >= 1, got {width} x {height}")


def check_wan_length(frames: int) -> None:
    """Wan videos have 4k + 1 frames; core's layout silently needs it, we say so."""
    if frames < 1 or (frames - 1) % WAN_FRAMES_PER_LATENT:
        below = max(1, frames - (frames - 1) % WAN_FRAMES_PER_LATENT)
        raise ValueError(
            f"Wan camera embeddings need 4k+1 frames (1, 5, 9, ..., 81); got {frames}: "
            f"use {below} or {below + WAN_FRAMES_PER_LATENT}"
        )


def wan_latent_frames(frames: int) -> int:
    """Latent frames of a 4k + 1 frame video: (frames + 3) / 4."""
    check_wan_length(frames)
    return (frames + WAN_FRAMES_PER_LATENT - 1) // WAN_FRAMES_PER_LATENT


def pixel_intrinsics(intrinsics: Tensor, width: int, height: int, source_aspect: float | None) -> Tensor:
    """Normalised (fx, fy, cx, cy) [N, 4] -> pixels [N, 4] for a width x height image.

    When the intrinsics were measured on frames of another aspect (``source_aspect`` = width /
    height), the source is taken as resized to cover the target and centre-cropped: the focal along
    the cropped axis grows (core's rule, written for 1280x720 sources; pixel aspect is preserved).
    The principal point is not moved, which is right for centred cx, cy, as core also assumes.
    """
    _check_size(width, height)
    fx, fy, cx, cy = (column.clone() for column in intrinsics.unbind(-1))
    if source_aspect is not None:
        if source_aspect > width / height:
            fx = (height * source_aspect) * fx / width
        else:
            fy = (width / source_aspect) * fy / height
    return torch.stack([fx * width, fy * height, cx * width, cy * height], dim=-1)


def camera_ray_directions(pixel_k: Tensor, height: int, width: int) -> Tensor:
    """Unit view directions [N, H*W, 3] in camera axes through every pixel centre, row-major,
    for pixel intrinsics [N, 4]; dtype and device follow ``pixel_k``."""
    options = {"dtype": pixel_k.dtype, "device": pixel_k.device}
    rows = torch.arange(height, **options) + PIXEL_CENTRE_OFFSET
    columns = torch.arange(width, **options) + PIXEL_CENTRE_OFFSET
    v, u = torch.meshgrid(rows, columns, indexing="ij")
    fx, fy, cx, cy = (value[:, None] for value in pixel_k.unbind(-1))
    x = (u.reshape(1, -1) - cx) / fx
    y = (v.reshape(1, -1) - cy) / fy
    directions = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    return directions / directions.norm(dim=-1, keepdim=True)


def plucker_rays(c2w: Tensor, pixel_k: Tensor, height: int, width: int) -> Tensor:
    """Plücker rays [N, H, W, 6] = [o x d, d] of cameras c2w [N, 4, 4] with pixel intrinsics
    [N, 4]; computed in the dtype/device of ``c2w``. Poses are used as given (no rebasing)."""
    _check_size(width, height)
    frames = c2w.shape[0]
    if pixel_k.shape != (frames, 4):
        raise ValueError(
            f"need one (fx, fy, cx, cy) row per pose: {frames} poses, intrinsics {list(pixel_k.shape)}"
        )
    directions = camera_ray_directions(pixel_k.to(c2w), height, width)
    rays_d = directions @ c2w[:, :3, :3].transpose(-1, -2)
    rays_o = c2w[:, None, :3, 3].expand_as(rays_d)
    moment = torch.linalg.cross(rays_o, rays_d, dim=-1)
    return torch.cat([moment, rays_d], dim=-1).reshape(frames, height, width, PLUCKER_CHANNELS)


def _embedding_inputs(
    trajectory: CameraTrajectory, width: int, height: int, relative: bool, dtype: torch.dtype, device
) -> tuple[Tensor, Tensor]:
    poses = trajectory.rebase(0).c2w if relative else trajectory.c2w
    pixel_k = pixel_intrinsics(trajectory.intrinsics, width, height, trajectory.aspect)
    return poses.to(device=device, dtype=dtype), pixel_k.to(device=device, dtype=dtype)


def trajectory_plucker(
    trajectory: CameraTrajectory,
    width: int,
    height: int,
    *,
    relative: bool = True,
    dtype: torch.dtype = EMBEDDING_DTYPE,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Plücker rays [N, H, W, 6] of a trajectory at width x height (pixel or latent size), relative
    to its first frame unless ``relative=False``; intrinsics aspect-corrected as in
    :func:`pixel_intrinsics`."""
    poses, pixel_k = _embedding_inputs(trajectory, width, height, relative, dtype, device)
    return plucker_rays(poses, pixel_k, height, width)


def wan_camera_layout(plucker: Tensor) -> Tensor:
    """[N, H, W, 6] (N = 4k + 1) -> [1, 24, k + 1, H, W]: frame 0 four times, then channel
    4 * plucker_channel + frame_in_group. The reference meaning of the layout."""
    frames, height, width, channels = plucker.shape
    if channels != PLUCKER_CHANNELS:
        raise ValueError(
            f"expected {PLUCKER_CHANNELS} Plücker channels last, got shape {list(plucker.shape)}"
        )
    latent_frames = wan_latent_frames(frames)
    by_channel = plucker.permute(3, 0, 1, 2)
    padded = torch.cat(
        [by_channel[:, :1].expand(-1, WAN_FRAMES_PER_LATENT, -1, -1), by_channel[:, 1:]], dim=1
    )
    grouped = padded.unflatten(1, (latent_frames, WAN_FRAMES_PER_LATENT)).transpose(1, 2)
    return grouped.reshape(1, WAN_CAMERA_CHANNELS, latent_frames, height, width)


def wan_camera_embedding(
    trajectory: CameraTrajectory,
    width: int,
    height: int,
    *,
    relative: bool = True,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Core's WAN_CAMERA_EMBEDDING [1, 24, (N + 3) / 4, H, W] float32 for a 4k + 1 frame
    trajectory at the video's pixel size; equal to ``wan_camera_layout(trajectory_plucker(...))``
    but filled a few frames at a time, so memory peaks near the output size."""
    _check_size(width, height)
    frames = len(trajectory)
    latent_frames = wan_latent_frames(frames)
    poses, pixel_k = _embedding_inputs(trajectory, width, height, relative, EMBEDDING_DTYPE, device)
    output = torch.empty(
        1, WAN_CAMERA_CHANNELS, latent_frames, height, width, dtype=EMBEDDING_DTYPE, device=device
    )
    # channel 4 c + s of latent frame f <-> slots[c, s, f]; pixel frame p >= 1 sits at slot p + 3.
    slots = output[0].view(PLUCKER_CHANNELS, WAN_FRAMES_PER_LATENT, latent_frames, height, width)
    first = plucker_rays(poses[:1], pixel_k[:1], height, width)[0].permute(2, 0, 1)
    slots[:, :, 0] = first[:, None]
    chunk = max(1, RAY_CHUNK_ELEMENTS // (height * width * PLUCKER_CHANNELS))
    for start in range(1, frames, chunk):
        stop = min(frames, start + chunk)
        rays = plucker_rays(poses[start:stop], pixel_k[start:stop], height, width).permute(3, 0, 1, 2)
        position = torch.arange(start, stop, device=device) + WAN_FRAMES_PER_LATENT - 1
        slots[:, position % WAN_FRAMES_PER_LATENT, position // WAN_FRAMES_PER_LATENT] = rays
    return output
