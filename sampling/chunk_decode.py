"""Decode a streamed chunk with any video VAE: the chunk's latents from its first, its new frames kept.

The Wan 2.1 VAE decodes chunk after chunk with its causal cache (``wan_vae_stream.py``: no seam). Other
causal video VAEs with the same 4x temporal layout (HunyuanVideo's) have no such decoder here, so each
chunk is decoded in one piece, from its latent 0 (the pinned boundary frame) through its last latent:
the overlap latents give the new ones their causal context, and only the new latents' frames are kept.
Latent i >= 1 covers pixel frames 4i-3 .. 4i, so new latents [start, stop) are frames 4(start-1)+1 on (LTX-Video's
VAE: 8 frames per latent, the same with 8).
"""

from __future__ import annotations

import torch

from .chunk_plan import TEMPORAL_STRIDE


class ChunkDecoder:
    feat_cache = None  # no state between chunks (the streaming sampler counts a cache's bytes)

    def __init__(self, vae, temporal_stride: int = TEMPORAL_STRIDE):
        self.vae = vae
        self.temporal_stride = temporal_stride  # LTX-Video's VAE: 8 frames per latent

    def push_chunk(self, samples: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Frames ``[T, H, W, C]`` of the chunk latents ``samples[:, :, start:stop]``."""
        frames = self.vae.decode(samples[:, :, :stop])
        frames = frames.reshape(-1, *frames.shape[-3:])
        first = 0 if start == 0 else self.temporal_stride * (start - 1) + 1
        return frames[first:]
