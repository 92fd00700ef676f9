"""Streaming chunk sampler: an arbitrarily long Wan video, chunk by chunk, in constant memory.

Each chunk is sampled by ComfyUI's own KSampler machinery (``comfy.sample.sample``: any sampler,
scheduler, cfg, model patches). Chunks overlap by 4m+1 frames (see ``chunk_plan``); the overlap is
conditioned in one of two ways:

- ``pinned_latents`` (zero-shot, any T2V or I2V model): latents 1..m repeat the previous chunk's last
  m latents and latent 0 is the VAE encoding of the shared boundary frame; all are held fixed through
  ComfyUI's noise mask (re-noised to the current sigma at every step);
- ``i2v_start_frames`` (I2V models): the previous chunk's last 4m+1 decoded frames become the start
  frames of core ``WanImageToVideo`` conditioning.

Anchor memory keeps chunk 0's first latent as an extra pinned context frame in front of every later
chunk, at its global time index (RoPE frame 0, the chunk's frames at k(a-m)...), attended with weight
``anchor_strength`` (0 = no anchor frame; see patches/anchor.py); drift correction pulls each new chunk's per-channel latent
mean and std toward chunk 0's. Finished chunks are decoded at once: with a Wan 2.1 VAE by a streaming causal
decoder (bit-identical to one decode of the stitched latent), with other VAEs (HunyuanVideo's) chunk by chunk
from the overlap (``chunk_decode.py``); then moved to the CPU and saved to the output folder, so device memory
stays flat and an interrupt loses no finished chunk. HunyuanVideo and LTX-Video models stream like Wan T2V
ones (pinned overlap latents; LTX-Video's latents hold 8 frames: ``LatentLayout``); anchor memory and I2V
start frames are Wan's. Wan 2.2 A14B's two experts split each chunk's steps (``model_low_noise``), as two
KSamplerAdvanced nodes split one clip's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import comfy.model_base
import comfy.model_management
import comfy.sample
import comfy.utils
import torch

from ..patches.anchor import AnchorContext, apply_anchor_bias
from ..patches.rope import FramePositions, apply_frame_positions
from ..patches.video_families import video_family
from .chunk_decode import ChunkDecoder
from .chunk_plan import ChunkPlan
from .wan_vae_stream import StreamingWanDecoder

OVERLAP_MODES = ("pinned_latents", "i2v_start_frames")


@dataclass(frozen=True)
class LatentLayout:
    """What the sampler needs of a model's latents: channels, pixels per latent (space and time), and the
    multiple of pixels a frame's width and height must be (VAE stride x the DiT's patch)."""

    family: str
    channels: int
    spatial_stride: int
    temporal_stride: int
    pixel_multiple: int


FAMILY_NAMES = {"wan": "Wan", "hunyuan_video": "HunyuanVideo", "ltxv": "LTX-Video"}


def _patch_width(dm) -> int:
    patchifier = getattr(dm, "patchifier", None)  # LTX-Video
    return int((patchifier.patch_size if patchifier is not None else dm.patch_size)[-1])


def latent_layout(model, vae) -> LatentLayout:
    """The latent layout of ``model`` with ``vae``, read from them (so Wan 2.2 5B's 48 channels and 16x VAE, or
    HunyuanVideo 1.5's, need no table); a ValueError that says what to change if they cannot stream together."""
    dm = model.get_model_object("diffusion_model")
    family = video_family(dm)
    if family is None or family.name not in FAMILY_NAMES:
        raise ValueError(f"[RTV] the streaming sampler serves Wan 2.1/2.2, HunyuanVideo and LTX-Video models; "
                         f"this model is {type(dm).__name__}.")
    name = FAMILY_NAMES[family.name]
    channels = model.get_model_object("latent_format").latent_channels
    spatial, temporal = vae.spacial_compression_encode(), vae.temporal_compression_decode()
    if not temporal or not isinstance(spatial, int):
        raise ValueError(f"[RTV] the streaming sampler needs a video VAE; this VAE compresses no frames ({name} model).")
    if getattr(vae, "latent_channels", channels) != channels:
        raise ValueError(f"[RTV] this VAE makes {vae.latent_channels}-channel latents and the {name} model takes "
                         f"{channels}: connect the model's own VAE.")
    return LatentLayout(name, channels, spatial, temporal, spatial * _patch_width(dm))
STD_FLOOR = 1e-6
log = logging.getLogger("RealtimeVideo")


@dataclass
class StreamSettings:
    width: int
    height: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    overlap_mode: str = "pinned_latents"
    anchor_strength: float = 0.0
    drift_correction: float = 0.0
    low_noise_start_step: int = 0
    """With a low-noise expert (Wan 2.2 A14B): the step it takes over at (the high-noise model runs the steps
    before it, as two KSamplerAdvanced nodes would)."""


@dataclass
class ChunkReport:
    index: int
    first_frame: int
    first_latent: int
    seed: int
    seconds: float
    working_bytes: int


@dataclass
class StreamResult:
    images: torch.Tensor  # [frames, H, W, 3] on the CPU
    latents: torch.Tensor  # [1, C, total_latents, h, w] on the CPU
    reports: list[ChunkReport] = field(default_factory=list)
    peak_working_bytes: int = 0
    peak_device_bytes: int | None = None


class ChunkHooks:
    """What the node layer supplies: progress, previews, saving. Defaults do nothing."""

    def sampling_callback(self, chunk_index: int, steps: int) -> Callable | None:
        return None

    def chunk_started(self, plan: ChunkPlan, chunk_index: int) -> None:
        pass

    def chunk_finished(self, plan: ChunkPlan, report: ChunkReport, frames: torch.Tensor,
                       chunk_latents: torch.Tensor) -> None:
        """``frames``: the chunk's new decoded frames; ``chunk_latents``: all its latents, overlap included."""


def _bytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def match_channel_statistics(latents: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, strength: float):
    """Move per-channel mean/std of ``latents`` [B, C, T, h, w] toward ``mean``/``std`` [B, C, 1, 1, 1]."""
    if strength <= 0:
        return latents
    own_mean = latents.mean(dim=(2, 3, 4), keepdim=True)
    own_std = latents.std(dim=(2, 3, 4), keepdim=True).clamp_min(STD_FLOOR)
    matched = (latents - own_mean) / own_std * std + mean
    return torch.lerp(latents, matched, strength)


def _with_empty_image_channels(conditioning: list, mask: torch.Tensor) -> list:
    """HunyuanVideo 1.5 builds its image input channels from ``concat_mask``, else from the sampler's noise mask,
    which ComfyUI expands to every latent channel (a channel mismatch in its input layer). An all-ones
    ``concat_mask`` gives it exactly its text-to-video input (empty image channels); the overlap stays pinned
    through the noise mask."""
    return [[text, {**extra, "concat_mask": torch.ones_like(mask)}] for text, extra in conditioning]


def _check_experts(model, model_low_noise, vae, settings: StreamSettings) -> None:
    """Wan 2.2 A14B's two experts: the same latent layout, and a switch step inside the schedule."""
    if latent_layout(model_low_noise, vae) != latent_layout(model, vae):
        raise ValueError("[RTV] model_low_noise must be the same kind of model as model (Wan 2.2 A14B: the "
                         "low-noise expert of the same release).")
    if not 0 < settings.low_noise_start_step < settings.steps:
        raise ValueError(f"[RTV] low_noise_start_step must be between 1 and steps - 1 ({settings.steps - 1}) when "
                         f"model_low_noise is connected, got {settings.low_noise_start_step} (Wan 2.2's templates: "
                         "10 of 20 steps).")


def _part_of_steps(callback, offset: int, steps: int):
    """A sampling callback for one of two sampler calls that share a chunk's ``steps``: step numbers and the
    total are the chunk's."""
    if callback is None:
        return None
    return lambda step, x0, x, total_steps: callback(step + offset, x0, x, steps)


def _model_wants_image_channels(model) -> bool:
    """An I2V Wan model takes more input channels than its latents have (mask and image latents concatenated);
    Wan 2.2 TI2V 5B does not: it takes its start frame through the noise mask, like pinned latents."""
    dm = model.get_model_object("diffusion_model")
    return dm.patch_embedding.weight.shape[1] > model.get_model_object("latent_format").latent_channels


class StreamingSampler:
    def __init__(self, model, positive, negative, vae, plan: ChunkPlan, settings: StreamSettings,
                 start_image: torch.Tensor | None = None, hooks: ChunkHooks | None = None,
                 clip_vision_output=None, chunk_positives: list | None = None, model_low_noise=None):
        if settings.overlap_mode not in OVERLAP_MODES:
            raise ValueError(f"[RTV] overlap_mode must be one of {OVERLAP_MODES}, not {settings.overlap_mode!r}")
        layout = self.layout = latent_layout(model, vae)
        if settings.width % layout.pixel_multiple or settings.height % layout.pixel_multiple:
            raise ValueError(f"[RTV] width and height must be multiples of {layout.pixel_multiple} for {layout.family} "
                             f"(its VAE and patch); got {settings.width}x{settings.height}")
        if plan.temporal_stride != layout.temporal_stride:
            raise ValueError(f"[RTV] the chunk plan has {plan.temporal_stride} frames per latent, {layout.family}'s "
                             f"VAE {layout.temporal_stride}: plan it with temporal_stride={layout.temporal_stride}")
        wan = layout.family == "Wan"
        if settings.overlap_mode == "i2v_start_frames" and not (wan and _model_wants_image_channels(model)):
            raise ValueError("[RTV] overlap_mode 'i2v_start_frames' needs an image-to-video Wan model (e.g. Wan 2.1 "
                             "I2V 14B); this model is text-to-video: use 'pinned_latents'.")
        if settings.anchor_strength > 0 and not wan:
            raise ValueError("[RTV] anchor_strength > 0 puts chunk 0's first frame at its global time index in "
                             "front of every chunk, which the pack does for Wan models only: set anchor_strength "
                             f"to 0 for this {layout.family} model.")
        if model_low_noise is not None:
            _check_experts(model, model_low_noise, vae, settings)
        # Without an anchor every token of a chunk shares one time origin, and RoPE only sees differences:
        # other families need no global positions.
        self.model, self.positions = apply_frame_positions(model) if wan else (model, FramePositions())
        self.model_low_noise = model_low_noise
        if model_low_noise is not None and wan:
            self.model_low_noise, _ = apply_frame_positions(model_low_noise, self.positions)
        self.anchor_context = AnchorContext(settings.anchor_strength)
        if 0 < settings.anchor_strength < 1:
            self.model = apply_anchor_bias(self.model, self.anchor_context)
            if self.model_low_noise is not None:
                self.model_low_noise = apply_anchor_bias(self.model_low_noise, self.anchor_context)
        self.positive, self.negative, self.vae = positive, negative, vae
        self.plan, self.s = plan, settings
        self.start_image = start_image
        self.clip_vision_output = clip_vision_output
        self.chunk_positives = chunk_positives or None
        self.hooks = hooks or ChunkHooks()
        self.decoder = (StreamingWanDecoder(vae) if StreamingWanDecoder.supports(vae)
                        else ChunkDecoder(vae, layout.temporal_stride))  # fmt: skip
        self.latent_hw = (settings.height // layout.spatial_stride, settings.width // layout.spatial_stride)
        self.empty_image_channels = isinstance(model.model, comfy.model_base.HunyuanVideo15)

    # ------------------------------------------------------------------------------------ loop
    def run(self) -> StreamResult:
        # Without this, a caller outside ComfyUI's executor (which runs nodes in inference mode) would
        # chain autograd graphs from chunk to chunk through the pinned latents: memory growing per chunk.
        with torch.inference_mode():
            return self._run()

    def _run(self) -> StreamResult:
        plan, s = self.plan, self.s
        a1 = plan.chunk_latents
        kept_latents, kept_frames, reports = [], [], []
        previous_latents = None  # [1, C, a+1, h, w] of the last finished chunk (CPU)
        boundary_frame = None  # last decoded frame of the last chunk [1, H, W, 3]
        tail_frames = None  # last 4m+1 decoded frames (i2v mode)
        anchor, anchor_stats = None, None
        peak_working = 0
        device = comfy.model_management.get_torch_device()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for chunk in plan.chunks:
            comfy.model_management.throw_exception_if_processing_interrupted()
            self.hooks.chunk_started(plan, chunk.index)
            t0 = time.time()
            latent, mask, positive, negative = self._chunk_inputs(chunk, previous_latents, boundary_frame, tail_frames)
            context = 0
            if anchor is not None and s.anchor_strength > 0:
                context = anchor.shape[2]
                latent = torch.cat([anchor, latent], dim=2)
                mask = torch.cat([torch.zeros_like(mask[:, :, :context]), mask], dim=2)
            positions = torch.arange(a1, dtype=torch.float32) + chunk.first_latent
            self.positions.positions = torch.cat([torch.zeros(context), positions]) if context else positions
            self.anchor_context.frames, self.anchor_context.total_frames = context, latent.shape[2]
            samples = self._sample(chunk, latent, mask, positive, negative)
            samples = torch.where(mask == 0, latent, samples)[:, :, context:]  # pinned frames exactly as given
            if chunk.index == 0:
                anchor = samples[:, :, :1].clone()
                anchor_stats = (samples.mean(dim=(2, 3, 4), keepdim=True),
                                samples.std(dim=(2, 3, 4), keepdim=True).clamp_min(STD_FLOOR))
            else:
                start = chunk.new_latents[0]
                samples[:, :, start:] = match_channel_statistics(samples[:, :, start:], *anchor_stats, s.drift_correction)
            new = samples[:, :, chunk.new_latents[0]:chunk.new_latents[1]]
            frames = self._decode(samples, new, chunk).cpu()
            working = _bytes(latent, mask, samples, anchor, *(self.decoder.feat_cache or []))
            peak_working = max(peak_working, working)
            kept_latents.append(new.cpu())
            kept_frames.append(frames)
            previous_latents = samples.cpu()
            boundary_frame = frames[-1:]
            tail_frames = torch.cat(kept_frames)[-plan.overlap_frames:] if s.overlap_mode == "i2v_start_frames" else None
            report = ChunkReport(chunk.index, chunk.first_frame, chunk.first_latent, chunk.seed,
                                 round(time.time() - t0, 3), working)
            reports.append(report)
            self.hooks.chunk_finished(plan, report, frames, previous_latents)
            del latent, mask, samples, new
        images = torch.cat(kept_frames)
        peak_device = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        return StreamResult(images, torch.cat(kept_latents, dim=2), reports, peak_working, peak_device)

    # ------------------------------------------------------------------------------------ pieces
    def _decode(self, samples: torch.Tensor, new: torch.Tensor, chunk) -> torch.Tensor:
        if isinstance(self.decoder, StreamingWanDecoder):  # causal cache across chunks: no seam
            return self.decoder.push(new)
        return self.decoder.push_chunk(samples, *chunk.new_latents)

    def _empty_latent(self, latents: int) -> torch.Tensor:
        return torch.zeros(1, self.layout.channels, latents, *self.latent_hw)

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [T, H, W, C] of any size, scaled and centre-cropped to the video's (as ComfyUI's I2V nodes do)."""
        if frames.shape[1:3] != (self.s.height, self.s.width):
            frames = comfy.utils.common_upscale(frames.movedim(-1, 1), self.s.width, self.s.height, "bilinear",
                                                "center").movedim(1, -1)  # fmt: skip
        return self.vae.encode(frames[..., :3]).cpu().float()

    def _chunk_inputs(self, chunk, previous_latents, boundary_frame, tail_frames):
        a1, m = self.plan.chunk_latents, chunk.pinned_latents
        latent = self._empty_latent(a1)
        mask = torch.ones(1, 1, a1, *self.latent_hw)
        positive, negative = self.positive_for(chunk.index), self.negative
        if self.empty_image_channels:
            positive, negative = (_with_empty_image_channels(c, mask) for c in (positive, negative))
        if self.s.overlap_mode == "i2v_start_frames":
            start = tail_frames if chunk.index > 0 else self.start_image
            if start is not None:
                positive, negative = self._i2v_conditioning(positive, start)
            return latent, mask, positive, negative
        if chunk.index == 0:
            if self.start_image is not None:
                latent[:, :, :1] = self._encode_frames(self.start_image[:1])
                mask[:, :, :1] = 0
            return latent, mask, positive, negative
        a = a1 - 1
        latent[:, :, :1] = self._encode_frames(boundary_frame)
        latent[:, :, 1:m + 1] = previous_latents[:, :, a - m + 1:a + 1]
        mask[:, :, :m + 1] = 0
        return latent, mask, positive, negative

    def positive_for(self, chunk_index: int) -> list:
        """Chunk k's prompt: the k-th entry of ``chunk_positives`` (the last repeats), else ``positive``."""
        if not self.chunk_positives:
            return self.positive
        return [self.chunk_positives[min(chunk_index, len(self.chunk_positives) - 1)]]

    def _i2v_conditioning(self, positive, start_frames: torch.Tensor):
        from comfy_extras.nodes_wan import WanImageToVideo

        out = WanImageToVideo.execute(positive=positive, negative=self.negative, vae=self.vae,
                                      width=self.s.width, height=self.s.height, length=self.plan.chunk_frames,
                                      batch_size=1, start_image=start_frames,
                                      clip_vision_output=self.clip_vision_output)
        return out.result[0], out.result[1]

    def _sample(self, chunk, latent, mask, positive, negative) -> torch.Tensor:
        s = self.s
        noise = comfy.sample.prepare_noise(latent, chunk.seed)
        callback = self.hooks.sampling_callback(chunk.index, s.steps)
        noise_mask = mask if (mask == 0).any() else None
        if self.model_low_noise is None:
            return comfy.sample.sample(self.model, noise, s.steps, s.cfg, s.sampler_name, s.scheduler, positive,
                                       negative, latent, noise_mask=noise_mask, callback=callback, seed=chunk.seed)
        switch = s.low_noise_start_step
        high = comfy.sample.sample(self.model, noise, s.steps, s.cfg, s.sampler_name, s.scheduler, positive, negative,
                                   latent, noise_mask=noise_mask, callback=_part_of_steps(callback, 0, s.steps),
                                   seed=chunk.seed, last_step=switch, force_full_denoise=False)  # fmt: skip
        # The low-noise expert continues from the high-noise one's state, adding no noise (KSamplerAdvanced's
        # add_noise off), except on pinned latents: there the same noise and the clean latent are passed again,
        # so ComfyUI keeps re-noising them to each step's sigma instead of freezing them at the switch's.
        pinned = mask == 0
        continued = torch.where(pinned, latent, high.to(latent.dtype))
        pinned_noise = torch.where(pinned, noise, torch.zeros_like(noise))
        return comfy.sample.sample(self.model_low_noise, pinned_noise, s.steps, s.cfg, s.sampler_name, s.scheduler,
                                   positive, negative, continued, noise_mask=noise_mask, seed=chunk.seed,
                                   callback=_part_of_steps(callback, switch, s.steps), start_step=switch,
                                   force_full_denoise=True)  # fmt: skip
