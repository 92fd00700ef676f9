"""Weight-free frame interpolation: bidirectional flow, forward-splatted intermediate flows,
occlusion-aware blending.

For frames ``a`` (t = 0) and ``b`` (t = 1) and a time t in [0, 1]:

1. ``F_ab = optical_flow(a, b)``, ``F_ba = optical_flow(b, a)`` and their forward-backward
   validity (``kernels/warp.flow_validity``: forward-backward and photometric consistency): a pixel
   of ``a`` that fails is occluded in ``b`` (or leaves the frame), and vice versa.
2. ``splat_intermediate_flow``: every pixel p of ``a`` travels on a straight line and is at
   ``p + t F_ab(p)`` at time t. It is splatted to the 4 pixels around that point; where several
   land on one pixel, a z-buffer keeps the one seen in both frames first (a pixel visible in
   ``a`` and ``b`` is in front of one that is about to be covered), then the nearest. The winner
   gives ``F_t->a(q) = -t F_ab(p)``. The same from ``b`` with ``1 - t`` gives ``F_t->b``. Unlike
   the linear approximation of Super SloMo (which reads the flow at q instead of at the pixel
   that actually arrives at q), this puts a moving object's motion where the object is at time t.
   The z-buffer is a ``scatter_reduce(amax)`` of integer keys: a max does not depend on the order
   of the atomic updates, so the result is deterministic on CUDA too.
3. Pixels nothing lands on (disocclusions, content entering the frame) get a flow by push-pull
   filling from their neighbours.
4. ``I_t = [(1-t) V_a a(q + F_t->a) + t V_b b(q + F_t->b)] / [(1-t) V_a + t V_b]`` with
   visibility V = 1 for a source seen in both frames, ``OCCLUDED_WEIGHT`` for one seen only in its
   own frame and ``HOLE_WEIGHT`` where the flow was filled in. So a region seen in one frame only
   comes from that frame, and where both sides are unsure the result falls back to the plain
   time-weighted blend of the two warps.
5. A pair whose flow is trustworthy on less than ``MIN_VALID_FRACTION`` of either frame (a scene
   cut, unrelated keyframes) is crossfaded, ``(1 - t) a + t b``, rather than warped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .flow import FlowParams, bidirectional_flow
from .warp import PHOTOMETRIC_THRESHOLD, backward_warp, flow_validity, pixel_grid

# Relative blend weight of a source pixel that is occluded in the other frame: it wins only
# where no pixel seen in both frames arrives (the region it is the sole witness of).
OCCLUDED_WEIGHT = 1e-2
# Relative blend weight of a hole-filled intermediate flow: a guess, used where both sides guess.
HOLE_WEIGHT = 1e-4
# A pair where less than this fraction of either frame has a trustworthy flow is not one scene in
# motion (a cut, a flash, unrelated keyframes): it is crossfaded instead of warped.
MIN_VALID_FRACTION = 0.25
# Z-buffer key layout (int64), most significant first:
# [visible in both frames: 1 bit][bilinear weight: 16 bits][source index: 32 bits].
_INDEX_BITS = 32
_WEIGHT_BITS = 16
_WEIGHT_LEVELS = (1 << _WEIGHT_BITS) - 1
_VALID_SHIFT = _INDEX_BITS + _WEIGHT_BITS
_INDEX_MASK = (1 << _INDEX_BITS) - 1


def _as_times(times: float | Sequence[float] | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(times, dtype=torch.float32, device=device).reshape(-1)
    if t.numel() == 0:
        raise ValueError("times must contain at least one value in [0, 1]")
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError(f"times must lie in [0, 1], got {t.tolist()}")
    return t


def splat_intermediate_flow(
    flow_0to1: torch.Tensor, visible_0: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward-splat frame 0's motion to time ``t``: ``(flow_t_to_0, source_visible, covered)``.

    ``flow_0to1 [N, 2, H, W]`` with ``frame0(p) ~ frame1(p + flow(p))``; ``visible_0 [N, 1, H, W]``
    bool (the forward-backward validity of that flow); ``t [N]``. Returns ``flow_t_to_0`` with
    ``frame_t(q) ~ frame0(q + flow_t_to_0(q))``, whether the pixel that won q is seen in both
    frames, and whether any pixel landed on q at all (``flow_t_to_0`` is 0 where not).
    """
    if flow_0to1.shape[1] != 2 or flow_0to1.dim() != 4:
        raise ValueError(f"flow must be [N, 2, H, W], got {tuple(flow_0to1.shape)}")
    count, _, height, width = flow_0to1.shape
    if height * width > _INDEX_MASK:
        raise ValueError(f"frames of {height}x{width} pixels exceed the splatting index range")
    device = flow_0to1.device
    t = t.to(device=device, dtype=flow_0to1.dtype).view(-1, 1, 1, 1)
    landing = pixel_grid(height, width, device, flow_0to1.dtype) + t * flow_0to1
    base = torch.floor(landing)
    frac = landing - base
    base = base.long()

    source_index = torch.arange(height * width, device=device, dtype=torch.int64).view(1, 1, height, width)
    payload = (visible_0.long() << _VALID_SHIFT) | source_index
    keys, targets = [], []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        weight_x = frac[:, 0:1] if dx else 1.0 - frac[:, 0:1]
        weight_y = frac[:, 1:2] if dy else 1.0 - frac[:, 1:2]
        quantised = torch.round(weight_x * weight_y * _WEIGHT_LEVELS).long()
        x = base[:, 0:1] + dx
        y = base[:, 1:2] + dy
        # Corners outside the frame, or that the landing point does not touch, go to a dummy slot
        # past the end (a zero-weight corner must not count as covered).
        touched = (x >= 0) & (x < width) & (y >= 0) & (y < height) & (quantised > 0)
        targets.append(torch.where(touched, y * width + x, height * width))
        keys.append(payload | (quantised << _INDEX_BITS))
    keys = torch.cat(keys, dim=1).flatten(1)
    targets = torch.cat(targets, dim=1).flatten(1)
    zbuffer = torch.full((count, height * width + 1), -1, dtype=torch.int64, device=device)
    zbuffer.scatter_reduce_(1, targets, keys, reduce="amax", include_self=True)
    winner = zbuffer[:, : height * width]

    covered = winner >= 0
    winner_index = torch.where(covered, winner & _INDEX_MASK, 0)
    source_visible = covered & (((winner >> _VALID_SHIFT) & 1) == 1)
    source_flow = torch.gather(flow_0to1.flatten(2), 2, winner_index.unsqueeze(1).expand(-1, 2, -1))
    flow_t_to_0 = torch.where(covered.unsqueeze(1), -t.view(-1, 1, 1) * source_flow, 0.0)
    shape = (count, 1, height, width)
    return flow_t_to_0.view(count, 2, height, width), source_visible.view(shape), covered.view(shape)


def push_pull_fill(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill ``values [N, C, H, W]`` where ``known [N, 1, H, W]`` is False from the known pixels around.

    Push: average known values into a coarser level (2x2 means of known pixels only), recursively
    until every coarse pixel has data. Pull: each unknown pixel takes the bilinear upsampling of
    the level below. Smooth, local, deterministic; a frame with nothing known is filled with 0.
    """
    height, width = values.shape[-2:]
    if bool(known.all()):
        return values
    weight = known.to(values.dtype)
    if height == 1 and width == 1:
        return values * weight
    numerator = F.avg_pool2d(values * weight, 2, ceil_mode=True)
    denominator = F.avg_pool2d(weight, 2, ceil_mode=True)
    coarse_known = denominator > 0
    coarse = numerator / denominator.clamp_min(torch.finfo(values.dtype).tiny)
    coarse = push_pull_fill(torch.where(coarse_known, coarse, 0.0), coarse_known)
    pulled = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
    return torch.where(known, values, pulled[..., :height, :width])


def visibility_weight(source_visible: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """Blend confidence of one side: 1 if its source is seen in both frames, OCCLUDED_WEIGHT if only
    in its own frame, HOLE_WEIGHT where the intermediate flow was filled in."""
    confident = torch.where(source_visible, 1.0, OCCLUDED_WEIGHT)
    return torch.where(covered, confident, HOLE_WEIGHT)


def interpolate_from_flows(
    a: torch.Tensor,
    b: torch.Tensor,
    flow_ab: torch.Tensor,
    flow_ba: torch.Tensor,
    times: float | Sequence[float] | torch.Tensor,
    photometric_threshold: float | None = PHOTOMETRIC_THRESHOLD,
) -> torch.Tensor:
    """In-between frames of ``a [B, C, H, W]`` (t = 0) and ``b`` (t = 1) from their two flows.

    Returns ``[B, T, C, H, W]``, one frame per value in ``times``; t = 0 and t = 1 give ``a`` and
    ``b`` exactly.
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"frames must be equal-shaped [B, C, H, W], got {tuple(a.shape)}, {tuple(b.shape)}")
    t = _as_times(times, a.device)
    batch, steps = a.shape[0], t.numel()
    valid_a = flow_validity(a, b, flow_ab, flow_ba, photometric_threshold)
    valid_b = flow_validity(b, a, flow_ba, flow_ab, photometric_threshold)

    def per_time(x: torch.Tensor) -> torch.Tensor:
        """[B, ...] -> [B * T, ...] (pair-major, time-minor)."""
        return x.repeat_interleave(steps, dim=0)

    t_n = t.repeat(batch)
    flow_t_a, visible_a, covered_a = splat_intermediate_flow(per_time(flow_ab), per_time(valid_a), t_n)
    flow_t_b, visible_b, covered_b = splat_intermediate_flow(per_time(flow_ba), per_time(valid_b), 1.0 - t_n)
    flow_t_a = push_pull_fill(flow_t_a, covered_a)
    flow_t_b = push_pull_fill(flow_t_b, covered_b)

    frames_a, frames_b = per_time(a).float(), per_time(b).float()
    from_a = backward_warp(frames_a, flow_t_a)
    from_b = backward_warp(frames_b, flow_t_b)
    t_col = t_n.view(-1, 1, 1, 1)
    weight_a = (1.0 - t_col) * visibility_weight(visible_a, covered_a)
    weight_b = t_col * visibility_weight(visible_b, covered_b)
    blended = (weight_a * from_a + weight_b * from_b) / (weight_a + weight_b)
    valid_fraction = torch.minimum(valid_a.float().mean(dim=(1, 2, 3)), valid_b.float().mean(dim=(1, 2, 3)))
    is_cut = per_time(valid_fraction < MIN_VALID_FRACTION).view(-1, 1, 1, 1)
    blended = torch.where(is_cut, (1.0 - t_col) * frames_a + t_col * frames_b, blended)
    # Exact end points: no resampling blur at t = 0 or 1.
    blended = torch.where(t_col == 0.0, frames_a, torch.where(t_col == 1.0, frames_b, blended))
    return blended.view(batch, steps, *a.shape[1:]).to(a.dtype)


def interpolate_frames(
    a: torch.Tensor,
    b: torch.Tensor,
    times: float | Sequence[float] | torch.Tensor,
    params: FlowParams | None = None,
) -> torch.Tensor:
    """Flow-based in-betweens of each pair ``(a[i], b[i])`` at every t in ``times``: ``[B, T, C, H, W]``."""
    flow_ab, flow_ba = bidirectional_flow(a, b, params)
    return interpolate_from_flows(a, b, flow_ab, flow_ba, times)


def linear_blend(
    a: torch.Tensor, b: torch.Tensor, times: float | Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """The no-motion baseline ``(1 - t) a + t b``: ``[B, T, C, H, W]``."""
    t = _as_times(times, a.device).view(1, -1, 1, 1, 1)
    return (1.0 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)
