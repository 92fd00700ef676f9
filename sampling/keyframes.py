"""Keyframes, then in-betweens (SV4D's anchor-then-dense sampling brought to Wan in ComfyUI).

1. ``plan_keyframes``: keyframe times every ``stride`` frames from 0 to the last frame (the last
   gap may be shorter; a model fill needs every window 4k+1 frames long, so the plan snaps and says
   so).
2. ``HybridKeyframeSampler``: the anchor pass samples all keyframes together as one Wan latent
   sequence whose frames sit at the keyframes' own temporal RoPE positions (``t / 4`` in latent
   units, the pack's global time index), so the model sees them as one scene at the right distances
   in time; each anchor latent is decoded on its own into one keyframe. An optional
   ``CAMERA_TRAJECTORY`` is sampled at the keyframe times and, for a Fun-Camera model, given as its
   Plücker camera conditioning (every anchor latent carries the pose of its keyframe).
3. Each gap is then filled:

   * ``flow``: weight-free interpolation (``fill_by_interpolation``, kernels/interpolate.py);
   * ``model``: one sampling pass per gap with core ``WanFirstLastFrameToVideo`` semantics (left
     keyframe as start image, right keyframe as end image; FLF2V / I2V-architecture models);
   * ``model_alternating``: the SV4D dense pass: one window per gap whose conditioning alternates
     across denoising steps between the left keyframe as start image (frames in order) and the right
     keyframe as start image (frames in reverse order), so both ends stay consistent with the
     anchors (I2V-architecture models).

   The keyframes themselves are kept exactly; a model fill contributes only the frames between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..kernels.camera import CameraTrajectory
from ..kernels.flow import FlowParams
from ..kernels.interpolate import interpolate_from_flows, linear_blend
from ..kernels.seams import flows_at

TEMPORAL_STRIDE = 4  # Wan VAE: pixel frames per latent after the first
INTERPOLATION_METHODS = ("flow", "blend")
FILL_METHODS = ("flow", "model", "model_alternating")
DEFAULT_PAIRS_PER_BATCH = 4
log = logging.getLogger("RealtimeVideo")

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------------
# In-between counts and the interpolation fill
# --------------------------------------------------------------------------------------------------


def gap_counts(keyframes: int, frames_between: int = 1, multiplier: int = 0, per_gap: str = "") -> list[int]:
    """In-between frames for each of the ``keyframes - 1`` gaps.

    ``per_gap`` (comma-separated, e.g. "3, 1, 0") wins when given; else ``multiplier`` > 0 gives
    ``multiplier - 1`` per gap (the frame rate times ``multiplier``); else ``frames_between``.
    """
    gaps = max(keyframes - 1, 0)
    if per_gap.strip():
        try:
            counts = [int(part) for part in per_gap.replace(";", ",").split(",") if part.strip()]
        except ValueError as error:
            raise ValueError(
                f"[RTV] frames_per_gap must be whole numbers separated by commas, e.g. '3, 1, 0': {error}"
            ) from None
        if len(counts) != gaps or any(c < 0 for c in counts):
            raise ValueError(
                f"[RTV] frames_per_gap lists {len(counts)} counts; {keyframes} keyframes have {gaps} "
                "gaps: give one count >= 0 per gap, or leave it empty."
            )
        return counts
    if multiplier > 0:
        return [multiplier - 1] * gaps
    if frames_between < 0:
        raise ValueError(f"[RTV] frames_between must be >= 0, got {frames_between}")
    return [frames_between] * gaps


def gap_times(count: int) -> list[float]:
    """Times of ``count`` evenly spaced in-betweens of a gap, strictly between 0 and 1."""
    return [(i + 1) / (count + 1) for i in range(count)]


def _batches(counts: Sequence[int], pairs_per_batch: int) -> list[tuple[int, int]]:
    """[start, stop) runs of consecutive gaps with the same count (one ``times`` per call), each at
    most ``pairs_per_batch`` gaps; gaps without in-betweens are skipped."""
    runs, start = [], 0
    while start < len(counts):
        stop = start + 1
        while stop < len(counts) and counts[stop] == counts[start] and stop - start < pairs_per_batch:
            stop += 1
        if counts[start] > 0:
            runs.append((start, stop))
        start = stop
    return runs


def fill_by_interpolation(
    keyframes: torch.Tensor,
    counts: Sequence[int],
    method: str = "flow",
    pairs_per_batch: int = DEFAULT_PAIRS_PER_BATCH,
    flow_max_side: int = 0,
    device: torch.device | None = None,
    params: FlowParams | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """The video ``k0, in-betweens, k1, ..., k_last`` from keyframes ``[K, C, H, W]``: exactly
    ``K + sum(counts)`` frames on the keyframes' device. Gaps are processed ``pairs_per_batch`` at a
    time on ``device`` (flow and in-betweens of a batch live there, then move back)."""
    if method not in INTERPOLATION_METHODS:
        raise ValueError(f"[RTV] method must be one of {INTERPOLATION_METHODS}, not {method!r}")
    if len(counts) != max(keyframes.shape[0] - 1, 0):
        raise ValueError(f"need one count per gap: {keyframes.shape[0]} keyframes, {len(counts)} counts")
    device = device or keyframes.device
    filled: dict[int, torch.Tensor] = {}
    runs = _batches(counts, max(1, pairs_per_batch))
    for index, (start, stop) in enumerate(runs):
        a = keyframes[start:stop].to(device)
        b = keyframes[start + 1 : stop + 1].to(device)
        times = gap_times(counts[start])
        if method == "blend":
            between = linear_blend(a.float(), b.float(), times).to(a.dtype)
        else:
            flows = flows_at(torch.cat((a, b)), torch.cat((b, a)), flow_max_side, params)
            between = interpolate_from_flows(a, b, flows[: a.shape[0]], flows[a.shape[0] :], times)
        for offset in range(stop - start):
            filled[start + offset] = between[offset].to(keyframes.device)
        if progress is not None:
            progress(index + 1, len(runs))
    pieces = []
    for gap in range(len(counts)):
        pieces.append(keyframes[gap : gap + 1])
        if gap in filled:
            pieces.append(filled[gap])
    pieces.append(keyframes[-1:])
    return torch.cat(pieces)


# --------------------------------------------------------------------------------------------------
# The keyframe plan
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyframePlan:
    """Keyframe frame indices (first 0, last ``total_frames - 1``) and the in-betweens per gap."""

    total_frames: int
    stride: int
    times: tuple[int, ...]
    adjustments: tuple[str, ...] = field(default=())

    @property
    def gaps(self) -> list[int]:
        return [b - a - 1 for a, b in zip(self.times, self.times[1:])]

    @property
    def latent_positions(self) -> torch.Tensor:
        """Temporal RoPE position of each keyframe in Wan latent units (pixel frame / 4)."""
        return torch.tensor(self.times, dtype=torch.float32) / TEMPORAL_STRIDE

    def describe(self) -> str:
        head = (
            f"{len(self.times)} keyframes every {self.stride} frames over {self.total_frames} frames "
            f"(at {', '.join(map(str, self.times))})"
        )
        return head + "".join(f"; {a}" for a in self.adjustments)


def plan_keyframes(total_frames: int, stride: int, fill: str = "flow") -> KeyframePlan:
    """Keyframes at 0, stride, 2 stride, ... and at the last frame.

    A model fill samples each gap as a Wan window of ``gap + 2`` frames, which must be 4k+1: the
    stride is rounded to a multiple of 4 and the length up to a multiple of 4 plus 1 (the plan says
    what changed). A flow fill takes any stride and length.
    """
    if fill not in FILL_METHODS:
        raise ValueError(f"[RTV] inbetween_method must be one of {FILL_METHODS}, not {fill!r}")
    if total_frames < 2 or stride < 1:
        raise ValueError(
            f"[RTV] need total_frames >= 2 and keyframe_stride >= 1, got {total_frames}, {stride}"
        )
    adjustments = []
    if fill != "flow":
        snapped = max(TEMPORAL_STRIDE, TEMPORAL_STRIDE * round(stride / TEMPORAL_STRIDE))
        if snapped != stride:
            adjustments.append(f"keyframe_stride {stride} -> {snapped} (model fill: windows of 4k+1 frames)")
            stride = snapped
        length = TEMPORAL_STRIDE * -(-(total_frames - 1) // TEMPORAL_STRIDE) + 1
        if length != total_frames:
            adjustments.append(f"total_frames {total_frames} -> {length} (model fill: 4k+1 frames)")
            total_frames = length
    if stride >= total_frames:
        adjustments.append(f"keyframe_stride {stride} covers the whole video: keyframes at the ends only")
    times = list(range(0, total_frames - 1, stride)) + [total_frames - 1]
    return KeyframePlan(total_frames, stride, tuple(times), tuple(adjustments))


# --------------------------------------------------------------------------------------------------
# Camera at the keyframes
# --------------------------------------------------------------------------------------------------


def keyframe_trajectory(trajectory: CameraTrajectory, plan: KeyframePlan) -> tuple[CameraTrajectory, str]:
    """The trajectory's poses at the keyframe times (one pose per keyframe) and a note. A trajectory
    of another length than the video is first resampled to it (same move, ``resample``)."""
    note = ""
    if len(trajectory) != plan.total_frames:
        note = f"trajectory resampled from {len(trajectory)} to {plan.total_frames} frames"
        trajectory = trajectory.resample(plan.total_frames)
    index = torch.tensor(plan.times)
    return CameraTrajectory(
        trajectory.c2w[index], trajectory.intrinsics[index], trajectory.fps, trajectory.aspect
    ), note


def anchor_camera_trajectory(keyframes: CameraTrajectory) -> CameraTrajectory:
    """Per pixel frame of the anchor latent sequence: keyframe 0's pose for frame 0, then each later
    keyframe's pose for the 4 frames its latent stands for, so that the Wan camera layout gives every
    anchor latent exactly its keyframe's pose."""
    index = torch.tensor([0] + [k for k in range(1, len(keyframes)) for _ in range(TEMPORAL_STRIDE)])
    return CameraTrajectory(
        keyframes.c2w[index], keyframes.intrinsics[index], keyframes.fps, keyframes.aspect
    )
