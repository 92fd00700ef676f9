"""Causal chunk-wise generation with a KV cache (Self-Forcing / CausVid weights), chunk by chunk.

Each chunk of latent frames is one ComfyUI sampling run (``Guider_Basic`` + a ``KSAMPLER``) on a model
clone with the KV-cache patch (``patches/kv_cache.py``), so model loading, conditioning, wrappers and
other patches (RTV_MonarchAttention, LoRAs) work as in any sampler. Per chunk (Self-Forcing's
``pipeline/causal_inference.py``):

1. the few-step schedule of ``causal_schedule.py``: at each sigma the model predicts x0 against the
   cached keys, then x0 is re-noised with fresh noise to the next sigma (ComfyUI's ``sample_lcm``
   update, DMD-style, not an ODE step);
2. one clean pass at t = 0 on the final x0 writes the chunk's clean K/V into the cache;
3. the chunk is decoded by the streaming causal VAE decoder (identical to one decode of the whole
   latent), moved to the CPU and handed to the hooks (preview, saving), while the cache stays on the
   device for the next chunk. With ``overlap_decode`` the decode runs a latent frame per step of the
   *next* chunk on a side CUDA stream (the GPU decodes while it samples), and the chunk is handed
   out when the next one has sampled.

Noise is drawn on the CPU from one generator per chunk (seed + k): first the initial noise, then one
draw per re-noising, so a seed gives the same video on any device. Interrupts are checked before every
model call; finished chunks have already been handed out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import comfy.model_management
import comfy.model_sampling
import comfy.samplers
import torch
from comfy.k_diffusion.sampling import sample_lcm
from comfy_extras.nodes_custom_sampler import Guider_Basic

from ..patches.block_graphs import BlockGraphs
from ..patches.cuda_graphs import ChunkGraph, apply_chunk_graphs
from ..patches.kv_cache import KVCacheState, KVCacheStats, apply_kv_cache
from ..patches.video_families import video_family
from .causal_schedule import CausalPlan
from .chunk_plan import LATENT_CHANNELS, SPATIAL_STRIDE
from .streaming import ChunkHooks
from .wan_vae_stream import ChunkDecode, StreamingWanDecoder


@dataclass
class CausalChunkReport:
    index: int
    first_frame: int  # global pixel frame of the chunk's first frame
    first_latent: int  # global latent frame (RoPE time position) of its first latent
    seed: int
    seconds: float  # generate + decode
    generate_seconds: float
    decode_seconds: float
    working_bytes: int  # KV cache (self + text) after the chunk
    cached_frames: list[int]  # global latent frames in the cache after the chunk, in slot order


@dataclass
class CausalResult:
    images: torch.Tensor | None  # [frames, H, W, 3] on the CPU (None without a VAE)
    latents: torch.Tensor  # [1, 16, latent frames, h, w] on the CPU (Wan 2.1 latents)
    reports: list[CausalChunkReport] = field(default_factory=list)
    kv_stats: KVCacheStats | None = None
    peak_device_bytes: int | None = None


class _Interruptible:
    """The sampler's model with an interrupt check before every call (between steps)."""

    def __init__(self, model):
        self.model = model
        self.inner_model = model.inner_model

    def __call__(self, *args, **kwargs):
        comfy.model_management.throw_exception_if_processing_interrupted()
        return self.model(*args, **kwargs)


def _outside_step_schedule(extra_args: dict) -> dict:
    """extra_args for the clean pass: it is not a denoising step, so it carries no ``sample_sigmas``
    (step-based patches such as RTV_MonarchAttention's dense_first/last_steps then leave it alone)."""
    options = dict(extra_args.get("model_options", {}))
    to = dict(options.get("transformer_options", {}))
    to.pop("sample_sigmas", None)
    options["transformer_options"] = to
    return {**extra_args, "model_options": options}


@torch.no_grad()
def sample_causal_chunk(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                        renoise=None):  # fmt: skip
    """A ComfyUI sampler function: Self-Forcing's few-step chunk, then the clean pass that writes the cache.

    The steps are ComfyUI's ``sample_lcm`` update (x0, then re-noised to the next sigma). ``renoise``
    (one bool per step, from the CPU schedule) says which steps re-noise, so that no step has to read a
    device sigma back to decide (a host-device sync per step in ``sample_lcm``)."""
    extra_args = {} if extra_args is None else extra_args
    model = _Interruptible(model)
    if renoise is None or len(renoise) != len(sigmas) - 1:
        x = sample_lcm(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                       noise_sampler=noise_sampler)  # fmt: skip
    else:
        s_in = x.new_ones([x.shape[0]])
        model_sampling = model.inner_model.inner_model.model_sampling
        for i, again in enumerate(renoise):
            denoised = model(x, sigmas[i] * s_in, **extra_args)
            if callback is not None:
                callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
            x = denoised
            if again:
                x = model_sampling.noise_scaling(sigmas[i + 1], noise_sampler(sigmas[i], sigmas[i + 1]), x)
    model(x, x.new_zeros([x.shape[0]]), **_outside_step_schedule(extra_args))
    return x


def chunk_noise(shape, seed: int, device, renoise_draws: int = 0):
    """Initial noise and a noise sampler for the re-noising steps, all from one CPU generator.

    The ``renoise_draws`` re-noising tensors are drawn right after the initial noise (the order a lazy
    sampler would draw them in, so the values are the same) and copied to the device in one go: one
    host-device sync per chunk instead of one per step."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(shape, generator=generator)
    drawn = [torch.randn(shape, generator=generator) for _ in range(renoise_draws)]
    ready = list(torch.stack(drawn).to(device).unbind(0)) if drawn else []

    def noise_sampler(sigma, sigma_next):
        if ready:
            return ready.pop(0)
        return torch.randn(shape, generator=generator).to(device)

    return noise, noise_sampler


def _is_flow_model(model) -> bool:
    return isinstance(model.get_model_object("model_sampling"), comfy.model_sampling.CONST)


def _check_wan21_layout(model) -> None:
    """Self-Forcing and CausVid are Wan 2.1 T2V 1.3B distills: the sampler's KV cache patches Wan's
    self-attention and its decoder is the Wan 2.1 VAE's, so another model gets an error that says so."""
    dm = model.get_model_object("diffusion_model")
    family = video_family(dm)
    channels = model.get_model_object("latent_format").latent_channels
    if family is None or family.name != "wan" or channels != LATENT_CHANNELS:
        what = f"{type(dm).__name__} with {channels}-channel latents"
        raise ValueError(f"[RTV] the causal sampler runs Wan 2.1 text-to-video models (Self-Forcing, CausVid "
                         f"distills of Wan 2.1 T2V 1.3B, 16-channel latents); this model is {what}: use "
                         "Streaming Sampler (RTV) for it.")


class CausalStreamingSampler:
    def __init__(
        self,
        model,
        positive,
        vae,
        plan: CausalPlan,
        sigmas: list[float],
        width: int,
        height: int,
        hooks: ChunkHooks | None = None,
        overlap_decode: bool = False,
        cuda_graphs: bool = False,
    ):
        if width % (2 * SPATIAL_STRIDE) or height % (2 * SPATIAL_STRIDE):
            raise ValueError(
                f"[RTV] width and height must be multiples of 16 (Wan latent 8x, patch 2x); "
                f"got {width}x{height}"
            )
        _check_wan21_layout(model)
        if not _is_flow_model(model):
            raise ValueError(
                "[RTV] the causal sampler needs a flow-matching Wan model (Self-Forcing, CausVid)"
            )
        if vae is not None and not StreamingWanDecoder.supports(vae):
            raise ValueError(
                "[RTV] the causal sampler decodes with a Wan 2.1 VAE (wan_2.1_vae); this VAE is "
                f"{type(getattr(vae, 'first_stage_model', vae)).__name__}."
            )
        self.state = KVCacheState(plan.cache_frames, plan.sink_frames)
        self.model = apply_kv_cache(model, self.state)
        # whole model calls while the cache layout repeats (a full rolling window), blocks otherwise
        self.graph = ChunkGraph(BlockGraphs(self.state)) if cuda_graphs else None
        if self.graph is not None:
            self.model = apply_chunk_graphs(self.model, self.graph)
        self.guider = Guider_Basic(self.model)
        self.guider.set_conds(positive)
        self.vae = vae
        self.plan = plan
        self.sigmas = torch.tensor(sigmas, dtype=torch.float32)
        self.latent_hw = (height // SPATIAL_STRIDE, width // SPATIAL_STRIDE)
        self.hooks = hooks or ChunkHooks()
        self.overlap_decode = overlap_decode

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def run(self) -> CausalResult:
        plan = self.plan
        self.state.reset()
        if self.graph is not None:
            self.graph.reset()  # the cache buffers of the last run are gone
        decoder = None
        if self.vae is not None:
            decoder = StreamingWanDecoder(self.vae, side_stream=self.overlap_decode)
        device = comfy.model_management.get_torch_device()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self._latents, self._frames, self._reports = [], [], []
        pending = None  # the previous chunk, decoding while this one samples (overlap_decode)
        try:
            for chunk in plan.chunks:
                comfy.model_management.throw_exception_if_processing_interrupted()
                self.hooks.chunk_started(plan, chunk.index)
                t0 = _now(device)
                samples = self.generate_chunk(chunk, pending.decode if pending else None)
                t1 = _now(device)
                if pending is not None:
                    self._hand_out(pending, _now(device))  # what its decode left, then its frames
                pending = _PendingChunk(
                    chunk, samples, t0, t1, decoder.start(samples) if decoder else None,
                    self.state.cache_bytes(), list(self.state.cached_frames),
                )  # fmt: skip
                if not self.overlap_decode or chunk.index == 0:  # the first chunk keeps its latency
                    self._hand_out(pending, _now(device))
                    pending = None
            if pending is not None:
                self._hand_out(pending, _now(device))
                pending = None
        finally:
            if pending is not None:  # interrupted: the chunk generated last is finished, not lost
                try:
                    self._hand_out(pending, _now(device))
                except Exception:  # noqa: BLE001 - the original error is the one to raise
                    logging.exception("[RTV] could not finish the last chunk after an error")
            self.state.release_memory()
            if self.graph is not None:  # the graphs' pool and static tensors go with the cache
                self.graph.reset()
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        images = torch.cat(self._frames) if self._frames else None
        return CausalResult(images, torch.cat(self._latents, dim=2), self._reports, self.state.stats, peak)

    def _hand_out(self, pending: _PendingChunk, decode_started: float) -> None:
        """Finish the chunk's decode, record it, and give it to the hooks (preview, saving)."""
        device = comfy.model_management.get_torch_device()
        frames = pending.decode.finish().cpu() if pending.decode is not None else None
        t2 = _now(device)
        chunk, samples = pending.chunk, pending.samples.cpu()
        self._latents.append(samples)
        if frames is not None:
            self._frames.append(frames)
        # With overlap_decode, decode_seconds counts only what did not overlap the next chunk.
        report = CausalChunkReport(
            chunk.index,
            chunk.first_frame,
            chunk.first_latent,
            chunk.seed,
            round(pending.generated - pending.started + t2 - decode_started, 4),
            round(pending.generated - pending.started, 4),
            round(t2 - decode_started, 4),
            pending.cache_bytes,
            pending.cached_frames,
        )
        self._reports.append(report)
        self.hooks.chunk_finished(self.plan, report, frames, samples)

    def generate_chunk(self, chunk, side_decode: ChunkDecode | None = None) -> torch.Tensor:
        """Sample one chunk against the cache and write it into the cache; returns its latents.

        ``side_decode`` (the previous chunk's decode) advances one latent frame after every step, on
        its own CUDA stream, so the GPU decodes while this chunk samples."""
        latent = torch.zeros(1, LATENT_CHANNELS, chunk.latents, *self.latent_hw)
        renoise = [float(s) > 0 for s in self.sigmas[1:]]
        noise, noise_sampler = chunk_noise(latent.shape, chunk.seed, self.model.load_device, sum(renoise))
        sampler = comfy.samplers.KSAMPLER(
            sample_causal_chunk, extra_options={"noise_sampler": noise_sampler, "renoise": renoise}
        )
        callback = self.hooks.sampling_callback(chunk.index, self.steps)
        if side_decode is not None:
            callback = _with_side_decode(callback, side_decode)
        self.state.begin_chunk(chunk.first_latent, chunk.latents)
        if self.graph is not None:  # the same cache layout as the last chunk keeps its graphs
            self.graph.begin_chunk(self.state.layout())
        samples = self.guider.sample(
            noise, latent, sampler, self.sigmas, callback=callback, disable_pbar=True, seed=chunk.seed
        )
        self.state.end_chunk()
        return samples


@dataclass
class _PendingChunk:
    chunk: object
    samples: torch.Tensor
    started: float
    generated: float
    decode: ChunkDecode | None
    cache_bytes: int  # the cache as this chunk left it (the next chunk may have moved on by hand-out)
    cached_frames: list[int]


def _with_side_decode(callback, side_decode: ChunkDecode):
    def step_done(*args):
        if callback is not None:
            callback(*args)
        side_decode.advance_if_loaded()

    return step_done


def _now(device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
