"""Decode a Wan 2.1 latent video chunk by chunk, bit-identical to decoding it in one piece.

The Wan VAE decoder is causal: ComfyUI's ``WanVAE.decode`` feeds latent frames one at a time and
carries a cache of the last frames of every causal 3D convolution. Keeping that cache between calls
lets a long video be decoded as its chunks finish (constant device memory, no VAE seam) with the
same frames as one ``VAE.decode`` of the stitched latent.
"""

from __future__ import annotations

import comfy.model_management
import torch


class StreamingWanDecoder:
    """``push(latents)`` -> IMAGE frames [N, H, W, 3] on ComfyUI's output device."""

    def __init__(self, vae):
        self.vae = vae
        self.model = vae.first_stage_model
        self.feat_cache = None
        self.frames_done = 0

    @staticmethod
    def supports(vae) -> bool:
        model = getattr(vae, "first_stage_model", None)
        return model is not None and type(model).__module__ == "comfy.ldm.wan.vae" and hasattr(model, "conv2")

    def push(self, latents: torch.Tensor) -> torch.Tensor:
        from comfy.ldm.wan.vae import count_conv3d

        comfy.model_management.load_models_gpu([self.vae.patcher])
        if self.feat_cache is None:
            self.feat_cache = [None] * count_conv3d(self.model.decoder)
        outputs = []
        with torch.inference_mode():
            x = self.model.conv2(latents.to(self.vae.vae_dtype).to(self.vae.device))
            for i in range(x.shape[2]):
                out = self.model.decoder(x[:, :, i:i + 1], feat_cache=self.feat_cache, feat_idx=[0])
                outputs.append(self.vae.process_output(out.to(self.vae.output_device).float()))
        self.frames_done += latents.shape[2]
        frames = torch.cat(outputs, dim=2)  # [B, 3, T, H, W] -> IMAGE [B*T, H, W, 3], as VAEDecode returns
        return frames.movedim(1, -1).reshape(-1, *frames.shape[-2:], 3)
