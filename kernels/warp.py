"""Backward warping and forward-backward flow consistency.

Flow convention used throughout the pack (``kernels/flow.py``, ``kernels/interpolate.py``):

* A flow field is a float tensor ``[B, 2, H, W]`` in pixels, channel 0 = x (columns, to the right),
  channel 1 = y (rows, downward).
* Pixel ``(i, j)`` (row, column) has its centre at ``x = j, y = i``: integer coordinates are pixel
  centres.
* ``flow_ab = optical_flow(a, b)`` says where each pixel of ``a`` went in ``b``:
  ``a(p) ~ b(p + flow_ab(p))``. Hence ``backward_warp(b, flow_ab) ~ a``.

Sampling uses ``torch.nn.functional.grid_sample`` with ``align_corners=False`` and the mapping
``x_norm = (2 x + 1) / W - 1``, which puts integer ``x`` exactly on pixel centres (and works for
``W = 1``). Outside the image the default ``padding_mode="border"`` repeats the edge pixel, so a
warp never introduces black; whether a sample came from outside is reported separately by
``inside_frame_mask`` and ``fb_consistency``.

``grid_sample`` forward is a gather (one output value computed by one thread), so it is
deterministic on CPU and CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Forward-backward test thresholds of Sundaram, Brox and Keutzer (ECCV 2010), also used by UnFlow:
# |F_ab(p) + F_ba(p + F_ab(p))|^2 < alpha (|F_ab|^2 + |F_ba|^2) + beta.  alpha tolerates the
# error growing with motion; beta (px^2) is the floor for small motions.
FB_ALPHA = 0.01
FB_BETA = 0.5
# Photometric test: mean absolute colour difference (images in [0, 1], averaged over channels)
# between ``a`` and ``b`` warped back, after removing the frame-wide mean difference per channel
# (so a global exposure or colour drift does not count). About 13 grey levels: well above
# resampling error on textured content, well below the difference between unrelated textures.
PHOTOMETRIC_THRESHOLD = 0.05


def pixel_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixel-centre coordinates ``[1, 2, H, W]`` (x then y), the identity flow's positions."""
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=0).unsqueeze(0)


def normalized_sampling_grid(positions: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel positions ``[B, 2, *S]`` -> ``grid_sample`` grid ``[B, *S, 2]`` (align_corners=False)."""
    x_norm = (2.0 * positions[:, 0] + 1.0) / width - 1.0
    y_norm = (2.0 * positions[:, 1] + 1.0) / height - 1.0
    return torch.stack((x_norm, y_norm), dim=-1)


def sample_at(
    image: torch.Tensor, positions: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border"
) -> torch.Tensor:
    """Sample ``image [B, C, H, W]`` at pixel positions ``[B, 2, h, w]`` (x then y) -> ``[B, C, h, w]``."""
    height, width = image.shape[-2:]
    grid = normalized_sampling_grid(positions.to(image.dtype), height, width)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def backward_warp(
    image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border"
) -> torch.Tensor:
    """Return ``image(p + flow(p))``: pull ``image`` back along ``flow`` (so ``warp(b, flow(a, b)) ~ a``).

    ``image`` is ``[B, C, H, W]``; ``flow`` is ``[B, 2, H, W]`` (or ``[1, 2, H, W]``, broadcast).
    """
    if flow.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"flow {tuple(flow.shape)} and image {tuple(image.shape)} differ in size")
    height, width = image.shape[-2:]
    positions = pixel_grid(height, width, flow.device, flow.dtype) + flow
    if positions.shape[0] != image.shape[0]:
        positions = positions.expand(image.shape[0], -1, -1, -1)
    return sample_at(image, positions, mode=mode, padding_mode=padding_mode)


def inside_frame_mask(flow: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` bool: ``p + flow(p)`` lies within the frame (pixel centres +- half a pixel)."""
    height, width = flow.shape[-2:]
    positions = pixel_grid(height, width, flow.device, flow.dtype) + flow
    inside_x = (positions[:, 0] >= -0.5) & (positions[:, 0] <= width - 0.5)
    inside_y = (positions[:, 1] >= -0.5) & (positions[:, 1] <= height - 0.5)
    return (inside_x & inside_y).unsqueeze(1)


def fb_consistency_error(flow_ab: torch.Tensor, flow_ba: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Round-trip error ``|F_ab(p) + F_ba(p + F_ab(p))|^2`` and the motion energy that scales its tolerance.

    Returns ``(error, motion)`` both ``[B, 1, H, W]`` in px^2, where
    ``motion = |F_ab(p)|^2 + |F_ba(p + F_ab(p))|^2``.
    """
    flow_ba_at_target = backward_warp(flow_ba, flow_ab)
    round_trip = flow_ab + flow_ba_at_target
    error = round_trip.square().sum(dim=1, keepdim=True)
    motion = flow_ab.square().sum(dim=1, keepdim=True) + flow_ba_at_target.square().sum(dim=1, keepdim=True)
    return error, motion


def fb_consistency(
    flow_ab: torch.Tensor,
    flow_ba: torch.Tensor,
    alpha: float = FB_ALPHA,
    beta: float = FB_BETA,
    require_inside: bool = True,
) -> torch.Tensor:
    """Validity of ``flow_ab`` by the forward-backward check: ``[B, 1, H, W]`` bool, True = reliable.

    A pixel of ``a`` that is occluded in ``b`` (covered by something else, or gone out of the
    frame) has no true match, so following ``F_ab`` then ``F_ba`` does not come back to where it
    started. ``require_inside`` also marks pixels whose match lies outside the frame as invalid,
    because ``F_ba`` there is a border extrapolation, not a measurement.
    """
    error, motion = fb_consistency_error(flow_ab, flow_ba)
    valid = error <= alpha * motion + beta
    if require_inside:
        valid = valid & inside_frame_mask(flow_ab)
    return valid


def photometric_consistency(
    a: torch.Tensor, b: torch.Tensor, flow_ab: torch.Tensor, threshold: float = PHOTOMETRIC_THRESHOLD
) -> torch.Tensor:
    """``[B, 1, H, W]`` bool: ``a(p)`` and ``b(p + F_ab(p))`` agree in colour (within ``threshold``).

    Catches what the forward-backward test cannot: an occluded pixel that adopted the occluder's
    motion lands on the occluder in ``b`` and comes back consistently, but shows a different colour.
    """
    difference = a.float() - backward_warp(b.float(), flow_ab)
    difference = difference - difference.mean(dim=(2, 3), keepdim=True)
    return difference.abs().mean(dim=1, keepdim=True) <= threshold


def flow_validity(
    a: torch.Tensor,
    b: torch.Tensor,
    flow_ab: torch.Tensor,
    flow_ba: torch.Tensor,
    photometric_threshold: float | None = PHOTOMETRIC_THRESHOLD,
) -> torch.Tensor:
    """Where ``flow_ab`` can be trusted: forward-backward consistent, inside the frame and (unless
    ``photometric_threshold`` is None) photometrically consistent. ``[B, 1, H, W]`` bool."""
    valid = fb_consistency(flow_ab, flow_ba)
    if photometric_threshold is not None:
        valid = valid & photometric_consistency(a, b, flow_ab, photometric_threshold)
    return valid
