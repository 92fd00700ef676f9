"""Decode a Wan 2.1 latent video chunk by chunk, bit-identical to decoding it in one piece.

The Wan VAE decoder is causal: ComfyUI's ``WanVAE.decode`` feeds latent frames one at a time and
carries a cache of the last frames of every causal 3D convolution. Keeping that cache between calls
lets a long video be decoded as its chunks finish (constant device memory, no VAE seam) with the
same frames as one ``VAE.decode`` of the stitched latent.

A chunk can also be decoded a latent frame at a time (``start`` -> ``advance`` ... -> ``finish``) on
a side CUDA stream, so the causal sampler interleaves the decode of one chunk with the model calls of
the next and the GPU runs both at once.

Speed on CUDA (bench/vae_decode.py, 81 frames at 480p on an H100: 2.32 s -> 1.56 s, results in
bench/results/vae_decode_h100*.json): frames stay on the device until a chunk is finished (copying
each latent frame's output to the host stalled the queue, and the output scaling then ran on the
CPU), the decoder's convolutions run channels-last-3d, the layout of cuDNN's tensor-core kernels,
and a chunk's frames reach the host through page-locked memory. The residual blocks' norm, SiLU,
padding and bias passes run fused (``wan_vae_fused.py``), also on CUDA only.
"""

from __future__ import annotations

import contextlib

import comfy.model_management
import torch

from .wan_vae_fused import FusedDecoderStep, supports_fused_decode

DEVICE_FRAMES_BYTES = 1 << 30
"""Decoded frames kept on the device before they are moved to the output device: a chunk of the
causal sampler (12 frames at 480p, 58 MB) never reaches it; a whole long video pushed at once does."""


PINNED_FRAMES_BYTES = 1 << 30
"""Frames a decoder hands to the host through page-locked memory (the first 1 GiB of a video: 220
frames at 480p); later ones take the plain pageable copy, so a very long video does not pin its whole
length in host memory."""


def copy_to_host(frames: torch.Tensor, output_device, pinned: bool) -> torch.Tensor:
    """``frames.to(output_device)``; from CUDA to the CPU through page-locked memory when ``pinned``:
    the pageable copy ran at 1.5 GB/s on the H100 host, 263 ms of a 1.8 s decode of 81 frames at 480p
    (bench/results/vae_decode_h100_pageable_profile.json)."""
    if not pinned or frames.device.type != "cuda" or torch.device(output_device).type != "cpu":
        return frames.to(output_device)
    host = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
    host.copy_(frames, non_blocking=True)
    torch.cuda.current_stream(frames.device).synchronize()  # the caller reads the frames right away
    return host


def use_channels_last(model: torch.nn.Module) -> None:
    """Put 3D convolution weights in channels-last-3d layout (again after a reload gave them back
    contiguous); Module.to(memory_format=...) cannot, it rejects the norms' 1-D parameters."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 5 and not param.is_contiguous(memory_format=torch.channels_last_3d):
                param.data = param.data.contiguous(memory_format=torch.channels_last_3d)


class StreamingWanDecoder:
    """``push(latents)`` -> IMAGE frames [N, H, W, 3] on ComfyUI's output device."""

    def __init__(self, vae, *, side_stream: bool = False, cudnn_benchmark: bool = True, fused: bool | None = None):
        self.vae = vae
        self.model = vae.first_stage_model
        # None: on CUDA only, like channels_last (the CPU path stays bit-identical to VAE.decode;
        # the fused one moves each conv's bias into the next pass: equal up to rounding)
        self.fused = (vae.device.type == "cuda" if fused is None else fused) and supports_fused_decode(
            getattr(self.model, "decoder", None)
        )
        self._step = FusedDecoderStep(self.model.decoder) if self.fused else None
        self.feat_cache = None
        self.frames_done = 0
        self.pinned_bytes = 0
        self.cudnn_benchmark = cudnn_benchmark
        self._side_stream = side_stream
        self._stream = None

    @staticmethod
    def supports(vae) -> bool:
        model = getattr(vae, "first_stage_model", None)
        return model is not None and type(model).__module__ == "comfy.ldm.wan.vae" and hasattr(model, "conv2")

    @property
    def channels_last(self) -> bool:
        # CUDA only: the CPU's channels-last convolutions take another path, and there the decode
        # must stay bit-identical to ComfyUI's VAE.decode
        return self.vae.device.type == "cuda"

    def push(self, latents: torch.Tensor) -> torch.Tensor:
        job = self.start(latents)
        while job.advance():
            pass
        return job.finish()

    def start(self, latents: torch.Tensor) -> ChunkDecode:
        """Load the VAE (here, between model calls) and begin decoding ``latents`` [B, 16, T, h, w]."""
        from comfy.ldm.wan.vae import count_conv3d

        comfy.model_management.load_models_gpu([self.vae.patcher])
        if self.feat_cache is None:
            self.feat_cache = [None] * count_conv3d(self.model.decoder)
        if self.channels_last:
            use_channels_last(self.model.decoder)
        if self._side_stream and self.vae.device.type == "cuda" and self._stream is None:
            self._stream = torch.cuda.Stream(self.vae.device)
        return ChunkDecode(self, latents)

    def is_loaded(self) -> bool:
        """Whether the VAE's weights are still on the device (a model load may have evicted them)."""
        return any(m is self.vae.patcher for m in comfy.model_management.loaded_models())

    @contextlib.contextmanager
    def _device_context(self):
        # The decoder runs the same convolution shapes for every latent frame after the first, so
        # cuDNN's benchmarked algorithms pay for their one-time search within a chunk.
        previous = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark or previous
        try:
            with (
                torch.inference_mode(),
                torch.cuda.stream(self._stream) if self._stream else contextlib.nullcontext(),
            ):
                yield
        finally:
            torch.backends.cudnn.benchmark = previous


class ChunkDecode:
    """The decode of one chunk, advanced a latent frame at a time."""

    def __init__(self, decoder: StreamingWanDecoder, latents: torch.Tensor):
        self.decoder = decoder
        self.latents = latents
        self.next_frame = 0
        self.outputs: list[torch.Tensor] = []
        self.outputs_on_device = 0
        self.x = None
        if decoder._stream is not None:
            # The latents come from the sampler's stream: the side stream must not read them early.
            decoder._stream.wait_stream(torch.cuda.current_stream(decoder.vae.device))

    @property
    def done(self) -> bool:
        return self.next_frame >= self.latents.shape[2]

    def advance(self) -> bool:
        """Enqueue the decode of one more latent frame; False once every frame is enqueued."""
        if self.done:
            return False
        d = self.decoder
        with d._device_context():
            if self.x is None:
                self.x = d.model.conv2(self.latents.to(d.vae.vae_dtype).to(d.vae.device))
                if d.channels_last:
                    self.x = self.x.contiguous(memory_format=torch.channels_last_3d)
            i = self.next_frame
            x = self.x[:, :, i : i + 1]
            if d._step is not None:
                out = d._step(x, d.feat_cache)
            else:
                out = d.model.decoder(x, feat_cache=d.feat_cache, feat_idx=[0])
            # the same float32 scaling as VAE.decode, done where the frames are (exact either way)
            self.outputs.append(d.vae.process_output(out.float()))
            self.outputs_on_device += self.outputs[-1].numel() * 4
            if d._stream is None and self.outputs_on_device > DEVICE_FRAMES_BYTES:
                self._move_outputs()
        self.next_frame += 1
        return not self.done

    def _move_outputs(self) -> None:
        output_device = self.decoder.vae.output_device
        self.outputs = [o.to(output_device) for o in self.outputs]
        self.outputs_on_device = 0

    def advance_if_loaded(self) -> bool:
        """``advance`` from inside another model's sampling: never (re)loads the VAE there, because
        loading it could evict the model being sampled; ``finish`` does what is left."""
        return self.decoder.is_loaded() and self.advance()

    def finish(self) -> torch.Tensor:
        """Decode what is left and return the frames as IMAGE [B*T, H, W, 3] on the output device."""
        d = self.decoder
        if not self.done and not d.is_loaded():
            comfy.model_management.load_models_gpu([d.vae.patcher])
        while self.advance():
            pass
        if d._stream is not None:
            torch.cuda.current_stream(d.vae.device).wait_stream(d._stream)
        d.frames_done += self.latents.shape[2]
        with torch.inference_mode():
            if len({o.device for o in self.outputs}) > 1:  # some were moved out early
                self._move_outputs()
            # [B, 3, T, H, W] -> [B, T, H, W, 3]: a contiguous view of channels-last frames, one block to copy
            frames = torch.cat(self.outputs, dim=2).movedim(1, -1)
            size = frames.numel() * frames.element_size()
            pinned = d.pinned_bytes + size <= PINNED_FRAMES_BYTES
            d.pinned_bytes += size if pinned else 0
            frames = copy_to_host(frames, d.vae.output_device, pinned)
            frames = frames.reshape(-1, *frames.shape[-3:])
        self.outputs, self.x, self.latents = [], None, None  # side-stream reads are waited for above
        return frames
