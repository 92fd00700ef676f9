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
from .chunk_plan import LATENT_CHANNELS, SPATIAL_STRIDE, TEMPORAL_STRIDE

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
        snapped = max(TEMPORAL_STRIDE, TEMPORAL_STRIDE * int(stride / TEMPORAL_STRIDE + 0.5))  # ties up
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


# --------------------------------------------------------------------------------------------------
# The hybrid sampler (ComfyUI's samplers; imported lazily so the plan above stays testable alone)
# --------------------------------------------------------------------------------------------------


@dataclass
class HybridSettings:
    width: int
    height: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    seed: int
    fill: str = "flow"
    flow_max_side: int = 0
    pairs_per_batch: int = DEFAULT_PAIRS_PER_BATCH


@dataclass
class HybridResult:
    images: torch.Tensor  # [total_frames, H, W, 3]
    keyframes: torch.Tensor  # [K, H, W, 3]
    anchor_latents: torch.Tensor  # [1, 16, K, h, w]
    report: dict


class HybridHooks:
    """What the node layer supplies: progress and status text. Defaults do nothing."""

    def sampling_callback(self, stage: int, steps: int) -> Callable | None:
        return None

    def stage_started(self, stage: int, text: str) -> None:
        pass


def model_kind(model) -> str:
    """ "camera" (Wan Fun-Camera), "i2v" (image channels: I2V / FLF2V) or "t2v"."""
    diffusion_model = model.get_model_object("diffusion_model")
    if hasattr(diffusion_model, "control_adapter"):
        return "camera"
    if diffusion_model.patch_embedding.weight.shape[1] > LATENT_CHANNELS:
        return "i2v"
    return "t2v"


class HybridKeyframeSampler:
    """Anchor pass (all keyframes in one sample at their RoPE times), then the gaps (see module doc).
    Stages for progress: 0 = anchors, 1..K-1 = gaps (model fills) or one stage for the flow fill."""

    def __init__(
        self,
        model,
        positive,
        negative,
        vae,
        plan: KeyframePlan,
        settings: HybridSettings,
        trajectory: CameraTrajectory | None = None,
        clip_vision_output=None,
        hooks: HybridHooks | None = None,
        device: torch.device | None = None,
    ):
        if settings.width % (2 * SPATIAL_STRIDE) or settings.height % (2 * SPATIAL_STRIDE):
            raise ValueError(
                f"[RTV] width and height must be multiples of 16 (Wan latent 8x, patch 2x); got "
                f"{settings.width}x{settings.height}"
            )
        self.kind = model_kind(model)
        if settings.fill != "flow" and self.kind != "i2v":
            raise ValueError(
                f"[RTV] inbetween_method '{settings.fill}' conditions each gap on its keyframes as start/end images, "
                f"which needs a first-last-frame capable Wan model (Wan 2.1 FLF2V 14B, or an I2V model); this model "
                f"is {'a Fun-Camera model' if self.kind == 'camera' else 'text-to-video'}: use 'flow'."
            )
        self.model, self.positive, self.negative, self.vae = model, positive, negative, vae
        self.plan, self.s = plan, settings
        self.trajectory, self.clip_vision_output = trajectory, clip_vision_output
        self.hooks = hooks or HybridHooks()
        self.device = device
        self.notes: list[str] = list(plan.adjustments)

    # ------------------------------------------------------------------------------------ stages
    def run(self) -> HybridResult:
        import comfy.model_management

        keyframe_poses = None
        if self.trajectory is not None:
            keyframe_poses, note = keyframe_trajectory(self.trajectory, self.plan)
            if note:
                self.notes.append(note)
            if self.kind != "camera":
                self.notes.append(
                    "the model has no camera input (not a Fun-Camera model): trajectory only reported"
                )
        self.hooks.stage_started(0, f"anchors: {self.plan.describe()}")
        anchors = self.sample_anchors(keyframe_poses if self.kind == "camera" else None)
        keyframes = torch.cat([self.decode(anchors[:, :, i : i + 1])[:1] for i in range(anchors.shape[2])])
        comfy.model_management.throw_exception_if_processing_interrupted()
        if self.s.fill == "flow":
            self.hooks.stage_started(1, f"flow fill of {len(self.plan.gaps)} gaps")
            frames = fill_by_interpolation(
                keyframes.movedim(-1, 1),
                self.plan.gaps,
                "flow",
                self.s.pairs_per_batch,
                self.s.flow_max_side,
                device=self.device,
            ).movedim(1, -1)
        else:
            pieces = []
            for gap, count in enumerate(self.plan.gaps):
                comfy.model_management.throw_exception_if_processing_interrupted()
                self.hooks.stage_started(
                    gap + 1, f"gap {gap + 1}/{len(self.plan.gaps)}: {count} frames by the model"
                )
                window = self.fill_gap(gap, keyframes[gap : gap + 1], keyframes[gap + 1 : gap + 2])
                pieces += [keyframes[gap : gap + 1], window[1:-1]]
            frames = torch.cat(pieces + [keyframes[-1:]])
        if frames.shape[0] != self.plan.total_frames:
            raise RuntimeError(f"[RTV] made {frames.shape[0]} frames instead of {self.plan.total_frames}")
        report = {
            "plan": self.plan.describe(),
            "frames": int(frames.shape[0]),
            "keyframe_times": list(self.plan.times),
            "latent_positions": self.plan.latent_positions.tolist(),
            "inbetween_method": self.s.fill,
            "model": self.kind,
            "notes": self.notes,
        }
        if keyframe_poses is not None:
            report["keyframe_c2w"] = keyframe_poses.c2w.tolist()
        return HybridResult(frames, keyframes, anchors, report)

    def sample_anchors(self, keyframe_poses: CameraTrajectory | None) -> torch.Tensor:
        """All keyframes as one latent sequence at their own temporal RoPE positions."""
        import node_helpers

        from ..kernels.plucker import wan_camera_embedding
        from ..patches.rope import apply_frame_positions

        model, positions = apply_frame_positions(self.model)
        positions.positions = self.plan.latent_positions
        latent = self.empty_latent(len(self.plan.times))
        positive, negative = self.positive, self.negative
        if keyframe_poses is not None:
            embedding = wan_camera_embedding(
                anchor_camera_trajectory(keyframe_poses), self.s.width, self.s.height
            )
            positive = node_helpers.conditioning_set_values(positive, {"camera_conditions": embedding})
            negative = node_helpers.conditioning_set_values(negative, {"camera_conditions": embedding})
        return self._sample(model, latent, positive, negative, self.s.seed, stage=0).float()

    def fill_gap(self, gap: int, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """The window ``left .. right`` (``[L, H, W, 3]``, L = gap frames + 2) sampled by the model."""
        length = self.plan.gaps[gap] + 2
        seed = self.s.seed + 1 + gap
        if self.s.fill == "model":
            positive, negative = self.conditioning(length, start=left, end=right)
            samples = self.sample_window(length, positive, negative, seed, stage=gap + 1)
        else:
            forward = self.conditioning(length, start=left)
            backward = self.conditioning(length, start=right)
            samples = self.sample_alternating(length, forward, backward, seed, stage=gap + 1)
        return self.decode(samples)

    # ------------------------------------------------------------------------------------ pieces
    def empty_latent(self, latents: int) -> torch.Tensor:
        return torch.zeros(
            1, LATENT_CHANNELS, latents, self.s.height // SPATIAL_STRIDE, self.s.width // SPATIAL_STRIDE
        )

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        images = self.vae.decode(samples)
        return images.reshape(-1, *images.shape[-3:]).cpu().float()

    def conditioning(self, length: int, start: torch.Tensor | None = None, end: torch.Tensor | None = None):
        """Core ``WanFirstLastFrameToVideo`` semantics: start/end images at the window's ends (0.5 grey
        elsewhere), their mask, and CLIP vision of the images when given."""
        from comfy_extras.nodes_wan import WanFirstLastFrameToVideo

        out = WanFirstLastFrameToVideo.execute(
            positive=self.positive,
            negative=self.negative,
            vae=self.vae,
            width=self.s.width,
            height=self.s.height,
            length=length,
            batch_size=1,
            start_image=start,
            end_image=end,
            clip_vision_start_image=self.clip_vision_output if start is not None else None,
            clip_vision_end_image=self.clip_vision_output if end is not None else None,
        )
        return out.result[0], out.result[1]

    def sample_window(self, length: int, positive, negative, seed: int, stage: int) -> torch.Tensor:
        latent = self.empty_latent((length - 1) // TEMPORAL_STRIDE + 1)
        return self._sample(self.model, latent, positive, negative, seed, stage)

    def _sample(self, model, latent, positive, negative, seed: int, stage: int) -> torch.Tensor:
        """One ComfyUI sampling pass with the node's sampler settings; the result on the CPU."""
        import comfy.sample

        noise = comfy.sample.prepare_noise(latent, seed)
        return comfy.sample.sample(
            model, noise, self.s.steps, self.s.cfg, self.s.sampler_name, self.s.scheduler, positive, negative,
            latent, callback=self.hooks.sampling_callback(stage, self.s.steps), seed=seed,
        ).cpu()  # fmt: skip

    def sample_alternating(self, length: int, forward, backward, seed: int, stage: int) -> torch.Tensor:
        """SV4D's dense pass: step k is taken with the left keyframe as start image on the frames in
        order (even k) or with the right keyframe as start image on the frames reversed (odd k).

        One ``comfy.sample.sample`` call per step (``start_step=k, last_step=k+1``): the latent comes
        back with its remaining noise and the next call continues from it, as two chained
        KSamplerAdvanced do. Multistep samplers lose their history at every step; use a one-step
        sampler (euler, SV4D's choice) for this mode."""
        import comfy.sample

        latent = self.empty_latent((length - 1) // TEMPORAL_STRIDE + 1)
        noise = comfy.sample.prepare_noise(latent, seed)
        callback = self.hooks.sampling_callback(stage, self.s.steps)
        x = latent
        for step in range(self.s.steps):
            reverse = step % 2 == 1
            positive, negative = backward if reverse else forward
            current = torch.flip(x, dims=[2]) if reverse else x
            step_noise = noise if step == 0 else torch.zeros_like(noise)
            out = comfy.sample.sample(
                self.model,
                step_noise,
                self.s.steps,
                self.s.cfg,
                self.s.sampler_name,
                self.s.scheduler,
                positive,
                negative,
                current,
                start_step=step,
                last_step=step + 1,
                force_full_denoise=step == self.s.steps - 1,
                disable_pbar=True,
                seed=seed,
            ).cpu()
            x = torch.flip(out, dims=[2]) if reverse else out
            if callback is not None:
                callback(step, None, None, self.s.steps)
        return x
